package reader

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
)

// ReadRange consumes exactly n bytes and streams them to yield as views, in
// order, one per segment (a segment is at most one arena block). A view is
// valid only until yield returns; the block it lies in goes back to the arena
// as soon as every byte of it is consumed (a NewReader Reader fills its own
// consumed block again in place, as bufio does, except on a debug arena,
// where a view kept past yield then faults).
//
// When n is within Limit (or already buffered), ReadRange first waits until all n bytes are
// buffered: on an error nothing was consumed and yield was not called
// (io.ErrUnexpectedEOF when the stream ends first, io.EOF when it had ended
// with nothing buffered). A larger n streams: bytes are yielded and consumed
// as they arrive, so after an error some may have been consumed. In
// non-blocking mode n must be buffered already (ErrWouldBlock otherwise).
func (r *Reader) ReadRange(n int, yield func([]byte)) error {
	if err := r.begin(); err != nil {
		return err
	}
	defer r.end()
	if n < 0 {
		return ErrNegativeCount
	}
	if n > r.n && (n <= r.limit || r.nonBlocking) {
		if err := r.ensure(n); err != nil {
			return err
		}
	}
	for got := 0; got < n; {
		if r.n == 0 {
			if err := r.more(); err != nil {
				if err == io.EOF && got > 0 {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		b := r.head()
		if len(b) > n-got {
			b = b[: n-got : n-got]
		}
		r.inCb = true
		yield(b)
		r.inCb = false
		r.consume(len(b))
		got += len(b)
		if r.closeAsked && got < n {
			return ErrClosed // yield closed the Reader: stop reading
		}
	}
	return nil
}

// Peek shows the next n bytes to fn without consuming them and without
// copying: views holds them in order across block boundaries. The views and
// the [][]byte itself are valid only until fn returns. If the stream ends
// first Peek returns io.ErrUnexpectedEOF (io.EOF when nothing was buffered)
// and the bytes that did arrive stay readable; n larger than Limit returns
// ErrTooLarge. On any error fn is not called.
func (r *Reader) Peek(n int, fn func(views [][]byte)) error {
	if err := r.begin(); err != nil {
		return err
	}
	defer r.end()
	if err := r.ensure(n); err != nil {
		return err
	}
	r.inCb = true
	fn(r.viewsOf(n))
	r.inCb = false
	clear(r.views)
	return nil
}

// Discard skips the next n bytes and returns how many it skipped. As with
// bufio.Reader, a short count comes with the error that stopped it (io.EOF
// when the stream ended), and the bytes skipped stay consumed. In
// non-blocking mode it skips all n bytes if they are buffered, and otherwise
// nothing (ErrWouldBlock, or ErrTooLarge beyond Limit).
func (r *Reader) Discard(n int) (discarded int, err error) {
	if err := r.begin(); err != nil {
		return 0, err
	}
	defer r.end()
	if n < 0 {
		return 0, ErrNegativeCount
	}
	if r.nonBlocking && n > r.n {
		if err := r.ensure(n); err != nil {
			return 0, err
		}
	}
	for discarded < n {
		if r.n == 0 {
			if err := r.more(); err != nil {
				return discarded, err
			}
		}
		k := min(r.n, n-discarded)
		r.consume(k)
		discarded += k
	}
	return discarded, nil
}

// ReadByte consumes and returns one byte (io.ByteReader). At the end of the
// stream it returns io.EOF.
func (r *Reader) ReadByte() (byte, error) {
	if err := r.begin(); err != nil {
		return 0, err
	}
	defer r.end()
	if err := r.ensure(1); err != nil {
		return 0, err
	}
	b := r.hv[0]
	r.hv = r.hv[1:]
	r.off++
	r.n--
	r.scan = 0
	// Keep an emptied head until the next call, so UnreadByte can step back
	// into it; begin gives it back.
	r.lag = r.off == int(r.segs[r.h].Len)
	r.unread = true
	return b, nil
}

// UnreadByte steps back over the byte the last ReadByte returned
// (io.ByteScanner). It fails with ErrInvalidUnreadByte unless the previous
// call on the Reader was a successful ReadByte; in handler mode, one made in
// the same callback.
func (r *Reader) UnreadByte() error {
	if err := r.enter(); err != nil {
		return err
	}
	defer r.end()
	if !r.unread {
		return ErrInvalidUnreadByte
	}
	r.unread, r.lag = false, false
	r.off--
	r.setHead()
	r.n++
	r.scan = 0
	return nil
}

// fixed waits for k (at most 8) bytes, consumes them and returns a copy in
// the first k bytes of b. The copy and the consuming happen inside the call's
// guard: a Close from another goroutine gives the blocks back only after
// them.
func (r *Reader) fixed(k int) (b [8]byte, err error) {
	if err := r.begin(); err != nil {
		return b, err
	}
	defer r.end()
	if err := r.ensure(k); err != nil {
		return b, err
	}
	copy(b[:k], r.contiguous(k, &b))
	r.consume(k)
	return b, nil
}

// ReadUint16BE consumes a big-endian uint16. If the stream ends first it
// returns io.ErrUnexpectedEOF (io.EOF with nothing buffered) and consumes
// nothing; so do the other fixed-size readers.
func (r *Reader) ReadUint16BE() (uint16, error) {
	b, err := r.fixed(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b[:2]), nil
}

// ReadUint16LE consumes a little-endian uint16.
func (r *Reader) ReadUint16LE() (uint16, error) {
	b, err := r.fixed(2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b[:2]), nil
}

// ReadUint32BE consumes a big-endian uint32.
func (r *Reader) ReadUint32BE() (uint32, error) {
	b, err := r.fixed(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b[:4]), nil
}

// ReadUint32LE consumes a little-endian uint32.
func (r *Reader) ReadUint32LE() (uint32, error) {
	b, err := r.fixed(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:4]), nil
}

// ReadUint64BE consumes a big-endian uint64.
func (r *Reader) ReadUint64BE() (uint64, error) {
	b, err := r.fixed(8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[:8]), nil
}

// ReadUint64LE consumes a little-endian uint64.
func (r *Reader) ReadUint64LE() (uint64, error) {
	b, err := r.fixed(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:8]), nil
}

// ReadUvarint consumes an unsigned varint as encoding/binary writes it. A
// varint that does not fit in 64 bits returns ErrVarintOverflow; a stream that
// ends inside one returns io.ErrUnexpectedEOF (io.EOF before its first byte).
// On any error nothing is consumed.
func (r *Reader) ReadUvarint() (uint64, error) {
	if err := r.begin(); err != nil {
		return 0, err
	}
	defer r.end()
	var x uint64
	var s uint
	for i := range binary.MaxVarintLen64 {
		for i >= r.n {
			if err := r.more(); err != nil {
				return 0, r.endErr(err)
			}
		}
		b := r.byteAt(i)
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, ErrVarintOverflow
			}
			r.consume(i + 1)
			return x | uint64(b)<<s, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, ErrVarintOverflow
}

// ReadVarint consumes a zig-zag signed varint as encoding/binary writes it,
// with the errors of ReadUvarint.
func (r *Reader) ReadVarint() (int64, error) {
	ux, err := r.ReadUvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, err
}

// ReadSlice consumes bytes up to and including the first delim and shows
// them to fn as views, without copying, across block boundaries; the views
// are valid only until fn returns. A line (delimiter included) longer than
// the maximum line length (WithMaxLine) returns ErrLineTooLong; a stream that
// ends before a delimiter returns io.ErrUnexpectedEOF (io.EOF with nothing
// buffered). On any error fn is not called and nothing is consumed: the
// bytes stay readable (Discard skips an overlong line).
func (r *Reader) ReadSlice(delim byte, fn func(line [][]byte)) error {
	if err := r.begin(); err != nil {
		return err
	}
	defer r.end()
	k, err := r.lineLen(delim)
	if err != nil {
		return r.endErr(err)
	}
	r.inCb = true
	fn(r.viewsOf(k))
	r.inCb = false
	clear(r.views)
	r.consume(k)
	return nil
}

// ReadLine consumes one line and shows it to fn without its end ("\n" or
// "\r\n"), as views valid only until fn returns. A last line that the stream
// ends without a newline is shown as it is; the next call returns io.EOF.
// Lines longer than the maximum line length fail as in ReadSlice.
func (r *Reader) ReadLine(fn func(line [][]byte)) error {
	if err := r.begin(); err != nil {
		return err
	}
	defer r.end()
	k, err := r.lineLen('\n')
	show := k
	switch {
	case err == io.EOF && r.n > 0: // the stream itself ended inside the line
		k, show = r.n, r.n
	case err != nil:
		return r.endErr(err)
	default:
		show--
		if show > 0 && r.byteAt(show-1) == '\r' {
			show--
		}
	}
	r.inCb = true
	fn(r.viewsOf(show))
	r.inCb = false
	clear(r.views)
	r.consume(k)
	return nil
}

// lineLen waits until delim is buffered within the maximum line length and
// returns the length of the line through it.
func (r *Reader) lineLen(delim byte) (int, error) {
	if delim != r.scanDelim {
		r.scan, r.scanDelim = 0, delim
	}
	for {
		to := min(r.n, r.maxLine)
		if i := r.index(delim, r.scan, to); i >= 0 {
			return i + 1, nil
		}
		r.scan = to
		if r.n >= r.maxLine {
			return 0, ErrLineTooLong
		}
		if err := r.more(); err != nil {
			// Raw: the callers tell the stream's own end (io.EOF) from a
			// source's error, which may be io.ErrUnexpectedEOF itself.
			return 0, err
		}
	}
}

// index returns the position of the first delim among buffered bytes
// [from, to), or -1.
func (r *Reader) index(delim byte, from, to int) int {
	pos := 0
	off := r.off
	for i := r.h; i < len(r.segs) && pos < to; i++ {
		b := r.segs[i].Bytes(r.a)[off:]
		off = 0
		end := pos + len(b)
		if end > from {
			lo, hi := max(from-pos, 0), min(to-pos, len(b))
			if j := bytes.IndexByte(b[lo:hi], delim); j >= 0 {
				return pos + lo + j
			}
		}
		pos = end
	}
	return -1
}

// Read copies buffered bytes into p (io.Reader). It waits only when nothing
// is buffered, returns short counts rather than waiting for more, and
// returns io.EOF only with n == 0.
func (r *Reader) Read(p []byte) (n int, err error) {
	if err := r.begin(); err != nil {
		return 0, err
	}
	defer r.end()
	if len(p) == 0 {
		return 0, nil
	}
	if r.n == 0 {
		if err := r.more(); err != nil {
			return 0, err
		}
	}
	for n < len(p) && r.n > 0 {
		m := copy(p[n:], r.head())
		r.consume(m)
		n += m
	}
	return n, nil
}

// WriteTo writes the rest of the stream to w straight from the arena blocks
// (io.WriterTo): every buffered segment in one writev(2) when w is a TCP or
// Unix connection of the standard library, one Write per segment otherwise.
// It returns when the stream ends (nil error) or on the first error of the
// source or of w (io.ErrShortWrite for a short write without one,
// ErrInvalidCount for a count w could not have written); bytes w accepted
// are consumed.
func (r *Reader) WriteTo(w io.Writer) (written int64, err error) {
	if err := r.begin(); err != nil {
		return 0, err
	}
	defer r.end()
	for {
		if r.n == 0 {
			if err := r.more(); err != nil {
				if err == io.EOF {
					err = nil
				}
				return written, err
			}
		}
		// WriteTo consumes the Buffers it is called on: r.views, which
		// is r's own, so no copy of the slice header escapes.
		v := r.viewsOf(r.n)
		r.inCb = true
		var m int64
		switch w.(type) {
		case *net.TCPConn, *net.UnixConn:
			m, err = r.views.WriteTo(w) // one writev(2)
		default:
			m, err = writeViews(w, v) // counts checked: w may be anything
		}
		r.inCb = false
		r.views = v
		clear(r.views)
		r.consume(int(m))
		written += m
		if err != nil {
			return written, err
		}
		if r.closeAsked {
			return written, ErrClosed // w closed the Reader: stop reading
		}
	}
}

// writeViews writes each view to w in turn, as net.Buffers does, but checks
// what w reports: a short write without an error stops with
// io.ErrShortWrite, and an impossible count with ErrInvalidCount (only the
// views before it count as written).
func writeViews(w io.Writer, views [][]byte) (int64, error) {
	var total int64
	for _, b := range views {
		n, err := w.Write(b)
		if n < 0 || n > len(b) {
			return total, fmt.Errorf("%w: Write returned %d for %d bytes", ErrInvalidCount, n, len(b))
		}
		total += int64(n)
		if err != nil {
			return total, err
		}
		if n < len(b) {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

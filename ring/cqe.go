package ring

import "github.com/zcio/zcio/internal/unix"

// BufferID returns the provided buffer the kernel picked for this
// completion, and false when the completion carries no buffer
// (IORING_CQE_F_BUFFER clear).
func (c CQE) BufferID() (uint16, bool) {
	return uint16(c.Flags >> cqeBufferShift), c.Flags&CQEFBuffer != 0
}

// More reports IORING_CQE_F_MORE: the multishot request that posted this
// completion is still armed and will post more. When it is clear the request
// is over and must be armed again to receive more.
func (c CQE) More() bool { return c.Flags&CQEFMore != 0 }

// BufMore reports IORING_CQE_F_BUF_MORE: with incremental buffer consumption
// the kernel keeps the buffer and will append the next receive to it.
func (c CQE) BufMore() bool { return c.Flags&CQEFBufMore != 0 }

// Errno returns the error of a failed request (res < 0), and 0 otherwise.
func (c CQE) Errno() unix.Errno {
	if c.Res >= 0 {
		return 0
	}
	return unix.Errno(-c.Res)
}

// Err returns the error of a failed request as an error, nil when res >= 0.
// Errno values are small, so the conversion does not allocate.
func (c CQE) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return unix.Errno(-c.Res)
}

// Recv is one multishot receive completion in plain Go values.
//
// Exactly one of these holds: N > 0 bytes landed at the start of buffer Buf
// (or, with incremental consumption, after the bytes earlier completions
// reported for Buf); EOF (the peer closed its side: res == 0); NoBuffers (the
// buffer ring ran dry: res == -ENOBUFS, the multishot ended, nothing was lost
// and the data waits in the socket: re-arm once blocks are back); or Errno is
// another failure (ECONNRESET, ECANCELED after a cancel, ...).
type Recv struct {
	Buf       uint16     // buffer (arena block) id; valid when HasBuf; take its bytes with BufRing.Claim
	HasBuf    bool       // IORING_CQE_F_BUFFER was set
	N         int        // bytes received, 0 unless res > 0
	More      bool       // the multishot stays armed; when false the caller re-arms (unless EOF or a fatal error)
	BufMore   bool       // incremental mode: the kernel keeps filling Buf
	EOF       bool       // end of stream
	NoBuffers bool       // -ENOBUFS: ring dry, re-arm after recycling
	Errno     unix.Errno // the error of a failure other than ENOBUFS, 0 otherwise
}

// DecodeRecv turns a receive completion into a [Recv]. It never allocates.
func DecodeRecv(c CQE) Recv {
	id, has := c.BufferID()
	r := Recv{Buf: id, HasBuf: has, More: c.More(), BufMore: c.BufMore()}
	switch {
	case c.Res > 0:
		r.N = int(c.Res)
	case c.Res == 0:
		r.EOF = true
	case c.Errno() == unix.ENOBUFS:
		r.NoBuffers = true
	default:
		r.Errno = c.Errno()
	}
	return r
}

// Err returns Errno as an error, or nil. ENOBUFS and EOF are not errors.
func (r Recv) Err() error {
	if r.Errno == 0 {
		return nil
	}
	return r.Errno
}

// Rearm reports whether the multishot receive ended in a way that asks the
// caller to arm it again: F_MORE clear and neither end of stream nor an error.
// After NoBuffers, re-arm only once blocks are back in the buffer ring.
func (r Recv) Rearm() bool { return !r.More && !r.EOF && r.Errno == 0 }

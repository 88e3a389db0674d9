package reader

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/segq"
)

// Defaults of the arena a pull Reader owns when no WithArena is given:
// 4 blocks of 16 KiB, so a limit of 48 KiB.
const (
	DefaultBlockSize = 16 << 10
	DefaultBlocks    = 4
)

// Option configures a Reader.
type Option func(*options)

type options struct {
	arena    *arena.Arena
	arenaCfg arena.Config
	limit    int
	maxLine  int
	ctx      context.Context
	engineOptions
}

// WithArena makes a pull Reader fill blocks of a, which the caller owns and
// must close after the Reader (and every Slice retained from it) is done.
// Without it, NewReader maps an arena of its own that Close unmaps.
func WithArena(a *arena.Arena) Option { return func(o *options) { o.arena = a } }

// WithArenaConfig sets the configuration of the arena NewReader maps for
// itself (ignored with WithArena). The zero Config fields default to
// DefaultBlockSize and DefaultBlocks.
func WithArenaConfig(cfg arena.Config) Option { return func(o *options) { o.arenaCfg = cfg } }

// WithLimit caps the bytes the Reader buffers for one request (Peek, Retain,
// ReadSlice, an atomic ReadRange). It can only lower the source's own limit:
// for a pull Reader (blocks-1) × block size, so that any request within the
// limit fits even when the first block is partly consumed; for an engine's
// queue, its per-connection cap.
func WithLimit(n int) Option { return func(o *options) { o.limit = n } }

// WithMaxLine caps the length of a line, delimiter included, for ReadSlice
// and ReadLine. It defaults to, and cannot exceed, the buffering limit.
func WithMaxLine(n int) Option { return func(o *options) { o.maxLine = n } }

// WithContext sets a context that every wait of the Reader observes (a
// server's lifetime, say). Wait takes a per-call context on top of it.
func WithContext(ctx context.Context) Option { return func(o *options) { o.ctx = ctx } }

// Reader reads one stream of segments in place. See the package
// documentation for the lifetime of views. The zero value is not usable;
// create one with NewReader (or through an engine's connection).
type Reader struct {
	src  source
	a    *arena.Arena
	segs []segq.Segment // buffered segments; segs[h] is the head
	h    int
	off  int // bytes of segs[h] already consumed
	n    int // bytes buffered: the segments' lengths minus off
	// hv is the unconsumed part of the head segment, segs[h] from off (nil
	// when segs is empty), kept in step with segs, h and off by every change
	// to them (see setHead), so that the common calls need no arena lookup.
	hv []byte

	limit   int
	maxLine int
	baseCtx context.Context
	ctx     context.Context // the context of the current wait
	scan    int             // bytes known to hold no scanDelim (ReadSlice, ReadLine)

	views net.Buffers // scratch for callbacks and WriteTo

	// gs hands the final release of a guarded Reader to whichever side
	// finishes last (guard.go).
	gs atomic.Int32

	nonBlocking bool
	scanDelim   byte // the delimiter scan is about
	lag         bool // ReadByte consumed the head's last byte and left it in place
	unread      bool // the last call was a successful ReadByte
	closed      bool
	outside     bool // a handler-mode Reader asked for outside the callbacks (lend.go)
	handler     bool // a handler-mode connection's Reader: stays non-blocking, and its connection closes it
	// guarded: the Reader belongs to an engine's connection, whose Close may
	// come from another goroutine while a call is in progress.
	guarded bool
	// inCb: one of this Reader's callbacks is running; calls made from it
	// are refused (ErrReentrant, checked in enter before the guard), and on
	// an unguarded Reader a Close made from it waits for the call to end
	// (closeAsked).
	inCb bool
	// closeAsked: Close was called from inside a callback of this
	// (unguarded) Reader; the call in progress closes it as it returns.
	closeAsked bool
}

// NewReader returns a Reader that fills arena blocks from rd, reading on the
// caller's goroutine when more bytes are needed: the bufio.Reader use case,
// without copies. It maps an arena of its own unless WithArena is given.
// Non-blocking mode does not apply (rd.Read is always called), and a
// deadline is checked before each rd.Read, not during one. An error from
// rd ends the stream for good, except a timeout (an error matching
// os.ErrDeadlineExceeded or a net.Error whose Timeout is true, as a
// net.Conn's read deadline gives): that call returns it, and the next call
// reads from rd again.
func NewReader(rd io.Reader, opts ...Option) (*Reader, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	p := &pullSource{rd: rd, a: o.arena}
	if p.a == nil {
		cfg := o.arenaCfg
		if cfg.BlockSize == 0 {
			cfg.BlockSize = DefaultBlockSize
		}
		if cfg.Blocks == 0 {
			cfg.Blocks = DefaultBlocks
		}
		a, err := arena.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("zcio/reader: new reader: %w", err)
		}
		p.a, p.ownArena = a, true
	}
	p.rel = p.a.Release
	p.lim = max(1, p.a.Len()-1) * p.a.BlockSize()
	if p.a.Len() == 1 {
		p.lim = 1 // one block: the head may sit at its last byte
	}
	r := newReader(p, p.a, &o)
	return r, nil
}

// newQueueReader returns a Reader over an engine's queue; the Reader becomes
// the queue's consumer.
func newQueueReader(q *segq.Queue, o *options) *Reader {
	return newReader(newQueueSource(q), q.Arena(), o)
}

func newReader(src source, a *arena.Arena, o *options) *Reader {
	r := &Reader{src: src, a: a, limit: src.limit(), baseCtx: o.ctx}
	if o.limit > 0 && o.limit < r.limit {
		r.limit = o.limit
	}
	r.maxLine = r.limit
	if o.maxLine > 0 && o.maxLine < r.maxLine {
		r.maxLine = o.maxLine
	}
	return r
}

// Arena returns the arena the Reader's views point into.
func (r *Reader) Arena() *arena.Arena { return r.a }

// Limit returns the most bytes one request may need buffered at once.
func (r *Reader) Limit() int { return r.limit }

// SetNonBlocking switches handler mode on or off. In non-blocking mode a call
// that would wait for data returns ErrWouldBlock with nothing consumed, and
// ReadRange and Discard complete only when all n bytes are already there
// (ErrTooLarge beyond the limit). A handler-mode connection's Reader stays
// non-blocking: its calls run on an engine loop, which must not wait.
func (r *Reader) SetNonBlocking(on bool) { r.nonBlocking = on || r.handler }

// SetDeadline sets the time after which waiting calls return an error
// matching os.ErrDeadlineExceeded, with nothing consumed; the zero time
// removes it. For an engine's Reader a call already waiting sees the new
// deadline at once.
func (r *Reader) SetDeadline(t time.Time) { r.src.setDeadline(t) }

// Wait blocks until at least n bytes are buffered (so that the next calls
// needing at most n bytes do not wait), the stream ends (io.EOF, or
// io.ErrUnexpectedEOF when fewer than n bytes arrived), ctx is done (its
// error), or the deadline passes. n above Limit fails with ErrTooLarge (and
// a negative n with ErrNegativeCount) at once, whatever is buffered.
func (r *Reader) Wait(ctx context.Context, n int) error {
	if err := r.begin(); err != nil {
		return err
	}
	defer r.end()
	r.ctx = ctx
	defer func() { r.ctx = nil }() // also when the source panics
	return r.ensure(n)
}

// Buffered returns the number of bytes that can be read without waiting.
// Called from inside one of the Reader's own callbacks it returns 0 (see
// ErrReentrant).
func (r *Reader) Buffered() int {
	if r.enter() != nil {
		return 0
	}
	defer r.end()
	r.compact()
	var added int
	r.segs, added = r.src.poll(r.segs)
	r.n += added
	r.setHead()
	return r.n
}

// Close gives back every block the Reader holds (and, for a pull Reader,
// unmaps the arena it owns once no Slice holds its blocks). Slices retained
// earlier stay valid. Later calls, Close included, return ErrClosed. The
// Reader of a handler-mode connection is not closed this way (ErrHandlerClose):
// Conn.Close ends the connection and gives back its blocks.
func (r *Reader) Close() error {
	if r.outside {
		// A handler-mode Reader outside its callbacks, or one kept past a
		// callback and back in its engine's pool: not the caller's to close.
		return ErrOutsideCallback
	}
	if r.guarded {
		return r.closeGuarded()
	}
	if r.closed || r.closeAsked {
		return ErrClosed
	}
	if r.inCb {
		// Called from one of its own callbacks: the call that runs it
		// still uses the blocks; it closes the Reader as it returns.
		r.closeAsked = true
		return nil
	}
	return r.closeNow()
}

// closeNow gives back every block the Reader holds and closes its source.
func (r *Reader) closeNow() error {
	r.closed = true
	r.lag = false
	for r.h < len(r.segs) {
		r.pop()
	}
	r.n, r.off, r.hv = 0, 0, nil
	clear(r.views[:cap(r.views)])
	return r.src.close()
}

// begin starts every reading call: it refuses after Close and settles what
// the previous ReadByte left. The common case (an open, unguarded Reader
// with nothing left by ReadByte) is small enough to inline.
func (r *Reader) begin() error {
	if r.guarded || r.closed || r.lag || r.inCb {
		return r.beginSlow()
	}
	r.unread = false
	return nil
}

// beginSlow is begin for an engine's Reader, a closed one, or after a
// ReadByte that emptied the head.
func (r *Reader) beginSlow() error {
	if err := r.enter(); err != nil {
		return err
	}
	r.unread = false
	if r.lag {
		r.lag = false
		if r.off == int(r.segs[r.h].Len) {
			r.pop()
		}
	}
	return nil
}

// setHead recomputes hv from segs, h and off.
func (r *Reader) setHead() {
	if r.h < len(r.segs) {
		r.hv = r.segs[r.h].Bytes(r.a)[r.off:]
	} else {
		r.hv = nil
	}
}

// pop gives back the head segment.
func (r *Reader) pop() {
	s := r.segs[r.h]
	r.segs[r.h] = segq.Segment{}
	r.h++
	r.off = 0
	if r.h == len(r.segs) {
		r.segs, r.h = r.segs[:0], 0
	}
	r.setHead()
	if _, ok := r.src.(*pullSource); ok {
		r.a.Release(s.Ref) // what pullSource.done does, without the interface call
	} else {
		r.src.done(s)
	}
}

// consume drops k buffered bytes (k <= r.n), giving back emptied segments.
// Bytes that leave part of the head segment unconsumed take the inlined
// path.
func (r *Reader) consume(k int) {
	r.scan = 0
	r.n -= k
	if k < len(r.hv) {
		r.hv = r.hv[k:]
		r.off += k
		return
	}
	r.consumeSegs(k)
}

// consumeSegs is consume to the end of the head segment or beyond (r.n is
// already updated).
func (r *Reader) consumeSegs(k int) {
	for k > 0 {
		if k < len(r.hv) {
			r.hv = r.hv[k:]
			r.off += k
			return
		}
		k -= len(r.hv)
		r.pop()
	}
}

// compact moves the buffered segments to the front when the slice is full,
// so that appending reuses its space.
func (r *Reader) compact() {
	if r.h > 0 && len(r.segs) == cap(r.segs) {
		n := copy(r.segs, r.segs[r.h:])
		clear(r.segs[n:])
		r.segs, r.h = r.segs[:n], 0
	}
}

// more asks the source for more bytes once.
func (r *Reader) more() error { return r.moreOf(1) }

// moreOf asks the source once for need more bytes, which it may deliver in
// part.
func (r *Reader) moreOf(need int) error {
	ctx := r.ctx
	if ctx == nil {
		ctx = r.baseCtx
	} else if r.baseCtx != nil {
		return r.moreOfBoth(need)
	}
	r.compact()
	var added int
	var err error
	if p, ok := r.src.(*pullSource); ok { // called directly: no interface call
		r.segs, added, err = p.fill(ctx, r.segs, r.nonBlocking, need)
	} else {
		r.compactCrowded()
		for {
			r.segs, added, err = r.src.fill(ctx, r.segs, r.nonBlocking, need)
			if err == segq.ErrPark {
				if len(r.segs) == 0 && cap(r.segs)+cap(r.views) > 0 {
					// Waiting, it holds nothing: let other connections
					// use its arrays meanwhile (an idle connection then
					// holds none; the take after the wait hands it the
					// queue's, viewsOf takes a spare one).
					r.src.giveScratch(r.segs, r.views)
					r.segs, r.views = nil, nil
				}
				r.src.park() // the common wait, from here to keep the stack shallow
			} else if err == segq.ErrNudged {
				r.spill() // the engine is out of blocks: see spill
			} else {
				break
			}
		}
	}
	r.n += added
	r.setHead() // the head may be new, or have grown
	return err
}

// moreOfBoth is moreOf for a call with a context of its own on a Reader
// made WithContext: the wait observes both. It costs a derived context (a
// few allocations), only on this path.
func (r *Reader) moreOfBoth(need int) error {
	call, base := r.ctx, r.baseCtx
	if err := base.Err(); err != nil {
		return err
	}
	both, cancel := context.WithCancel(call)
	stop := context.AfterFunc(base, cancel)
	r.ctx, r.baseCtx = both, nil
	defer func() {
		r.ctx, r.baseCtx = call, base // also when the source panics
		stop()
		cancel()
	}()
	err := r.moreOf(need)
	if err != nil && both.Err() != nil && call.Err() == nil {
		if berr := base.Err(); berr != nil {
			return berr // the wait ended because the Reader's context did
		}
	}
	return err
}

// ensure buffers at least want bytes or says why it cannot.
func (r *Reader) ensure(want int) error {
	if want < 0 {
		return ErrNegativeCount
	}
	if want > r.limit {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, want, r.limit)
	}
	if r.n >= want {
		return nil
	}
	for r.n < want {
		if err := r.moreOf(want - r.n); err != nil {
			return r.endErr(err)
		}
	}
	return nil
}

// endErr turns the end of the stream into io.ErrUnexpectedEOF when some
// bytes are buffered.
func (r *Reader) endErr(err error) error {
	if err == io.EOF && r.n > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}

// viewsOf returns scratch views of the next k buffered bytes (k <= r.n).
func (r *Reader) viewsOf(k int) net.Buffers {
	v := r.views[:0]
	if cap(v) == 0 {
		v = r.src.views() // given back while the Reader waited (giveScratch)
	}
	off := r.off
	for i := r.h; k > 0; i++ {
		b := r.segs[i].Bytes(r.a)[off:]
		off = 0
		if len(b) > k {
			b = b[:len(b):len(b)]
			b = b[:k:k]
		}
		v = append(v, b)
		k -= len(b)
	}
	r.views = v
	return v
}

// head returns the unconsumed part of the head segment.
func (r *Reader) head() []byte { return r.hv }

// contiguous returns the next k buffered bytes (k <= r.n, k <= len(tmp)) as
// one slice: a view when they lie in one segment, else a copy in tmp.
func (r *Reader) contiguous(k int, tmp *[8]byte) []byte {
	if b := r.head(); len(b) >= k {
		return b[:k]
	}
	got := 0
	off := r.off
	for i := r.h; got < k; i++ {
		got += copy(tmp[got:k], r.segs[i].Bytes(r.a)[off:])
		off = 0
	}
	return tmp[:k]
}

// byteAt returns buffered byte i (i < r.n).
func (r *Reader) byteAt(i int) byte {
	i += r.off
	for j := r.h; ; j++ {
		l := int(r.segs[j].Len)
		if i < l {
			return r.a.Bytes(r.segs[j].Ref.ID())[int(r.segs[j].Off)+i]
		}
		i -= l
	}
}

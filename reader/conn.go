package reader

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/segq"
	"github.com/zcio/zcio/internal/unix"
)

// closeFlushTimeout bounds how long writes queued by a handler may still
// take to flush after Close.
const closeFlushTimeout = 5 * time.Second

// engineSink is the callback set every engine drives (fallback.Sink and the
// ring engine's Sink have the same methods). Flush comes after each read on
// the fallback and after each batch of completions on io_uring.
type engineSink interface {
	Deliver(ref arena.Ref, off, n int) (pause bool)
	Flush()
	End(err error)
	Detached()
}

// Conn is a connection read by an engine. It implements net.Conn: Read
// copies (use Reader for views into the arena), Write goes to the socket in
// order and never blocks an engine loop. Its methods are safe for concurrent
// use, except that the Reader (and Read, which uses it) belongs to one
// goroutine at a time: in handler mode, to the connection's callbacks, and
// then only for the duration of each callback (see Reader).
//
// A connection accepted by a Listener on Linux is a bare socket: no net.Conn
// is made for it (that would cost a netFD, a poller descriptor and two
// addresses per connection, idle or not). Its addresses are looked up when
// first asked for, and a write that has to wait for the socket parks in Go's
// poller through an *os.File made at that moment.
type Conn struct {
	fd    int
	nc    *wrapped // Wrap (and every Conn on other systems): owns fd
	g     *group
	att   attachment // set once attachedSet is
	q     *segq.Queue
	r     *Reader
	hs    handlerSink // its sink is what blocking mode hands the engine
	h     *handlerRef // nil in blocking mode
	value any         // SetValue; under amu

	detached sync.WaitGroup // done once the engine let go (Detached)
	ws       *writeState    // under wmu; made when first needed
	addrs    *connAddrs     // under amu; bare socket: looked up on first use

	closed      atomic.Bool
	attachedSet atomic.Bool  // att is set (callbacks may run before: see waitAttached)
	holds       atomic.Int32 // owner + engine + active flusher; 0 closes the fd
	inCallback  atomic.Bool  // a handler callback of this connection is running
	wmu         sync.Mutex   // the writing side
	amu         sync.Mutex   // guards addrs and value; never held while taking wmu

	ei       uint16 // g.engines[ei] reads the connection
	kind     uint8  // connTCP or connUnix
	ended    bool   // handler mode: OnClose delivered (loop only)
	fdClosed bool   // the fd is closed (written under wmu and amu)
	flushing bool   // a flusher goroutine owns ws.pending
	writing  bool   // a Write from outside the loop is in the kernel
	// rawWriting: a Write is in write(2) on the bare fd, outside wmu
	// (writeWait); the fd must not be closed meanwhile. Under wmu.
	rawWriting bool
}

// writeState is the part of a Conn's writing side that most connections
// never need: made under wmu by the first write that has to wait, queue or
// fail, or by a write deadline.
type writeState struct {
	cond    sync.Cond // L is the Conn's wmu: writing and flushing changed
	wf      *os.File  // bare socket: made for writes that wait and write deadlines; owns fd then
	pending []byte    // handler writes not yet on the socket
	err     error     // sticky write error
	shut    bool      // CloseWrite was called: writes fail
	shutDue bool      // CloseWrite came while writes were in flight: the last one shuts down
}

// wsLocked returns c.ws, making it first; wmu is held.
func (c *Conn) wsLocked() *writeState {
	if c.ws == nil {
		c.ws = &writeState{}
		c.ws.cond.L = &c.wmu
	}
	return c.ws
}

// wfLocked returns the poller's file of a bare socket, nil if not made;
// wmu is held.
func (c *Conn) wfLocked() *os.File {
	if c.ws == nil {
		return nil
	}
	return c.ws.wf
}

// werrLocked returns the sticky write error; wmu is held.
func (c *Conn) werrLocked() error {
	if c.ws == nil {
		return nil
	}
	return c.ws.err
}

// wakeWritersLocked tells waiters that writing, flushing or the file
// changed; wmu is held. Waiters make ws before they wait.
func (c *Conn) wakeWritersLocked() {
	if c.ws != nil {
		c.ws.cond.Broadcast()
	}
}

// Kinds of socket a Conn reads.
const (
	connTCP uint8 = iota
	connUnix
)

// wrapped is the net.Conn a Conn adopted (Wrap). A Conn holds it by
// pointer, like handlerRef: one word each instead of an interface's two,
// which keeps the Conn of every bare socket at 160 bytes.
type wrapped struct{ net.Conn }

// handlerRef is the Handler of the connections one Serve call accepts,
// made once for all of them.
type handlerRef struct{ Handler }

// connAddrs are a bare socket's addresses, once looked up.
type connAddrs struct{ local, remote net.Addr }

// sink adapts a Conn to the engines' callbacks.
type sink struct{ c *Conn }

// handlerSink is the sink of a handler-mode connection: it also gets Opened.
type handlerSink struct{ sink }

var _ engineSink = (*sink)(nil)

func (s *sink) Deliver(ref arena.Ref, off, n int) bool {
	c := s.c
	if c.h != nil && c.q.WouldPause(n) {
		// Handler mode: the handler consumes on this loop, but only at the
		// engine's next Flush (the fallback's: after each read; io_uring's:
		// after a batch of completions). Let it consume now rather than
		// pause a connection whose delivery alone fills the queue: pausing
		// costs a cancel, a re-arm and a stall, and is meant for a handler
		// that does not keep up.
		c.callData()
	}
	return c.q.Push(segq.Segment{Ref: ref, Off: uint32(off), Len: uint32(n)})
}

func (s *sink) Flush() {
	if s.c.h != nil {
		s.c.callData()
	}
}

func (s *sink) End(err error) {
	s.c.q.Finish(err)
	if s.c.h != nil {
		s.c.callData()
		s.c.handlerEnd(err)
	}
}

func (s *sink) Detached() {
	c := s.c
	if c.h != nil {
		// Handler mode: a Reader lent to the connection lives on this loop
		// and is idle here (unless a handler kept it past its callback).
		c.handlerEnd(net.ErrClosed)
		if r := c.r; r != nil {
			r.shutdown()
			c.r = nil
			if c.g.lends && r.gs.Load() == gsClosed && r.n == 0 && len(r.segs) == 0 {
				r.gs.Store(gsIdle)
				c.g.readers[c.ei].put(r)
			}
		}
	}
	// The engine's hold goes before a Close waiting for Detached returns:
	// the last drop, which may stop the engines, then happens on the
	// closing goroutine (at once) rather than on this loop (in the
	// background).
	c.drop(true)
	c.detached.Done()
}

func (s *handlerSink) Opened() { s.c.callOpen() }

// Starved: the engine ran out of blocks. A blocking reader is woken to spill
// what it holds of an unfinished message; a handler's Reader, idle on this
// loop between callbacks, spills now.
func (s *sink) Starved() {
	if c := s.c; c.h != nil {
		if c.r != nil {
			c.r.spillIdle()
			c.giveBack()
		}
		return
	}
	s.c.q.Nudge()
}

// adopt attaches the stream socket fd to an engine of g. nc, when not nil,
// is the net.Conn that owns fd (Wrap); otherwise the Conn owns the bare fd.
// The Conn takes one reference on g. On error the caller still owns fd and
// nc.
func adopt(nc net.Conn, fd int, kind uint8, g *group, h *handlerRef, o *options) (*Conn, error) {
	for tries := 1; ; tries++ {
		i := g.pick()
		c, err := adoptOn(i, nc, fd, kind, g, h, o)
		if err == nil || !g.engines[i].failed() || tries >= len(g.engines) {
			return c, err
		}
		// The engine found out at this Attach that it had failed (a
		// fallback engine whose epoll fd was closed behind its back while
		// it was idle): try another; pick passes over this one from now on.
	}
}

// adoptOn attaches the connection to g.engines[i].
func adoptOn(i int, nc net.Conn, fd int, kind uint8, g *group, h *handlerRef, o *options) (*Conn, error) {
	e := g.engines[i]
	c := &Conn{fd: fd, kind: kind, g: g, ei: uint16(i), h: h}
	if nc != nil {
		c.nc = &wrapped{nc}
	}
	c.detached.Add(1)
	c.hs.c = c
	c.q = new(segq.Queue)
	c.q.Init(g.queues[i], &c.hs.sink)
	var s engineSink = &c.hs.sink
	if h != nil {
		s = &c.hs // the Reader is lent while callbacks run (lend.go)
		if g.lends {
			c.q.Recycle() // pushed and consumed on the loop alone
		}
	} else {
		c.r = newQueueReader(c.q, o)
		c.r.guarded = true
		c.q.PrepareWait()
	}
	c.holds.Store(2) // the owner (until Close) and the engine (until Detached)
	g.retain()
	att, err := e.attach(nc, fd, s)
	if err != nil {
		g.release()
		return nil, fmt.Errorf("zcio/reader: attach: %w", err)
	}
	c.att = att
	c.attachedSet.Store(true)
	return c, nil
}

// waitAttached waits until adopt has stored the engine's handle. The engine
// may run callbacks as soon as Attach queued the connection, before Attach
// returns; the wait is that short, so it yields rather than parks.
func (c *Conn) waitAttached() {
	for !c.attachedSet.Load() {
		runtime.Gosched()
	}
}

// engine returns the engine that reads c.
func (c *Conn) engine() engine { return c.g.engines[c.ei] }

// Resume is the queue's Resumer: the reader caught up.
func (s *sink) Resume() {
	c := s.c
	c.waitAttached()
	if c.att != nil {
		c.att.Resume()
	}
}

// Reader returns the connection's zero-copy Reader. Views it hands out point
// into the engine's arena and follow the Reader's rules.
//
// In blocking mode the Conn owns one Reader for its whole life; it belongs
// to one goroutine at a time.
//
// In handler mode the engine lends the connection a Reader while its
// callbacks run and takes it back once a callback returns with nothing
// buffered in it, so that an idle connection costs no Reader. Call Reader in
// each callback and do not keep the result past the callback: afterwards it
// may be serving another connection (a kept pointer fails with
// ErrOutsideCallback between the connection's callbacks and while the engine
// has the Reader back, but reads another connection's bytes once it is lent
// again). Outside the connection's
// callbacks Reader returns one whose every call fails with
// ErrOutsideCallback; calling it from another goroutine while a callback
// runs is a data race, as is any concurrent use of a Reader. Slices retained
// from it (Retain) stay valid on their own, until released.
func (c *Conn) Reader() *Reader {
	if c.h == nil {
		return c.r
	}
	if !c.inCallback.Load() {
		return c.outsideReader()
	}
	return c.lent()
}

// SetValue attaches v to the connection: state of the caller's own (a
// handler's per-connection session, say) found again with Value, with no
// map from connections to state. The Conn only keeps v; it never looks
// inside it. Safe for concurrent use. It allocates nothing beyond what
// converting v to an interface does (nothing for a pointer): an idle
// connection's state costs no box.
func (c *Conn) SetValue(v any) {
	c.amu.Lock()
	c.value = v
	c.amu.Unlock()
}

// Value returns what SetValue last attached, nil if nothing. Safe for
// concurrent use; it takes an uncontended lock, not an allocation.
func (c *Conn) Value() any {
	c.amu.Lock()
	v := c.value
	c.amu.Unlock()
	return v
}

// Engine reports which engine reads this connection and why it was chosen.
func (c *Conn) Engine() EngineInfo { return c.g.info }

// Read copies buffered bytes into p (io.Reader). It waits for data unless
// the connection is in handler mode.
// In handler mode it works only inside the connection's callbacks (else
// ErrOutsideCallback).
func (c *Conn) Read(p []byte) (int, error) { return c.Reader().Read(p) }

// ReadContext is Read with a context: it returns ctx.Err() when ctx ends
// while waiting, with nothing consumed.
func (c *Conn) ReadContext(ctx context.Context, p []byte) (int, error) {
	r := c.Reader()
	if len(p) == 0 {
		return r.Read(p)
	}
	if err := r.Wait(ctx, 1); err != nil && r.Buffered() == 0 {
		return 0, err
	}
	return r.Read(p)
}

// Write writes p to the socket. Called from a handler (on an engine loop),
// whether to the handler's own connection or another, it never waits: what
// the socket does not take at once is copied and flushed in order by a
// goroutine of the connection's own, and a later Write returns any error
// that flush met. Elsewhere, and from handlers of the
// portable engine (non-Linux builds, whose callbacks run on a goroutine of
// the connection's own), it waits like net.Conn.Write.
// Writes are delivered in the order the calls were made.
func (c *Conn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opErr("write", net.ErrClosed)
	}
	if c.g.lends && c.inCallback.Load() {
		// From a handler, on the engine loop (or, harmlessly, from another
		// goroutine while one of this connection's handlers runs): never
		// wait. (The portable engine has no loop: its handlers run on a
		// goroutine of the connection's own, which may wait.)
		return c.writeOnLoop(p)
	}
	c.wmu.Lock()
	// A handler may also write to another connection, of its engine or
	// another: its loop must not wait there either, or every connection it
	// serves would stop meanwhile (or wait for itself). Asking whether this
	// is a loop costs a gettid(2), so it is asked only where the write
	// could wait: behind another write, in a wrapped net.Conn or the
	// poller's file, or (writeWait) once the socket is full.
	if (c.flushing || c.writing || c.nc != nil || c.wfLocked() != nil) && c.onAnyLoop() {
		c.wmu.Unlock()
		return c.writeOnLoop(p)
	}
	for c.flushing || c.writing {
		c.wsLocked().cond.Wait()
	}
	if err := c.writableLocked(); err != nil {
		c.wmu.Unlock()
		return 0, err
	}
	c.writing = true
	wf := c.wfLocked()
	c.wmu.Unlock()
	n, err := c.writeWait(wf, p, true)
	c.wmu.Lock()
	c.writing = false
	c.writesEndedLocked()
	c.wakeWritersLocked()
	c.wmu.Unlock()
	return n, err
}

// onAnyLoop reports whether the caller runs on an engine loop, where a
// write must not wait.
func (c *Conn) onAnyLoop() bool { return c.g.lends && c.engine().onLoop() }

// writeWait writes all of p, waiting for the socket as needed. The caller
// owns the writing side (writing or flushing is set). wf is the poller's
// file as read under wmu. mayQueue (a Write's call, not the flusher's): on
// an engine loop, what the socket does not take at once is queued for the
// flusher instead of waited for.
func (c *Conn) writeWait(wf *os.File, p []byte, mayQueue bool) (int, error) {
	if c.nc != nil {
		return c.nc.Write(p)
	}
	n := 0
	if wf == nil {
		// No deadline can be set without wf: try the socket at once, and
		// make the poller's file only if it is full. The write(2) is made
		// outside wmu (an engine loop may want the lock meanwhile), with
		// rawWriting set under it: a Close waits for it before closing the
		// fd, even if a deadline set meanwhile made the poller's file.
		c.wmu.Lock()
		if c.fdClosed {
			c.wmu.Unlock()
			return 0, c.opErr("write", net.ErrClosed)
		}
		wf = c.wfLocked()
		c.rawWriting = wf == nil
		c.wmu.Unlock()
		if wf == nil {
			var err error
			n, err = writeNow(c.fd, p)
			c.wmu.Lock()
			c.rawWriting = false
			c.wakeWritersLocked()
			if err != nil || n == len(p) {
				c.wmu.Unlock()
				if err != nil {
					err = c.opErr("write", err)
				}
				return n, err
			}
			if mayQueue && c.onAnyLoop() {
				err := c.queueLocked(p[n:])
				c.wmu.Unlock()
				if err != nil {
					return n, err
				}
				return len(p), nil
			}
			wf, err = c.fileLocked()
			c.wmu.Unlock()
			if err != nil {
				return n, c.opErr("write", err)
			}
		}
	}
	m, err := wf.Write(p[n:])
	if err != nil {
		err = c.opErr("write", err)
	}
	return n + m, err
}

// fileLocked returns the *os.File that parks a bare socket's writes in Go's
// poller, making it on first use. It owns fd from then on. wmu is held.
func (c *Conn) fileLocked() (*os.File, error) {
	if c.fdClosed {
		return nil, net.ErrClosed
	}
	ws := c.wsLocked()
	if ws.wf == nil {
		// The fd is non-blocking, so the file is registered with the poller.
		ws.wf = os.NewFile(uintptr(c.fd), "")
	}
	return ws.wf, nil
}

func (c *Conn) writeOnLoop(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writableLocked(); err != nil {
		return 0, err
	}
	total := len(p)
	if !c.flushing && !c.writing {
		n, err := writeNow(c.fd, p)
		if err != nil {
			ws := c.wsLocked()
			ws.err = c.opErr("write", err)
			return n, ws.err
		}
		if n == len(p) {
			return n, nil
		}
		p = p[n:]
	}
	if err := c.queueLocked(p); err != nil {
		return total - len(p), err
	}
	return total, nil // all of p: written, or queued in order
}

// queueLocked appends p to the bytes the flusher goroutine writes, in
// order, starting it if none runs. wmu is held.
func (c *Conn) queueLocked(p []byte) error {
	if !c.flushing && !c.tryHold() {
		// The last hold went (a Close is closing the fd): a flusher
		// started now would write to a closed, perhaps reused, number.
		return c.opErr("write", net.ErrClosed)
	}
	ws := c.wsLocked()
	ws.pending = append(ws.pending, p...)
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	return nil
}

// writableLocked says why a write may not start: the fd is closed, an
// earlier write failed, or CloseWrite was called. wmu is held.
func (c *Conn) writableLocked() error {
	switch {
	case c.fdClosed || c.closed.Load():
		// Close came (a Write that waited behind a flush sees it here) or
		// finished: the fd number may already belong to another file.
		return c.opErr("write", net.ErrClosed)
	case c.ws != nil && c.ws.shut:
		return c.opErr("write", os.NewSyscallError("write", unix.EPIPE))
	}
	return c.werrLocked()
}

// writesEndedLocked runs when a write in flight ends (writing or flushing
// dropped): a CloseWrite that came meanwhile shuts the socket's writing
// side now, after every byte a Write accepted. wmu is held.
func (c *Conn) writesEndedLocked() {
	if ws := c.ws; ws != nil && ws.shutDue && !c.flushing && !c.writing && !c.fdClosed {
		ws.shutDue = false
		_ = unix.Shutdown(c.fd, unix.SHUT_WR) // CloseWrite returned already: nobody to tell
	}
}

// flush writes what handlers queued, off the loop, in Go's poller.
func (c *Conn) flush() {
	var buf []byte
	c.wmu.Lock()
	ws := c.wsLocked() // made by writeOnLoop already
	for {
		for c.writing {
			ws.cond.Wait()
		}
		if len(ws.pending) == 0 || ws.err != nil {
			break
		}
		buf, ws.pending = ws.pending, buf[:0]
		wf := ws.wf
		c.wmu.Unlock()
		_, err := c.writeWait(wf, buf, false)
		c.wmu.Lock()
		if err != nil {
			ws.err = err
		}
	}
	ws.pending = nil
	c.flushing = false
	c.writesEndedLocked()
	ws.cond.Broadcast()
	c.wmu.Unlock()
	c.drop(false)
}

// Close stops the engine reading the connection, gives back every block its
// queue and Reader hold, and closes the socket once (after the engine let go
// of it and queued handler writes are flushed, for at most 5 s). It is safe
// to call from any goroutine, handlers included, and concurrently with data
// arriving; a Reader call waiting on another goroutine returns an error
// matching net.ErrClosed. Later calls return an error matching net.ErrClosed.
//
// Elsewhere Close returns once the engine has let go of the connection.
// From a handler (on any engine's loop, or on the portable engine's
// goroutine of the connection) it does not wait for that, so that no loop
// waits for another: the blocks and the socket go back as soon as the
// engine lets go, right after the callback.
func (c *Conn) Close() error { return c.close(c.closeMayWait()) }

// closeMayWait reports whether Close may wait for the engine to let go: not
// on an engine loop (which may be the one to let go, or wait for the
// caller's), nor from a handler of the portable engine (its callbacks run
// on the goroutine that lets go).
func (c *Conn) closeMayWait() bool {
	if c.h != nil && !c.g.lends && c.inCallback.Load() {
		return false
	}
	return !c.engine().onLoop()
}

// close is Close; wait says whether it may wait for the engine to let go.
// The engine's side (the sink, guard) passes false.
func (c *Conn) close(wait bool) error {
	if !c.closed.CompareAndSwap(false, true) {
		return c.opErr("close", net.ErrClosed)
	}
	c.q.Close()
	c.waitAttached() // a callback may run before adopt has the handle
	c.att.Detach()
	if c.h == nil {
		c.r.shutdown()
	}
	c.wmu.Lock()
	if c.flushing {
		_ = c.setWriteDeadlineLocked(time.Now().Add(closeFlushTimeout))
	}
	c.wmu.Unlock()
	if wait {
		c.detached.Wait()
	}
	c.drop(!wait)
	return nil
}

// tryHold adds a hold unless the last one is gone.
func (c *Conn) tryHold() bool {
	for {
		n := c.holds.Load()
		if n <= 0 {
			return false
		}
		if c.holds.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// drop releases one hold; the last closes the socket and the group
// reference. engineSide says the caller may be the engine's own goroutine
// (its loop, or the portable engine's goroutine of the connection), where
// releasing the group, which may stop the engines, must not be done inline.
func (c *Conn) drop(engineSide bool) {
	if c.holds.Add(-1) != 0 {
		return
	}
	// A write(2) on the bare fd is made under wmu (writeOnLoop) or with
	// rawWriting set (writeWait): closing once it is done, under wmu,
	// cannot let a write land on a reused fd number. A write parked in wf
	// is safe to close under.
	c.wmu.Lock()
	for c.rawWriting {
		c.wsLocked().cond.Wait() // not long: the fd is non-blocking
	}
	c.amu.Lock()
	c.fdClosed = true
	c.amu.Unlock()
	switch {
	case c.nc != nil:
		_ = c.nc.Close()
	case c.wfLocked() != nil:
		_ = c.ws.wf.Close()
	default:
		_ = unix.Close(c.fd)
	}
	c.wmu.Unlock()
	if engineSide || c.engine().onLoop() {
		go c.g.release() // the group may close this very loop: not from inside it
	} else {
		c.g.release()
	}
}

func (c *Conn) opErr(op string, err error) error {
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err // a bare socket's *os.File names no path
	}
	if errors.Is(err, os.ErrClosed) {
		// Only Close closes a bare socket's *os.File: for the caller the
		// connection is closed, as net.Conn would say.
		err = net.ErrClosed
	}
	if errors.Is(err, net.ErrClosed) && !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("zcio/reader: %s: %w", op, err)
	}
	la := c.LocalAddr()
	return &net.OpError{Op: op, Net: la.Network(), Source: la, Addr: c.RemoteAddr(), Err: err}
}

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr {
	if c.nc != nil {
		return c.nc.LocalAddr()
	}
	return c.lookupAddrs().local
}

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr {
	if c.nc != nil {
		return c.nc.RemoteAddr()
	}
	return c.lookupAddrs().remote
}

// lookupAddrs returns a bare socket's addresses, asking the kernel the first
// time. Once the fd is closed, addresses never looked up are reported as
// empty ones of the socket's kind.
func (c *Conn) lookupAddrs() *connAddrs {
	c.amu.Lock()
	defer c.amu.Unlock()
	if c.addrs != nil {
		return c.addrs
	}
	var la, ra net.Addr
	if !c.fdClosed {
		la, _ = unix.LocalAddr(c.fd)
		ra, _ = unix.PeerAddr(c.fd)
	}
	if la == nil || ra == nil {
		empty := func() net.Addr {
			if c.kind == connUnix {
				return &net.UnixAddr{Net: "unix"}
			}
			return &net.TCPAddr{}
		}
		if la == nil {
			la = empty()
		}
		if ra == nil {
			ra = empty()
		}
		if !c.fdClosed {
			return &connAddrs{la, ra} // do not cache a failed lookup of an open socket
		}
	}
	c.addrs = &connAddrs{la, ra}
	return c.addrs
}

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the time after which a waiting Read or Reader call
// returns an error matching os.ErrDeadlineExceeded, with nothing consumed.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.q.SetDeadline(t)
	return nil
}

// SetWriteDeadline sets the time after which a Write waiting for the socket
// fails with an error matching os.ErrDeadlineExceeded. Writes queued by
// handlers are flushed under it too.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		// Close set its own bound on the last flush: not the caller's to
		// lift. (Checked under wmu: Close sets closed before it takes wmu
		// to put that bound.)
		return c.opErr("set", net.ErrClosed)
	}
	if err := c.setWriteDeadlineLocked(t); err != nil {
		return c.opErr("set", err)
	}
	return nil
}

func (c *Conn) setWriteDeadlineLocked(t time.Time) error {
	if c.nc != nil {
		return c.nc.SetWriteDeadline(t)
	}
	wf, err := c.fileLocked()
	if err != nil {
		return err
	}
	return wf.SetWriteDeadline(t)
}

// CloseWrite shuts down the writing side (TCP and Unix connections): the
// peer reads the end of the stream after every byte a Write accepted (bytes
// a handler's Write queued are flushed first), and later Writes fail.
func (c *Conn) CloseWrite() error {
	if c.nc != nil {
		if _, ok := c.nc.Conn.(interface{ CloseWrite() error }); !ok {
			return c.opErr("close", os.ErrInvalid)
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.fdClosed || c.closed.Load() {
		return c.opErr("close", net.ErrClosed)
	}
	ws := c.wsLocked()
	ws.shut = true
	if c.flushing || c.writing {
		ws.shutDue = true // the write in flight shuts it down when it ends
		return nil
	}
	if err := unix.Shutdown(c.fd, unix.SHUT_WR); err != nil {
		return c.opErr("close", os.NewSyscallError("shutdown", err))
	}
	return nil
}

var _ net.Conn = (*Conn)(nil)

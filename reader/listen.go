package reader

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Listener accepts connections and hands them to its engines. Closing it
// stops accepting; connections already accepted live on until their own
// Close, and the engines stop when the last of them is closed.
type Listener struct {
	ln        net.Listener
	lf        *os.File        // Linux: a duplicate of the listening socket, for bare accepts
	rc        syscall.RawConn // lf's, waited on in Go's poller
	acc       *acceptState    // Linux: what a bare accept needs, made once
	kind      uint8           // connTCP or connUnix
	g         *group
	o         options
	closed    atomic.Bool
	done      chan struct{} // closed by Close: ends Serve's back-off wait
	closeOnce sync.Once
}

// Listen announces on a local address ("tcp", "tcp4", "tcp6" or "unix") and
// starts the engines its connections will be read by. Options choose the
// engine (WithEngine), the number of engines (WithEngines), the memory budget
// (WithMemory, WithBlockSize), the per-connection back-pressure
// threshold (WithQueueLimit), the io_uring engine's receive burst
// (WithReceiveBurst) and when idle engines give memory back (WithIdleTrim).
// Asking for io_uring where it cannot run is an
// error wrapping ErrEngineUnavailable.
func Listen(network, addr string, opts ...Option) (*Listener, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, fmt.Errorf("zcio/reader: listen %s: %w", network, ErrUnsupportedConn)
	}
	g, err := newGroup(&o.engineOptions)
	if err != nil {
		return nil, fmt.Errorf("zcio/reader: listen: %w", err)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		g.release()
		return nil, err
	}
	l := &Listener{ln: ln, g: g, o: o, done: make(chan struct{})}
	for i := range g.readers {
		g.readers[i].o = &l.o // the settings of the Readers its handlers borrow
	}
	if network == "unix" {
		l.kind = connUnix
	}
	if err := l.openAccept(); err != nil {
		_ = ln.Close()
		g.release()
		return nil, fmt.Errorf("zcio/reader: listen: %w", err)
	}
	return l, nil
}

// Accept waits for the next connection and attaches it to an engine, in
// blocking mode: its Reader's calls wait for data.
func (l *Listener) Accept() (*Conn, error) { return l.accept(nil) }

func (l *Listener) accept(h *handlerRef) (*Conn, error) {
	c, err, _ := l.acceptOne(h)
	return c, err
}

// acceptOne accepts one connection. listenerErr says the error came from the
// listener (closed, say), not from attaching that one connection.
func (l *Listener) acceptOne(h *handlerRef) (c *Conn, err error, listenerErr bool) {
	// Hold the engines for the accept: a Close meanwhile must not close
	// them under a connection the kernel has already handed over.
	if !l.g.tryRetain() {
		return nil, &net.OpError{Op: "accept", Net: l.ln.Addr().Network(), Addr: l.ln.Addr(), Err: net.ErrClosed}, true
	}
	defer l.g.release()
	nc, fd, err := l.acceptConn()
	if err != nil {
		return nil, err, true
	}
	c, err = adopt(nc, fd, l.kind, l.g, h, &l.o)
	if err != nil {
		if nc != nil {
			_ = nc.Close()
		} else {
			closeFD(fd)
		}
		return nil, err, false
	}
	return c, nil, false
}

// Addr returns the listener's network address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Engine reports the engine that reads this listener's connections and why.
func (l *Listener) Engine() EngineInfo { return l.g.info }

// Close stops listening. Accepted connections are not closed.
func (l *Listener) Close() error {
	l.closed.Store(true)
	err := l.ln.Close()
	if l.lf != nil {
		// The socket stops listening only when both descriptors are closed;
		// this also wakes an Accept waiting on it.
		if ferr := l.lf.Close(); err == nil && !errors.Is(ferr, os.ErrClosed) {
			err = ferr
		}
	}
	l.closeOnce.Do(func() {
		close(l.done)
		l.g.release()
	})
	return err
}

// Wrap adopts a TCP or Unix stream connection accepted or dialled elsewhere:
// from now on an engine reads it and the returned Conn owns it (its Close
// closes nc). The engine options (WithEngine, WithEngines, WithMemory,
// WithBlockSize, WithQueueLimit, WithReceiveBurst, WithIdleTrim, WithDebug)
// choose a process-wide group of engines: the first Wrap with a given set of
// settings starts it, every later Wrap with the same settings shares it, and
// it is kept for the life of the process, so a program should use few
// distinct sets. The other options apply to the Conn's Reader.
func Wrap(nc net.Conn, opts ...Option) (*Conn, error) {
	if err := checkConn(nc); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	g, err := sharedGroup(&o.engineOptions)
	if err != nil {
		return nil, fmt.Errorf("zcio/reader: wrap: %w", err)
	}
	fd, err := connFD(nc)
	if err != nil {
		return nil, fmt.Errorf("zcio/reader: wrap: %w", err)
	}
	kind := connTCP
	if _, ok := nc.(*net.UnixConn); ok {
		kind = connUnix
	}
	return adopt(nc, fd, kind, g, nil, &o)
}

// checkConn returns an error wrapping ErrUnsupportedConn unless nc is a
// non-nil TCP or Unix stream connection.
func checkConn(nc net.Conn) error {
	switch v := nc.(type) {
	case nil:
		return fmt.Errorf("zcio/reader: wrap: nil net.Conn: %w", ErrUnsupportedConn)
	case *net.TCPConn:
		if v == nil {
			return fmt.Errorf("zcio/reader: wrap: nil %T: %w", nc, ErrUnsupportedConn)
		}
	case *net.UnixConn:
		if v == nil {
			return fmt.Errorf("zcio/reader: wrap: nil %T: %w", nc, ErrUnsupportedConn)
		}
		if a := v.LocalAddr(); a != nil && a.Network() != "unix" {
			return fmt.Errorf("zcio/reader: wrap: %s socket: %w", a.Network(), ErrUnsupportedConn)
		}
	default:
		return fmt.Errorf("zcio/reader: wrap: %T: %w", nc, ErrUnsupportedConn)
	}
	return nil
}

// connFD returns the socket fd of a connection checkConn accepted. The fd
// stays owned by nc.
func connFD(nc net.Conn) (int, error) {
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var nerr error
	if err := rc.Control(func(s uintptr) { fd, nerr = int(s), setNonblock(int(s)) }); err != nil {
		return -1, err
	}
	if nerr != nil {
		return -1, nerr
	}
	return fd, nil
}

// Handler receives a handler-mode connection's events. Every method runs on
// the engine loop that reads the connection, one at a time per connection,
// and must not block: the Reader is in non-blocking mode, so a call that
// would wait returns ErrWouldBlock with nothing consumed. Whatever a handler
// leaves unconsumed stays queued and is offered again, with more, at the next
// OnData; OnData is not called again until more data arrives or the stream
// ends. The Reader is lent to the connection for the callback: get it with
// Conn.Reader in each callback and do not keep it (see Conn.Reader). A handler that panics has its connection closed (OnClose gets an
// error wrapping ErrHandlerPanic); the engine goes on serving the others.
type Handler interface {
	// OnOpen runs once, before any data is read.
	OnOpen(c *Conn)
	// OnData runs when new data has been queued, and once more when the
	// stream ends, even with nothing left buffered (Buffered is then 0 and
	// a read returns the end's error).
	OnData(c *Conn)
	// OnClose runs once when the connection is done: err is nil after the
	// peer's orderly close or the server's Close, else why it ended. After
	// it returns the connection is closed.
	OnClose(c *Conn, err error)
}

// ErrHandlerPanic is wrapped by the error OnClose gets after the handler
// panicked.
var ErrHandlerPanic = errors.New("zcio/reader: handler panicked")

// Serve accepts connections from ln and runs h for each on the engine loops,
// until Accept fails (for example after ln.Close), whose error it returns.
// When the process runs out of file descriptors it waits and tries again
// (5 ms, doubling up to 1 s), until ln.Close.
func Serve(ln *Listener, h Handler) error {
	if ln == nil || h == nil {
		return fmt.Errorf("zcio/reader: serve: nil listener or handler: %w", ErrInvalidConfig)
	}
	hr := &handlerRef{h}
	var backoff time.Duration
	for {
		_, err, listenerErr := ln.acceptOne(hr)
		if err == nil || !listenerErr {
			backoff = 0
			continue // a connection that could not be attached was closed; serve the rest
		}
		if isTimeout(err) {
			continue
		}
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			// Out of file descriptors: wait for connections to close
			// rather than give up serving (5 ms, doubling up to 1 s).
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ln.done: // the next accept reports the Close
				t.Stop()
			}
			continue
		}
		return err
	}
}

// callOpen runs OnOpen on the loop.
func (c *Conn) callOpen() {
	c.guard(func() { c.h.OnOpen(c) })
}

// callData runs OnData on the loop, if the connection is still open and has
// data or an end to show.
func (c *Conn) callData() {
	if c.ended || c.closed.Load() {
		return
	}
	c.guard(func() { c.h.OnData(c) })
}

// handlerEnd delivers OnClose once and closes the connection.
func (c *Conn) handlerEnd(err error) {
	if c.ended {
		return
	}
	c.ended = true
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	c.guard(func() { c.h.OnClose(c, err) })
	_ = c.close(false) // the engine's side: never wait for itself
}

// guard runs fn and turns a panic into the connection's end.
func (c *Conn) guard(fn func()) {
	c.inCallback.Store(true)
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("%w: %v\n%s", ErrHandlerPanic, p, debug.Stack())
			if !c.ended {
				c.ended = true
				func() {
					defer func() { _ = recover() }() // a panicking OnClose changes nothing
					c.h.OnClose(c, err)
				}()
			}
			c.inCallback.Store(false)
			_ = c.close(false) // the engine's side: never wait for itself
			return
		}
		c.giveBack() // before inCallback drops: see Conn.Reader
		c.inCallback.Store(false)
	}()
	fn()
}

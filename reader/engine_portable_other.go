//go:build !linux

package reader

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/segq"
)

// fallbackName is the fallback engine's name on this OS.
const fallbackName = NamePortable

// portableEngine reads each connection on a goroutine of its own, through
// net.Conn, into blocks of its arena: the fallback where epoll and io_uring
// do not exist. It has no loop, so handler callbacks run on the
// connection's goroutine.
type portableEngine struct {
	a      *arena.Arena
	mu     sync.Mutex
	closed bool
	conns  map[*portableConn]struct{}
	wg     sync.WaitGroup
	done   chan struct{}
	freed  chan struct{}   // signalled when blocks come back
	rel    func(arena.Ref) // released, made once
}

type portableConn struct {
	e    *portableEngine
	nc   net.Conn
	s    engineSink
	wake chan struct{}
	stop chan struct{}
	once sync.Once
}

func newFallbackEngine(a *arena.Arena, _ time.Duration, _ func()) (engine, error) {
	e := &portableEngine{a: a, conns: make(map[*portableConn]struct{}), done: make(chan struct{}),
		freed: make(chan struct{}, 1)}
	e.rel = e.released
	return e, nil
}

func (e *portableEngine) attach(nc net.Conn, _ int, s engineSink) (attachment, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("zcio/reader: portable engine closed")
	}
	c := &portableConn{e: e, nc: nc, s: s, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	e.conns[c] = struct{}{}
	e.wg.Add(1)
	go c.run()
	return c, nil
}

func (c *portableConn) run() {
	defer c.e.wg.Done()
	defer func() {
		c.e.mu.Lock()
		delete(c.e.conns, c)
		c.e.mu.Unlock()
		c.s.Detached()
	}()
	if o, ok := c.s.(interface{ Opened() }); ok {
		o.Opened()
	}
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		r, ok := c.e.a.Take()
		if !ok {
			select { // the arena is dry: wait for blocks
			case <-c.e.freed:
			case <-c.stop:
				return
			}
			continue
		}
		n, err := c.nc.Read(c.e.a.Bytes(r.ID()))
		if n > 0 {
			pause := c.s.Deliver(r, 0, n)
			c.s.Flush()
			if pause {
				select {
				case <-c.wake:
				case <-c.stop:
					return
				}
			}
		} else {
			c.e.a.Release(r)
		}
		if err != nil {
			select {
			case <-c.stop:
			default:
				c.s.End(err)
				<-c.stop
			}
			return
		}
	}
}

func (c *portableConn) Resume() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *portableConn) Detach() {
	c.once.Do(func() {
		close(c.stop)
		// A Read in progress returns once the owner closes nc after
		// Detached; unblock it now so that Detached can come.
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	})
}

func (e *portableEngine) arena() *arena.Arena { return e.a }

// spiller: the portable engine takes a block per read and never shares one,
// so there is nothing to spill.
func (e *portableEngine) spiller() *segq.Spiller { return nil }

func (e *portableEngine) releaser() func(arena.Ref) { return e.rel }

func (e *portableEngine) released(r arena.Ref) {
	e.a.Release(r)
	select {
	case e.freed <- struct{}{}:
	default:
	}
}

func (e *portableEngine) onLoop() bool { return false }

func (e *portableEngine) close() error {
	e.mu.Lock()
	e.closed = true
	conns := make([]*portableConn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	for _, c := range conns {
		c.Detach()
	}
	e.wg.Wait()
	return e.a.Close()
}

func writeNow(int, []byte) (int, error) {
	return 0, errors.New("zcio/reader: no loop writes on this OS")
}

func closeArenaAfter(done <-chan struct{}, a *arena.Arena) {}

var aLongTimeAgo = time.Unix(1, 0)

func (e *portableEngine) failed() bool { return false }

//go:build linux

package reader

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// trickle sends n bytes of a message to w in 100-byte pieces, one every
// millisecond, until done or stop closes.
// streams is how many connections stream beside the trickled one.
const streams = 16

// handlerStreams is that in handler mode. With 8, and a receive burst as
// large as the arena, the io_uring engine's 64-block ring stayed dry and
// the trickled connection, waiting in the engine's list of starved
// connections, got nothing in 15 s under the race detector (3 of 3 runs)
// while the others went on: every re-arm ended with ENOBUFS, with 54
// blocks published. The loop now reads for such a connection itself
// (ring.Engine's serveStarved): about 0.6 s.
const handlerStreams = 8

func trickle(w io.Writer, msg []byte, stop <-chan struct{}) {
	for len(msg) > 0 {
		select {
		case <-stop:
			return
		case <-time.After(time.Millisecond):
		}
		k := min(100, len(msg))
		if _, err := w.Write(msg[:k]); err != nil {
			return
		}
		msg = msg[k:]
	}
}

// stream writes msg to w over and over until a write fails (the test closes
// w to stop it).
func stream(w io.Writer, msg []byte) {
	for {
		if _, err := w.Write(msg); err != nil {
			return
		}
	}
}

// A blocking reader waits for a 32 KiB message that trickles in 100-byte
// pieces while other connections stream: each piece lands in a block
// shared with the others' bytes (16 of them: the io_uring engine's tiny
// ring stays dry, and the slow connection used to wait seconds for its
// turn, until the loop read for starved connections itself). The reader
// compacts what it holds before asking for more at its block bound (before, every piece pinned one more
// block, the arena ran dry and every connection of the engine stopped for
// good: the spill for a dry arena moved at most one block's worth).
func TestTrickledMessageDoesNotStopTheEngine(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			const bs, msg = 4096, 32 << 10
			ln := listen(t, kind, WithEngines(1), WithMemory(64*bs), WithBlockSize(bs))
			slowPeer := dial(t, ln)
			slow, err := ln.Accept()
			require.NoError(t, err)
			var peers []net.Conn
			var conns []*Conn
			var read atomic.Int64
			var wg sync.WaitGroup
			for range streams {
				p := dial(t, ln)
				c, err := ln.Accept()
				require.NoError(t, err)
				peers, conns = append(peers, p), append(conns, c)
				wg.Add(2)
				go func() { defer wg.Done(); stream(p, make([]byte, 1000)) }()
				go func() {
					defer wg.Done()
					for {
						n, err := c.Reader().Discard(1000)
						read.Add(int64(n))
						if err != nil {
							return
						}
					}
				}()
			}
			stop := make(chan struct{})
			wg.Add(1)
			go func() { defer wg.Done(); trickle(slowPeer, make([]byte, msg), stop) }()

			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			err = slow.Reader().Wait(ctx, msg)
			cancel()
			runs, bound := slow.q.Runs(), max(2, ln.g.engines[0].arena().Len()/8)
			before := read.Load()
			require.Eventually(t, func() bool { return read.Load() > before }, 5*time.Second, time.Millisecond,
				"the streaming connections stopped")
			close(stop)
			for _, p := range append(peers, slowPeer) {
				require.NoError(t, p.Close())
			}
			wg.Wait()
			for _, c := range append(conns, slow) {
				require.NoError(t, c.Close())
			}
			require.NoError(t, ln.Close())
			require.NoError(t, err, "the trickled %d-byte message did not complete", msg)
			// The message fills 8 blocks (the bound), compacted when its pieces
			// go past that; pieces received since add a few.
			assert.LessOrEqual(t, runs, 2*bound, "blocks the trickled message pins")
			arenasIdle(t, ln.g)
		})
	}
}

// framedHandler consumes 4-byte length-prefixed messages once each is whole
// and counts them per connection.
type framedHandler struct {
	msgs   atomic.Int64
	slow   atomic.Pointer[Conn] // the connection whose message is 32 KiB
	done   chan struct{}        // closed when the slow connection's message is whole
	closed chan error
}

func (h *framedHandler) OnOpen(*Conn) {}
func (h *framedHandler) OnData(c *Conn) {
	r := c.Reader()
	for r.Buffered() >= 4 {
		var hdr [4]byte
		_ = r.Peek(4, func(v [][]byte) {
			k := 0
			for _, b := range v {
				k += copy(hdr[k:], b)
			}
		})
		n := 4 + int(binary.BigEndian.Uint32(hdr[:]))
		if r.Buffered() < n {
			return // the rest comes with a later OnData
		}
		_, _ = r.Discard(n)
		h.msgs.Add(1)
		if n > 1<<10 && h.slow.CompareAndSwap(nil, c) {
			close(h.done)
		}
	}
}
func (h *framedHandler) OnClose(c *Conn, err error) { h.closed <- err }

// TestTrickledMessageDoesNotStopTheEngine in handler mode: the handler
// waits for whole messages, the Reader's bytes are compacted at the end of
// a callback when they crowd the blocks, and the others go on.
func TestHandlerTrickledMessageDoesNotStopTheEngine(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			const bs, msg = 4096, 32 << 10
			h := &framedHandler{done: make(chan struct{}), closed: make(chan error, handlerStreams+1)}
			// A burst as large as the arena keeps the streaming
			// connections' receives armed on io_uring (the fallback
			// ignores it).
			ln, served := serve(t, kind, h, WithEngines(1), WithMemory(64*bs), WithBlockSize(bs),
				WithReceiveBurst(1<<30))
			var peers []net.Conn
			var wg sync.WaitGroup
			small := binary.BigEndian.AppendUint32(nil, 996)
			small = append(small, make([]byte, 996)...)
			for range handlerStreams {
				p := dial(t, ln)
				peers = append(peers, p)
				wg.Add(1)
				go func() { defer wg.Done(); stream(p, small) }()
			}
			slowPeer := dial(t, ln)
			big := binary.BigEndian.AppendUint32(nil, msg)
			big = append(big, make([]byte, msg)...)
			stop := make(chan struct{})
			wg.Add(1)
			go func() { defer wg.Done(); trickle(slowPeer, big, stop) }()

			t0 := time.Now()
			select {
			case <-h.done:
				t.Logf("the trickled message was whole after %v", time.Since(t0))
			case <-time.After(15 * time.Second):
				t.Error("the trickled message did not complete in 15 s")
			}
			before := h.msgs.Load()
			assert.Eventually(t, func() bool { return h.msgs.Load() > before }, 5*time.Second, time.Millisecond,
				"the streaming connections stopped")
			close(stop)
			endServe(t, ln, served, h.closed, append(peers, slowPeer)...)
			wg.Wait()
		})
	}
}

// A handler that consumed a header and waits for a body of exactly the
// queue limit, "the largest request the Reader accepts", gets it: the
// pause is lifted by what the Reader holds unconsumed, not by the queue's
// pending count, which still has the header's bytes of a partly consumed
// segment (found by a review: the connection stayed paused for good).
func TestHandlerWaitsForLimitAfterPartlyConsumedSegment(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			const bs, limit = 4096, 16 << 10
			h := &limitHandler{closed: make(chan error, 1)}
			ln, served := serve(t, kind, h, WithEngines(1), WithMemory(64*bs), WithBlockSize(bs), WithQueueLimit(limit))
			p := dial(t, ln)
			// The header and the body's first 1,000 bytes; once the handler
			// has consumed the header, all but the body's last 50 bytes;
			// then those.
			for i, n := range []int{100 + 1000, limit - 1000 - 50, 50} {
				if i > 0 {
					time.Sleep(20 * time.Millisecond)
				}
				_, err := p.Write(make([]byte, n))
				require.NoError(t, err)
			}
			assert.Eventually(t, func() bool { return h.bodies.Load() == 1 }, 5*time.Second, time.Millisecond,
				"a %d-byte body (the limit) after a consumed 100-byte header never completed", limit)
			endServe(t, ln, served, h.closed, p)
		})
	}
}

// limitHandler consumes a 100-byte header, then waits until a body of
// exactly the limit is buffered.
type limitHandler struct {
	header bool
	bodies atomic.Int64
	closed chan error
}

func (h *limitHandler) OnOpen(*Conn)               {}
func (h *limitHandler) OnClose(_ *Conn, err error) { h.closed <- err }
func (h *limitHandler) OnData(c *Conn) {
	r := c.Reader()
	if !h.header {
		if _, err := r.Discard(100); err != nil {
			return
		}
		h.header = true
	}
	if r.Buffered() >= r.Limit() {
		if _, err := r.Discard(r.Limit()); err == nil {
			h.bodies.Add(1)
		}
	}
}

package reader

import (
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lendStep is what lendHandler saw in one OnData.
type lendStep struct {
	hadReader bool    // the connection held a Reader when the callback began
	r         *Reader // the Reader the callback got
	got       string  // what it consumed
	left      int     // bytes it left buffered
	free      int     // the engine's idle Readers when the callback began
}

// lendHandler consumes at most take bytes per OnData and reports each call.
type lendHandler struct {
	take  atomic.Int64
	conns chan *Conn
	steps chan lendStep
}

func (h *lendHandler) OnOpen(c *Conn) { h.conns <- c }

func (h *lendHandler) OnData(c *Conn) {
	had := c.r != nil // on the loop: the only goroutine that changes c.r
	free := len(c.g.readers[c.ei].free)
	r := c.Reader()
	n := min(r.Buffered(), int(h.take.Load()))
	var got []byte
	if err := r.ReadRange(n, func(b []byte) { got = append(got, b...) }); err != nil {
		panic(err)
	}
	h.steps <- lendStep{hadReader: had, r: r, got: string(got), left: r.Buffered(), free: free}
}

func (h *lendHandler) OnClose(*Conn, error) {}

// TestHandlerReaderIsLent: a handler-mode connection holds a Reader only
// while bytes are buffered in it; an emptied Reader goes back to the
// engine and is lent again, and outside the callbacks the Reader refuses
// every call.
func TestHandlerReaderIsLent(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			h := &lendHandler{conns: make(chan *Conn, 1), steps: make(chan lendStep, 4)}
			h.take.Store(2)
			ln, served := serve(t, kind, h, WithEngines(1), WithMemory(1<<20))
			g := ln.g
			peer := dial(t, ln)
			defer peer.Close()
			c := <-h.conns
			step := func(send string) lendStep {
				t.Helper()
				_, err := peer.Write([]byte(send))
				require.NoError(t, err)
				select {
				case s := <-h.steps:
					return s
				case <-time.After(5 * time.Second):
					t.Fatal("no OnData")
				}
				return lendStep{}
			}

			s1 := step("hello")
			assert.False(t, s1.hadReader, "an idle connection holds no Reader")
			assert.Equal(t, "he", s1.got)
			assert.Equal(t, 3, s1.left)

			// Kept past its callback while it still holds "llo": refused
			// until the next callback, and nothing is consumed.
			for c.inCallback.Load() {
				runtime.Gosched()
			}
			assert.ErrorIs(t, s1.r.Peek(1, func([][]byte) {}), ErrOutsideCallback)
			_, err := s1.r.Discard(1)
			assert.ErrorIs(t, err, ErrOutsideCallback)
			assert.ErrorIs(t, s1.r.Close(), ErrOutsideCallback)

			s2 := step("!") // the Reader still holds "llo": it stays lent
			assert.True(t, s2.hadReader)
			assert.Same(t, s1.r, s2.r)
			assert.Equal(t, "ll", s2.got)
			assert.Equal(t, 2, s2.left)

			h.take.Store(1 << 20)
			s3 := step("?")
			assert.True(t, s3.hadReader)
			assert.Equal(t, "o!?", s3.got)
			assert.Zero(t, s3.left)

			s4 := step("x") // emptied by s3: given back, then lent again
			assert.False(t, s4.hadReader)
			assert.Same(t, s1.r, s4.r, "the engine lends the Reader it got back")
			assert.Equal(t, "x", s4.got)

			// Outside the callbacks: refused, nothing consumed.
			_, err = peer.Write([]byte("later"))
			require.NoError(t, err)
			s5 := <-h.steps
			assert.Equal(t, "later", s5.got)
			for c.inCallback.Load() { // s5 was sent from inside OnData
				runtime.Gosched()
			}
			r := c.Reader()
			err = r.Peek(1, func([][]byte) {})
			assert.ErrorIs(t, err, ErrOutsideCallback)
			_, err = c.Read(make([]byte, 4))
			assert.ErrorIs(t, err, ErrOutsideCallback)
			assert.Zero(t, r.Buffered())
			// A lent Reader kept past its callback fails the same way once
			// the engine has it back.
			err = s5.r.Peek(1, func([][]byte) {})
			assert.ErrorIs(t, err, ErrOutsideCallback)

			require.NoError(t, c.Close())
			require.NoError(t, ln.Close())
			assert.ErrorIs(t, <-served, net.ErrClosed)
			arenasIdle(t, g)
		})
	}
}

// TestHandlerReaderLentAcrossConnections: many connections of one engine,
// each left with a partial message between callbacks, keep their bytes in
// Readers of their own; once emptied, every one of those Readers is back in
// the engine's pool.
func TestHandlerReaderLentAcrossConnections(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			const conns = 16
			h := &lendHandler{conns: make(chan *Conn, conns), steps: make(chan lendStep, 4*conns)}
			h.take.Store(3)
			ln, served := serve(t, kind, h, WithEngines(1), WithMemory(1<<20))
			g := ln.g
			peers := make([]net.Conn, conns)
			for i := range peers {
				peers[i] = dial(t, ln)
				defer peers[i].Close()
				<-h.conns
			}
			for _, p := range peers {
				_, err := p.Write([]byte("abcd")) // "abc" read, "d" kept
				require.NoError(t, err)
			}
			kept := 0
			lent := map[*Reader]bool{}
			for range conns {
				s := <-h.steps
				assert.Equal(t, "abc", s.got)
				kept += s.left
				lent[s.r] = true
			}
			assert.Equal(t, conns, kept)
			assert.Len(t, lent, conns, "a Reader holding bytes is lent to one connection only")
			for _, p := range peers {
				_, err := p.Write([]byte("ef")) // "def" read: empty again
				require.NoError(t, err)
			}
			for range conns {
				s := <-h.steps
				assert.True(t, s.hadReader)
				assert.Equal(t, "def", s.got)
				assert.Zero(t, s.left)
			}
			maxFree := 0
			for _, p := range peers {
				_, err := p.Write([]byte("g"))
				require.NoError(t, err)
				s := <-h.steps // one at a time: each borrows and gives back
				assert.False(t, s.hadReader)
				assert.Equal(t, "g", s.got)
				maxFree = max(maxFree, s.free)
			}
			assert.Equal(t, conns, maxFree, "every emptied Reader went back to the engine")
			for _, p := range peers {
				require.NoError(t, p.Close())
			}
			require.NoError(t, ln.Close())
			assert.ErrorIs(t, <-served, net.ErrClosed)
			arenasIdle(t, g)
		})
	}
}

// keepHandler keeps the first connection's Reader past its callback and,
// when the second connection's data comes, closes that kept pointer.
type keepHandler struct {
	conns chan *Conn
	ev    chan string
	kept  *Reader
}

func (h *keepHandler) OnOpen(c *Conn)       { h.conns <- c }
func (h *keepHandler) OnClose(*Conn, error) {}
func (h *keepHandler) OnData(c *Conn) {
	if c.Value() == 1 { // on the loop, through a pointer kept from connection 0
		h.ev <- fmt.Sprint(h.kept.Close())
		return
	}
	r := c.Reader()
	b := make([]byte, r.Buffered())
	_, err := r.Read(b)
	if c.Value() == 0 {
		h.kept = r
	}
	h.ev <- string(b) + " " + fmt.Sprint(err)
}

// Closing a Reader kept past its callback is refused: it must not close the
// Reader (or queue) of whichever connection it serves next. (Found by
// review: it used to close the pooled Reader and the old connection's
// queue.)
func TestHandlerKeptReaderCloseIsRefused(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			h := &keepHandler{conns: make(chan *Conn, 3), ev: make(chan string, 8)}
			ln, served := serve(t, kind, h, WithEngines(1), WithMemory(1<<20))
			g := ln.g
			var peers []net.Conn
			for i := range 3 {
				p := dial(t, ln)
				defer p.Close()
				peers = append(peers, p)
				(<-h.conns).SetValue(i)
			}
			next := func(i int, s string) string {
				t.Helper()
				_, err := peers[i].Write([]byte(s))
				require.NoError(t, err)
				select {
				case e := <-h.ev:
					return e
				case <-time.After(5 * time.Second):
					t.Fatal("no OnData")
				}
				return ""
			}
			assert.Equal(t, "aaa <nil>", next(0, "aaa"))
			assert.Contains(t, next(1, "b"), ErrOutsideCallback.Error())
			assert.Equal(t, "ccc <nil>", next(2, "ccc"), "the pooled Reader still works")
			assert.Equal(t, "more <nil>", next(0, "more"), "connection 0's queue still works")
			for _, p := range peers {
				require.NoError(t, p.Close())
			}
			require.NoError(t, ln.Close())
			assert.ErrorIs(t, <-served, net.ErrClosed)
			arenasIdle(t, g)
		})
	}
}

// byteEndHandler consumes what arrived, the last byte with ReadByte (a
// terminator, say), then tries to step back over it in the next callback.
type byteEndHandler struct {
	conns   chan *Conn
	got     chan byteEndStep
	unreads chan error
}

type byteEndStep struct {
	n         int
	hadReader bool // the connection held a Reader when the callback began
}

func (h *byteEndHandler) OnOpen(c *Conn)       { h.conns <- c }
func (h *byteEndHandler) OnClose(*Conn, error) {}
func (h *byteEndHandler) OnData(c *Conn) {
	had := c.r != nil
	r := c.Reader()
	n := r.Buffered()
	if n == 0 {
		return
	}
	select {
	case h.unreads <- r.UnreadByte():
	default:
	}
	_, _ = r.Discard(n - 1)
	_, _ = r.ReadByte()
	h.got <- byteEndStep{n: n, hadReader: had}
}

// A callback that ends with a ReadByte emptying the Reader must leave
// nothing behind: the emptied segment kept for UnreadByte would pin a block
// per idle connection (and keep the Reader lent) until the arena ran dry
// and the engine stalled. The step back ends with the callback.
func TestHandlerReadByteLeavesNothingBehind(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			const bs, blocks, conns = 4096, 16, 24
			h := &byteEndHandler{conns: make(chan *Conn, conns), got: make(chan byteEndStep, conns), unreads: make(chan error, 2*conns)}
			ln, served := serve(t, kind, h, WithEngines(1), WithBlockSize(bs), WithMemory(blocks*bs))
			g := ln.g
			var peers []net.Conn
			defer func() {
				for _, p := range peers {
					_ = p.Close()
				}
				require.NoError(t, ln.Close())
				assert.ErrorIs(t, <-served, net.ErrClosed)
				arenasIdle(t, g)
			}()
			next := func(what string) byteEndStep {
				t.Helper()
				select {
				case s := <-h.got:
					return s
				case <-time.After(5 * time.Second):
					require.Failf(t, "stalled", "%s: no callback; %d of %d blocks in use", what, g.engines[0].arena().InUse(), blocks)
				}
				return byteEndStep{}
			}
			msg := make([]byte, bs)
			for i := range conns { // more connections than blocks, one after the other
				p := dial(t, ln)
				peers = append(peers, p)
				<-h.conns
				_, err := p.Write(msg)
				require.NoError(t, err)
				for total := 0; total < bs; {
					total += next(fmt.Sprintf("connection %d", i)).n
				}
			}
			// A second message on the first connection: the Reader went back
			// after the first, and this callback may not step back into it.
			_, err := peers[0].Write([]byte("x"))
			require.NoError(t, err)
			s := next("second message")
			assert.False(t, s.hadReader, "the connection kept its Reader after a callback that emptied it with ReadByte")
			for len(h.unreads) > 0 {
				assert.ErrorIs(t, <-h.unreads, ErrInvalidUnreadByte, "UnreadByte stepped back into an earlier callback")
			}
		})
	}
}

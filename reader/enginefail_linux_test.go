//go:build linux

package reader

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/fallback"
	"github.com/zcio/zcio/internal/seam"
)

// failEngine makes the engine serving c fail on its own at its loop's next
// wait: io_uring_enter reports EBADR (as when the kernel drops
// completions), or the fallback's epoll fd is closed behind its back (a
// double close elsewhere in the process), so that epoll_wait reports EBADF.
// It returns the errno and the engine's sentinel.
func failEngine(t *testing.T, c *Conn) (errno, sentinel error) {
	t.Helper()
	if x, ok := c.engine().(*epollEngine); ok {
		seam.CloseEpollFD(x.e)
		return syscall.EBADF, fallback.ErrEngineFailed
	}
	if errno, sentinel, ok := failUring(c); ok {
		return errno, sentinel
	}
	require.FailNow(t, "no failure seam", "%T", c.engine())
	return nil, nil
}

// echoed writes msg to peer and reads back as many bytes.
func echoed(t *testing.T, peer net.Conn, msg []byte) []byte {
	t.Helper()
	_, err := peer.Write(msg)
	require.NoError(t, err)
	got := make([]byte, len(msg))
	require.NoError(t, peer.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(peer, got)
	require.NoError(t, err)
	return got
}

// captureHandler hands each connection to the test and reports how it ended.
type captureHandler struct {
	conns  chan *Conn
	closed chan error
}

func (h *captureHandler) OnOpen(c *Conn) { h.conns <- c }

func (h *captureHandler) OnData(c *Conn) {
	r := c.Reader()
	for n := r.Buffered(); n > 0; n = r.Buffered() {
		_ = r.ReadRange(n, func(b []byte) { _, _ = c.Write(b) })
	}
}

func (h *captureHandler) OnClose(_ *Conn, err error) { h.closed <- err }

// An engine that fails on its own (io_uring_enter or epoll_wait reports an
// error it cannot recover from) ends its connections with an error wrapping
// its ErrEngineFailed and the errno, after the bytes already received;
// gives every block back; and the listener's next connections go to its
// other engine. The process does not panic and leaks nothing.
func TestConnOnAFailedEngine(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) { testConnOnAFailedEngine(t, kind) })
	}
}

func testConnOnAFailedEngine(t *testing.T, kind EngineKind) {
	// echoes checks that a new connection of ln lands on another engine than
	// failed and is served there.
	echoes := func(t *testing.T, ln *Listener, failed uint16, accept func() *Conn) {
		t.Helper()
		peer := dial(t, ln)
		defer peer.Close()
		c := accept()
		assert.NotEqual(t, failed, c.ei, "a new connection went to the failed engine")
		assert.False(t, c.engine().failed())
		assert.Equal(t, pattern(5000, 9), echoed(t, peer, pattern(5000, 9)))
	}

	t.Run("blocking", func(t *testing.T) {
		leakCheck(t)
		ln := listen(t, kind, WithEngines(2), WithMemory(2<<20))
		g := ln.g
		peer := dial(t, ln)
		defer peer.Close()
		c, err := ln.Accept()
		require.NoError(t, err)
		first, more := pattern(3000, 1), pattern(100, 2)
		_, err = peer.Write(first)
		require.NoError(t, err)
		require.NoError(t, c.Reader().Wait(t.Context(), len(first)))

		errno, sentinel := failEngine(t, c)
		_, err = peer.Write(more) // its completion ends the loop's wait
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		got, err := io.ReadAll(c)
		assert.ErrorIs(t, err, sentinel)
		assert.ErrorIs(t, err, errno)
		assert.GreaterOrEqual(t, len(got), len(first), "bytes received before the failure were lost")
		assert.True(t, bytes.HasPrefix(append(first, more...), got), "read %d bytes that are not what was sent", len(got))
		// Later calls keep answering with the failure, and never wait.
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		err = c.Reader().Wait(ctx, 1)
		assert.ErrorIs(t, err, sentinel)
		assert.NoError(t, ctx.Err(), "Wait waited on a failed engine")
		// The engine ends its connections before it lets go of its own
		// blocks (the buffer ring's, the fallback's tail block).
		failedArena := g.engines[c.ei].arena()
		assert.Eventually(t, func() bool { return failedArena.InUse() == 0 }, 5*time.Second, time.Millisecond,
			"the failed engine kept blocks")

		var c2 *Conn
		echoes(t, ln, c.ei, func() *Conn {
			c2, err = ln.Accept()
			require.NoError(t, err)
			go func() { // echo in blocking mode
				buf := make([]byte, 4096)
				for {
					n, err := c2.Read(buf)
					if err != nil {
						return
					}
					if _, err := c2.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
			return c2
		})
		assert.NoError(t, c.Close())
		assert.NoError(t, c2.Close())
		require.NoError(t, ln.Close())
		arenasIdle(t, g)
	})

	t.Run("handler", func(t *testing.T) {
		leakCheck(t)
		h := &captureHandler{conns: make(chan *Conn, 4), closed: make(chan error, 4)}
		ln, served := serve(t, kind, h, WithEngines(2), WithMemory(2<<20))
		g := ln.g
		peer := dial(t, ln)
		defer peer.Close()
		c := <-h.conns
		require.Equal(t, pattern(2000, 3), echoed(t, peer, pattern(2000, 3)), "echo before the failure")

		errno, sentinel := failEngine(t, c)
		_, err := peer.Write([]byte("wake"))
		require.NoError(t, err)
		select {
		case err := <-h.closed:
			assert.ErrorIs(t, err, sentinel)
			assert.ErrorIs(t, err, errno)
		case <-time.After(5 * time.Second):
			require.Fail(t, "OnClose not called after the engine failed")
		}

		echoes(t, ln, c.ei, func() *Conn { return <-h.conns })
		require.NoError(t, ln.Close())
		<-served
		arenasIdle(t, g)
	})
}

// A fallback engine that lost its epoll fd while idle (closed behind its
// back) finds out at the next Attach; the listener then serves that
// connection, and the later ones, on its other engine: no Accept fails.
func TestListenerPassesOverAnEngineThatLostItsEpollFD(t *testing.T) {
	leakCheck(t)
	ln := listen(t, Fallback, WithEngines(2), WithMemory(2<<20), WithIdleTrim(-1))
	g := ln.g
	time.Sleep(20 * time.Millisecond) // both loops asleep
	seam.CloseEpollFD(g.engines[0].(*epollEngine).e)
	for i := range 6 {
		peer := dial(t, ln)
		c, err := ln.Accept()
		if assert.NoError(t, err, "accept %d", i) {
			assert.Equal(t, uint16(1), c.ei, "accept %d", i)
			assert.NoError(t, c.Close())
		}
		_ = peer.Close()
	}
	assert.True(t, g.engines[0].failed())
	assert.False(t, g.engines[1].failed())
	require.NoError(t, ln.Close())
	arenasIdle(t, g)
}

// orderHandler records each connection's callbacks in order.
type orderHandler struct {
	mu     sync.Mutex
	calls  map[*Conn][]string
	first  chan struct{}
	closed chan struct{}
}

func (h *orderHandler) add(c *Conn, call string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls[c] = append(h.calls[c], call)
	return len(h.calls)
}

func (h *orderHandler) OnOpen(c *Conn) {
	if h.add(c, "OnOpen") == 1 {
		close(h.first)
		time.Sleep(200 * time.Millisecond) // the second connection is attached meanwhile
	}
}
func (h *orderHandler) OnData(c *Conn)           { h.add(c, "OnData") }
func (h *orderHandler) OnClose(c *Conn, _ error) { h.add(c, "OnClose"); h.closed <- struct{}{} }

// Handler mode on a fallback engine that lost its epoll fd: a connection
// attached while the loop runs its last commands still gets OnOpen first,
// then OnClose.
func TestHandlerOpensFirstOnAFailedEngine(t *testing.T) {
	h := &orderHandler{calls: map[*Conn][]string{}, first: make(chan struct{}), closed: make(chan struct{}, 4)}
	ln, served := serve(t, Fallback, h, WithEngines(1), WithMemory(2<<20), WithIdleTrim(-1))
	time.Sleep(20 * time.Millisecond)
	seam.CloseEpollFD(ln.g.engines[0].(*epollEngine).e)
	p1 := dial(t, ln)
	defer p1.Close()
	<-h.first
	p2 := dial(t, ln) // Serve attaches it while the first OnOpen runs
	defer p2.Close()
	for range 2 {
		select {
		case <-h.closed:
		case <-time.After(5 * time.Second):
			require.FailNow(t, "no OnClose")
		}
	}
	require.NoError(t, ln.Close())
	<-served
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(t, h.calls, 2)
	for _, calls := range h.calls {
		assert.Equal(t, "OnOpen", calls[0], "%v", calls)
		assert.Equal(t, "OnClose", calls[len(calls)-1], "%v", calls)
	}
}

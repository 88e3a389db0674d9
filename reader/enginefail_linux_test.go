//go:build linux

package reader

import (
	"bytes"
	"context"
	"io"
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
		msg := pattern(5000, 9)
		_, err := peer.Write(msg)
		require.NoError(t, err)
		got := make([]byte, len(msg))
		require.NoError(t, peer.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err = io.ReadFull(peer, got)
		require.NoError(t, err)
		assert.Equal(t, msg, got)
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
		assert.Zero(t, g.engines[c.ei].arena().InUse(), "the failed engine kept blocks")

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
		msg := pattern(2000, 3)
		_, err := peer.Write(msg)
		require.NoError(t, err)
		got := make([]byte, len(msg))
		require.NoError(t, peer.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err = io.ReadFull(peer, got)
		require.NoError(t, err)
		require.Equal(t, msg, got, "echo before the failure")

		errno, sentinel := failEngine(t, c)
		_, err = peer.Write([]byte("wake"))
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

//go:build linux && !zcio_nouring

package reader

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// drainHandler consumes everything buffered at each OnData and counts it.
type drainHandler struct {
	got  atomic.Int64
	done chan struct{}
	want int64
}

func (h *drainHandler) OnOpen(*Conn) {}
func (h *drainHandler) OnData(c *Conn) {
	r := c.Reader()
	for n := r.Buffered(); n > 0; n = r.Buffered() {
		k, err := r.Discard(min(n, r.Limit()))
		if h.got.Add(int64(k)) == h.want {
			close(h.done)
		}
		if err != nil {
			return
		}
	}
}
func (h *drainHandler) OnClose(*Conn, error) {}

// A handler that keeps up is never paused, even when one batch of receives
// alone is larger than the queue limit: the handler consumes before the
// queue fills (a pause costs a cancel, a re-arm and a stall).
func TestHandlerThatKeepsUpIsNotPaused(t *testing.T) {
	if Probe().IOUring != nil {
		t.Skip("io_uring not available:", Probe().IOUring)
	}
	leakCheck(t)
	ln := listen(t, IOUring, WithEngines(1), WithQueueLimit(32<<10))
	const total = 32 << 20
	h := &drainHandler{done: make(chan struct{}), want: total}
	served := make(chan error, 1)
	go func() { served <- Serve(ln, h) }()
	peer := dial(t, ln)
	buf := make([]byte, 1<<20)
	for sent := 0; sent < total; sent += len(buf) {
		_, err := peer.Write(buf)
		require.NoError(t, err)
	}
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("handler got %d of %d bytes", h.got.Load(), total)
	}
	st := ln.g.engines[0].(*uringEngine).e.Stats()
	assert.Zero(t, st.Pauses, "a handler that consumes everything was paused")
	require.NoError(t, peer.Close())
	require.NoError(t, ln.Close())
	assert.ErrorIs(t, <-served, net.ErrClosed)
}

//go:build linux

package reader

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openWriter runs open in OnOpen and consumes whatever arrives.
type openWriter struct {
	open   func(c *Conn)
	closed chan error
}

func (h *openWriter) OnOpen(c *Conn)             { h.open(c) }
func (h *openWriter) OnData(c *Conn)             { r := c.Reader(); _, _ = r.Discard(r.Buffered()) }
func (h *openWriter) OnClose(c *Conn, err error) { h.closed <- err }

type writeResult struct {
	n   int
	err error
}

// A handler's Write larger than the socket takes at once, then CloseWrite:
// Write reports every byte (io.Writer allows no short count without an
// error), and the peer reads them all before the end of the stream, however
// many were still queued when CloseWrite came.
func TestHandlerWriteThenCloseWrite(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			payload := pattern(16<<20, 7)
			res := make(chan writeResult, 1)
			shut := make(chan error, 1)
			after := make(chan error, 1)
			h := &openWriter{closed: make(chan error, 1), open: func(c *Conn) {
				n, err := c.Write(payload)
				res <- writeResult{n, err}
				shut <- c.CloseWrite()
				_, err = c.Write([]byte("late"))
				after <- err
			}}
			ln, served := serve(t, kind, h, WithEngines(1), WithMemory(1<<20))
			g := ln.g
			peer := dial(t, ln)
			defer peer.Close()
			var r writeResult
			select {
			case r = <-res:
			case <-time.After(5 * time.Second):
				require.Fail(t, "OnOpen did not run")
			}
			assert.NoError(t, r.err)
			assert.Equal(t, len(payload), r.n, "a handler's Write returned a short count and no error")
			assert.NoError(t, <-shut)
			assert.Error(t, <-after, "a Write after CloseWrite succeeded")
			_ = peer.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(peer) // to the end of the stream
			require.NoError(t, err)
			assert.Equal(t, len(payload), len(got), "bytes a Write accepted were lost by CloseWrite")
			assert.True(t, bytes.Equal(payload, got[:min(len(got), len(payload))]), "payload corrupted")
			require.NoError(t, peer.Close())
			<-h.closed
			require.NoError(t, ln.Close())
			assert.ErrorIs(t, <-served, net.ErrClosed)
			arenasIdle(t, g)
		})
	}
}

// After Close, SetWriteDeadline fails like SetReadDeadline: it may not lift
// the bound Close put on flushing what handlers queued.
func TestSetWriteDeadlineAfterClose(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind, WithEngines(1), WithMemory(1<<20))
			defer ln.Close()
			peer := dial(t, ln)
			defer peer.Close()
			c, err := ln.Accept()
			require.NoError(t, err)
			require.NoError(t, c.SetWriteDeadline(time.Now().Add(time.Minute)))
			require.NoError(t, c.Close())
			assert.ErrorIs(t, c.SetWriteDeadline(time.Time{}), net.ErrClosed)
			assert.ErrorIs(t, c.SetDeadline(time.Time{}), net.ErrClosed)
			assert.ErrorIs(t, c.SetReadDeadline(time.Time{}), net.ErrClosed)
		})
	}
}

//go:build linux

package reader

import (
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

// crossWriter: the first connection is the target, whose peer does not
// read at first; a "G" from any other connection makes its handler write
// 8 MiB to the target (a broadcast or a proxy); other bytes are echoed.
type crossWriter struct {
	mu       sync.Mutex
	target   *Conn
	wrote    chan error
	closed   chan error
	wroteAll atomic.Bool
}

func (h *crossWriter) OnOpen(c *Conn) {
	h.mu.Lock()
	if h.target == nil {
		h.target = c
	}
	h.mu.Unlock()
}

func (h *crossWriter) OnData(c *Conn) {
	r := c.Reader()
	n := r.Buffered()
	if n == 0 {
		return
	}
	var first byte
	_ = r.Peek(1, func(v [][]byte) { first = v[0][0] })
	if first == 'G' {
		_, _ = r.Discard(n)
		h.mu.Lock()
		target := h.target
		h.mu.Unlock()
		k, err := target.Write(make([]byte, 8<<20))
		h.wroteAll.Store(k == 8<<20)
		h.wrote <- err
		return
	}
	_ = r.ReadRange(n, func(b []byte) { _, _ = c.Write(b) })
}

func (h *crossWriter) OnClose(c *Conn, err error) { h.closed <- err }

// A handler writing to another connection, whose peer does not read, does
// not wait on its loop: the write is queued, and the engine's other
// connections go on being served meanwhile.
func TestHandlerWriteToAnotherConnDoesNotWait(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			h := &crossWriter{wrote: make(chan error, 1), closed: make(chan error, 3)}
			ln, served := serve(t, kind, h, WithEngines(1), WithMemory(1<<20))
			targetPeer := dial(t, ln)
			defer targetPeer.Close()
			require.Eventually(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.target != nil }, 5*time.Second, time.Millisecond)
			trigger := dial(t, ln)
			defer trigger.Close()
			_, err := trigger.Write([]byte("G"))
			require.NoError(t, err)
			select {
			case err := <-h.wrote:
				require.NoError(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("a handler's 8 MiB Write to another connection whose peer does not read waited (5 s)")
			}
			assert.True(t, h.wroteAll.Load(), "the Write took less than all of p")

			echo := dial(t, ln)
			defer echo.Close()
			require.NoError(t, echo.SetDeadline(time.Now().Add(5*time.Second)))
			_, err = echo.Write([]byte("ping"))
			require.NoError(t, err)
			buf := make([]byte, 4)
			_, err = io.ReadFull(echo, buf)
			require.NoError(t, err, "the engine stopped serving its other connections")
			assert.Equal(t, "ping", string(buf))

			// The queued bytes arrive, in full.
			require.NoError(t, targetPeer.SetReadDeadline(time.Now().Add(10*time.Second)))
			got, err := io.CopyN(io.Discard, targetPeer, 8<<20)
			require.NoError(t, err)
			assert.Equal(t, int64(8<<20), got)

			for _, c := range []net.Conn{trigger, echo, targetPeer} {
				require.NoError(t, c.Close())
			}
			for range 3 {
				select {
				case <-h.closed:
				case <-time.After(5 * time.Second):
					t.Fatal("OnClose not called")
				}
			}
			require.NoError(t, ln.Close())
			<-served
			arenasIdle(t, ln.g)
		})
	}
}

// framer reads 4-byte length-prefixed messages in the common handler style:
// it looks at Buffered and returns until a whole message is there. A
// connection whose first byte is 'F' is filler: everything is discarded.
type framer struct {
	msgs   atomic.Int32
	closed chan error
}

func (h *framer) OnOpen(*Conn) {}

func (h *framer) OnData(c *Conn) {
	r := c.Reader()
	n := r.Buffered()
	if n == 0 {
		return
	}
	if c.Value() == nil {
		var first byte
		_ = r.Peek(1, func(v [][]byte) { first = v[0][0] })
		c.SetValue(first == 'F')
	}
	if c.Value().(bool) {
		_, _ = r.Discard(n)
		return
	}
	for r.Buffered() >= 4 {
		var hdr [4]byte
		_ = r.Peek(4, func(v [][]byte) {
			k := 0
			for _, b := range v {
				k += copy(hdr[k:], b)
			}
		})
		l := int(binary.BigEndian.Uint32(hdr[:]))
		if r.Buffered() < 4+l {
			return // the rest comes with a later OnData
		}
		_, _ = r.Discard(4 + l)
		h.msgs.Add(1)
	}
}

func (h *framer) OnClose(c *Conn, err error) { h.closed <- err }

// A handler that only looks at Buffered and waits for the rest of a message
// gets it although the connection's receive was paused because the
// message's pieces spread over as many blocks as a connection may hold (a
// slow sender, while another connection's bytes move the engine on to new
// blocks). Nothing else lifts that pause (the bytes are far below the
// limit), and no OnData comes without new bytes.
func TestHandlerWaitingForTheRestIsNotLeftPaused(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			h := &framer{closed: make(chan error, 2)}
			// 64 blocks of 16 KiB: a connection may hold 8.
			ln, served := serve(t, kind, h, WithEngines(1), WithMemory(64*16<<10))
			filler, slow := dial(t, ln), dial(t, ln)
			defer filler.Close()
			defer slow.Close()
			_, err := filler.Write([]byte("F"))
			require.NoError(t, err)
			const pieces, piece = 20, 16
			msg := make([]byte, 4+pieces*piece)
			binary.BigEndian.PutUint32(msg, pieces*piece)
			fill := make([]byte, 16<<10)
			for i := range fill {
				fill[i] = 'F'
			}
			_, err = slow.Write(msg[:4+piece])
			require.NoError(t, err)
			for i := 1; i < pieces; i++ {
				time.Sleep(2 * time.Millisecond)
				_, err = filler.Write(fill)
				require.NoError(t, err)
				time.Sleep(2 * time.Millisecond)
				_, err = slow.Write(msg[4+i*piece : 4+(i+1)*piece])
				require.NoError(t, err)
			}
			assert.Eventually(t, func() bool { return h.msgs.Load() == 1 }, 5*time.Second, time.Millisecond,
				"a %d-byte message sent in %d pieces never completed", len(msg), pieces)
			endServe(t, ln, served, h.closed, filler, slow)
		})
	}
}

// endServe closes the peers, waits for an OnClose each, then stops the
// listener and checks the arenas gave everything back.
func endServe(t *testing.T, ln *Listener, served chan error, closed chan error, peers ...net.Conn) {
	t.Helper()
	for _, p := range peers {
		require.NoError(t, p.Close())
	}
	for range peers {
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("OnClose not called 5 s after the peer closed")
		}
	}
	require.NoError(t, ln.Close())
	<-served
	arenasIdle(t, ln.g)
}

// readerCloser tries to close its connection's Reader at the first OnData,
// and to make it blocking, then counts the bytes it is handed.
type readerCloser struct {
	closeErr error
	waitErr  error
	bytes    atomic.Int64
	closed   chan error
	first    sync.Once
}

func (h *readerCloser) OnOpen(*Conn) {}
func (h *readerCloser) OnData(c *Conn) {
	r := c.Reader()
	h.first.Do(func() {
		h.closeErr = r.Close()
		r.SetNonBlocking(false)
		h.waitErr = r.Wait(nil, r.Buffered()+1)
	})
	n := r.Buffered()
	k, _ := r.Discard(n)
	h.bytes.Add(int64(k))
}
func (h *readerCloser) OnClose(c *Conn, err error) { h.closed <- err }

// A handler-mode connection's Reader is the connection's: its Close is
// refused (closing only the Reader would leave the connection unread for
// good, its peer's close unseen), and it stays non-blocking.
func TestHandlerReaderCloseIsRefused(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			h := &readerCloser{closed: make(chan error, 1)}
			ln, served := serve(t, kind, h, WithEngines(1))
			peer := dial(t, ln)
			_, err := peer.Write([]byte("a"))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return h.bytes.Load() == 1 }, 5*time.Second, time.Millisecond)
			_, err = peer.Write([]byte("more"))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return h.bytes.Load() == 5 }, 5*time.Second, time.Millisecond,
				"bytes after the refused Close")
			assert.ErrorIs(t, h.closeErr, ErrHandlerClose)
			assert.ErrorIs(t, h.waitErr, ErrWouldBlock, "SetNonBlocking(false) made a handler's Reader wait")
			endServe(t, ln, served, h.closed, peer)
		})
	}
}

// borrower's handler reads a blocking-mode connection's Reader: misuse, but
// it must not park the loop.
type borrower struct {
	other  *Conn
	err    chan error
	closed chan error
}

func (h *borrower) OnOpen(*Conn) {}
func (h *borrower) OnData(c *Conn) {
	r := c.Reader()
	_, _ = r.Discard(r.Buffered())
	var b [1]byte
	_, err := h.other.Read(b[:])
	h.err <- err
}
func (h *borrower) OnClose(c *Conn, err error) { h.closed <- err }

// A blocking-mode connection's Reader called from a handler, on an engine
// loop, returns ErrWouldBlock rather than wait there.
func TestBlockingReaderOnALoopDoesNotWait(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			bl := listen(t, kind, WithEngines(1))
			defer bl.Close()
			otherPeer := dial(t, bl)
			defer otherPeer.Close()
			other, err := bl.Accept()
			require.NoError(t, err)
			defer other.Close()

			h := &borrower{other: other, err: make(chan error, 1), closed: make(chan error, 1)}
			ln, served := serve(t, kind, h, WithEngines(1))
			peer := dial(t, ln)
			_, err = peer.Write([]byte("x"))
			require.NoError(t, err)
			select {
			case err := <-h.err:
				assert.ErrorIs(t, err, ErrWouldBlock)
			case <-time.After(5 * time.Second):
				t.Fatal("a blocking-mode Read from a handler waited on the loop (5 s)")
			}
			// The blocking connection still reads on its own goroutine.
			_, err = otherPeer.Write([]byte("y"))
			require.NoError(t, err)
			var b [1]byte
			require.NoError(t, other.SetReadDeadline(time.Now().Add(5*time.Second)))
			_, err = io.ReadFull(other, b[:])
			require.NoError(t, err)
			assert.Equal(t, byte('y'), b[0])
			endServe(t, ln, served, h.closed, peer)
		})
	}
}

// toWrapped: a "G" on any connection makes its handler write 4 MiB to a
// Wrap'd blocking-mode Conn whose peer does not read yet.
type toWrapped struct {
	target *Conn
	wrote  chan error
	closed chan error
}

func (h *toWrapped) OnOpen(*Conn) {}
func (h *toWrapped) OnData(c *Conn) {
	r := c.Reader()
	n := r.Buffered()
	if n == 0 {
		return
	}
	_, _ = r.Discard(n)
	k, err := h.target.Write(make([]byte, 4<<20))
	if err == nil && k != 4<<20 {
		err = io.ErrShortWrite
	}
	h.wrote <- err
}
func (h *toWrapped) OnClose(c *Conn, err error) { h.closed <- err }

// CloseWrite on a Wrap'd Conn after a handler's Write to it was queued: the
// peer reads every byte that Write accepted before the end of the stream
// (found by a review: the wrapped connection's CloseWrite shut the socket
// at once, and the queued bytes were lost).
func TestWrappedCloseWriteAfterAHandlersWrite(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			t.Cleanup(closeSharedGroups)
			// the wrapped target
			tl, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer tl.Close()
			peer, err := net.Dial("tcp", tl.Addr().String())
			require.NoError(t, err)
			defer peer.Close()
			nc, err := tl.Accept()
			require.NoError(t, err)
			target, err := Wrap(nc, WithEngine(kind))
			require.NoError(t, err)
			defer target.Close()

			h := &toWrapped{target: target, wrote: make(chan error, 1), closed: make(chan error, 1)}
			ln, served := serve(t, kind, h, WithEngines(1))
			trigger := dial(t, ln)
			_, err = trigger.Write([]byte("G"))
			require.NoError(t, err)
			select {
			case err := <-h.wrote:
				require.NoError(t, err, "the handler's Write")
			case <-time.After(5 * time.Second):
				t.Fatal("handler Write waited")
			}
			// Every byte was accepted; now half-close.
			require.NoError(t, target.CloseWrite())
			require.NoError(t, peer.SetReadDeadline(time.Now().Add(10*time.Second)))
			got, err := io.Copy(io.Discard, peer)
			t.Logf("peer read %d bytes, then %v", got, err)
			assert.Equal(t, int64(4<<20), got, "bytes a Write accepted were lost by CloseWrite")
			endServe(t, ln, served, h.closed, trigger)
		})
	}
}

//go:build linux

package reader

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// engineKinds are the engines this machine can run, each forced on.
func engineKinds(t *testing.T) []EngineKind {
	kinds := []EngineKind{Fallback}
	if Probe().IOUring == nil {
		kinds = append(kinds, IOUring)
	} else {
		t.Logf("io_uring engine not available: %v", Probe().IOUring)
	}
	return kinds
}

// leakCheck records fds and goroutines and, at cleanup, checks that the test
// left none behind (waiting a little for goroutines that are finishing).
func leakCheck(t *testing.T) {
	t.Helper()
	fds := openFDs(t)
	gor := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for (openFDs(t) > fds || runtime.NumGoroutine() > gor) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		assert.LessOrEqual(t, openFDs(t), fds, "fds leaked")
		assert.LessOrEqual(t, runtime.NumGoroutine(), gor, "goroutines leaked")
	})
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// arenasIdle checks that every arena of l's engines has no block in use.
func arenasIdle(t *testing.T, g *group) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		inUse := 0
		for _, e := range g.engines {
			inUse += e.arena().InUse()
		}
		if inUse == 0 {
			return
		}
		if time.Now().After(deadline) {
			assert.Zero(t, inUse, "arena blocks still in use")
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func listen(t *testing.T, kind EngineKind, opts ...Option) *Listener {
	ln, err := Listen("tcp", "127.0.0.1:0", append([]Option{WithEngine(kind)}, opts...)...)
	require.NoError(t, err)
	return ln
}

func dial(t *testing.T, ln *Listener) net.Conn {
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	return c
}

func pattern(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestConnBlockingReadsInOrder(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind, WithEngines(2), WithMemory(2<<20))
			g := ln.g
			peer := dial(t, ln)
			c, err := ln.Accept()
			require.NoError(t, err)
			assert.Equal(t, kind.String(), c.Engine().Name)

			want := pattern(1<<20+123, 1)
			go func() {
				_, _ = peer.Write(want)
				_ = peer.(*net.TCPConn).CloseWrite()
			}()
			got := make([]byte, 0, len(want))
			for len(got) < len(want) {
				n := min(len(want)-len(got), 1+rand.IntN(40000))
				require.NoError(t, c.Reader().ReadRange(n, func(b []byte) { got = append(got, b...) }))
			}
			assert.Equal(t, want, got)
			err = c.Reader().ReadRange(1, func([]byte) {})
			assert.ErrorIs(t, err, io.EOF)

			_, err = c.Write([]byte("bye"))
			require.NoError(t, err)
			buf := make([]byte, 3)
			_, err = io.ReadFull(peer, buf)
			require.NoError(t, err)
			assert.Equal(t, "bye", string(buf))

			require.NoError(t, c.Close())
			assert.ErrorIs(t, c.Close(), net.ErrClosed)
			require.NoError(t, peer.Close())
			require.NoError(t, ln.Close())
			arenasIdle(t, g)
		})
	}
}

// TestConnWrap adopts connections made by the standard library, TCP and Unix.
func TestConnWrap(t *testing.T) {
	leakCheck(t)
	t.Cleanup(closeSharedGroups)
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = t.TempDir() + "/s"
			}
			l, err := net.Listen(network, addr)
			require.NoError(t, err)
			defer l.Close()
			peer, err := net.Dial(network, l.Addr().String())
			require.NoError(t, err)
			defer peer.Close()
			nc, err := l.Accept()
			require.NoError(t, err)
			c, err := Wrap(nc, WithEngine(Fallback))
			require.NoError(t, err)
			_, err = peer.Write([]byte("hello, wrap"))
			require.NoError(t, err)
			var got []byte
			require.NoError(t, c.Reader().ReadRange(11, func(b []byte) { got = append(got, b...) }))
			assert.Equal(t, "hello, wrap", string(got))
			require.NoError(t, c.Close())
			_, err = c.Read(make([]byte, 1))
			assert.ErrorIs(t, err, net.ErrClosed)
		})
	}
	_, err := Wrap(&net.IPConn{})
	assert.ErrorIs(t, err, ErrUnsupportedConn)
}

// Wrap refuses what it cannot adopt with an error, never a panic: nil
// connections, typed or not, datagram sockets and closed connections.
func TestWrapRejectsWhatItCannotAdopt(t *testing.T) {
	for name, nc := range map[string]net.Conn{
		"nil":          nil,
		"nil TCPConn":  (*net.TCPConn)(nil),
		"nil UnixConn": (*net.UnixConn)(nil),
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { _, err = Wrap(nc, WithEngine(Fallback)) })
			assert.ErrorIs(t, err, ErrUnsupportedConn)
			assert.ErrorContains(t, err, "zcio/reader: wrap: ")
		})
	}
	t.Run("unixgram", func(t *testing.T) {
		pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: t.TempDir() + "/g", Net: "unixgram"})
		require.NoError(t, err)
		defer pc.Close()
		_, err = Wrap(pc, WithEngine(Fallback))
		assert.ErrorIs(t, err, ErrUnsupportedConn)
		assert.ErrorContains(t, err, "unixgram socket")
	})
	t.Run("closed", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		nc, err := net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		require.NoError(t, nc.Close())
		c, err := Wrap(nc, WithEngine(Fallback))
		assert.Nil(t, c)
		require.Error(t, err)
		assert.ErrorContains(t, err, "zcio/reader: wrap: ")
	})
}

func TestEngineChoice(t *testing.T) {
	p := Probe()
	assert.NotEmpty(t, p.Auto.Name)
	assert.NotEmpty(t, p.Auto.Reason)
	info, err := choose(Fallback)
	require.NoError(t, err)
	assert.Equal(t, NameFallback, info.Name)

	t.Setenv(EnvEngine, "fallback")
	info, err = choose(Auto)
	require.NoError(t, err)
	assert.Equal(t, NameFallback, info.Name)
	assert.Contains(t, info.Reason, EnvEngine)

	t.Setenv(EnvEngine, "bogus")
	_, err = choose(Auto)
	assert.ErrorContains(t, err, "bogus")

	if p.IOUring != nil {
		_, err = choose(IOUring)
		assert.ErrorIs(t, err, ErrEngineUnavailable)
	}
}

// TestConnCloseDuringBlockedRead closes a connection while another goroutine
// waits in a Reader call: the call returns net.ErrClosed and nothing leaks.
func TestConnCloseDuringBlockedRead(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind, WithEngines(1), WithMemory(1<<20))
			g := ln.g
			peer := dial(t, ln)
			defer peer.Close()
			c, err := ln.Accept()
			require.NoError(t, err)
			_, err = peer.Write([]byte("partial"))
			require.NoError(t, err)
			done := make(chan error, 1)
			go func() { done <- c.Reader().ReadRange(100, func([]byte) {}) }()
			time.Sleep(20 * time.Millisecond)
			require.NoError(t, c.Close())
			select {
			case err := <-done:
				assert.ErrorIs(t, err, net.ErrClosed)
			case <-time.After(5 * time.Second):
				t.Fatal("blocked read did not return after Close")
			}
			require.NoError(t, ln.Close())
			arenasIdle(t, g)
		})
	}
}

// TestConnCloseRacesData closes connections while their peers are sending.
func TestConnCloseRacesData(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind, WithEngines(2), WithMemory(2<<20))
			g := ln.g
			var wg sync.WaitGroup
			for i := range 20 {
				peer := dial(t, ln)
				c, err := ln.Accept()
				require.NoError(t, err)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer peer.Close()
					msg := pattern(4096, uint64(i))
					_ = peer.SetWriteDeadline(time.Now().Add(2 * time.Second))
					for range 50 {
						if _, err := peer.Write(msg); err != nil {
							return
						}
					}
				}()
				time.Sleep(time.Duration(i%5) * time.Millisecond)
				if i%2 == 0 {
					_ = c.Reader().ReadRange(1000, func([]byte) {})
				}
				require.NoError(t, c.Close())
			}
			wg.Wait()
			require.NoError(t, ln.Close())
			arenasIdle(t, g)
		})
	}
}

// TestConnPeerResetMidMessage: the peer resets after half a frame; the bytes
// that arrived stay readable and the error surfaces after them.
func TestConnPeerResetMidMessage(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind, WithEngines(1), WithMemory(1<<20))
			g := ln.g
			peer := dial(t, ln)
			c, err := ln.Accept()
			require.NoError(t, err)
			half := pattern(3000, 3)
			_, err = peer.Write(half)
			require.NoError(t, err)
			require.NoError(t, c.Reader().Wait(t.Context(), len(half)))
			require.NoError(t, peer.(*net.TCPConn).SetLinger(0))
			require.NoError(t, peer.Close()) // RST
			// A 6000-byte frame cannot complete: the error, nothing consumed.
			err = c.Reader().ReadRange(6000, func([]byte) {})
			require.Error(t, err)
			assert.True(t, errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF), "%v", err)
			var got []byte
			require.NoError(t, c.Reader().ReadRange(len(half), func(b []byte) { got = append(got, b...) }))
			assert.Equal(t, half, got)
			require.NoError(t, c.Close())
			require.NoError(t, ln.Close())
			arenasIdle(t, g)
		})
	}
}

// TestConnStalledDoesNotStopOthers runs 1 connection that never reads and
// 100 that do over one engine whose arena has 64 blocks: every active
// connection delivers all its bytes, intact.
func TestConnStalledDoesNotStopOthers(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			const bs = 16 << 10
			ln := listen(t, kind, WithEngines(1), WithMemory(64*bs), WithBlockSize(bs))
			g := ln.g
			require.Equal(t, 64, g.engines[0].arena().Len())

			stalledPeer := dial(t, ln)
			stalled, err := ln.Accept()
			require.NoError(t, err)
			stop := make(chan struct{})
			stalledDone := make(chan struct{})
			go func() {
				defer close(stalledDone)
				msg := pattern(64<<10, 9)
				for {
					select {
					case <-stop:
						return
					default:
					}
					_ = stalledPeer.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
					_, _ = stalledPeer.Write(msg)
				}
			}()

			const conns, size = 100, 200 << 10
			var wg sync.WaitGroup
			var failed atomic.Int32
			for i := range conns {
				peer := dial(t, ln)
				c, err := ln.Accept()
				require.NoError(t, err)
				want := pattern(size, uint64(100+i))
				wg.Add(2)
				go func() {
					defer wg.Done()
					_ = peer.SetWriteDeadline(time.Now().Add(30 * time.Second))
					_, _ = peer.Write(want)
				}()
				go func() {
					defer wg.Done()
					defer peer.Close()
					defer c.Close()
					_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
					h := sha256.New()
					for got := 0; got < size; {
						n := min(size-got, 4096)
						if err := c.Reader().ReadRange(n, func(b []byte) { h.Write(b) }); err != nil {
							failed.Add(1)
							return
						}
						got += n
					}
					if sum := sha256.Sum256(want); string(h.Sum(nil)) != string(sum[:]) {
						failed.Add(1)
					}
				}()
			}
			dbg := make(chan struct{})
			go func() {
				select {
				case <-dbg:
				case <-time.After(10 * time.Second):
					t.Logf("stuck: arena in use %d; engine %s; stalled pending %d", g.engines[0].arena().InUse(), engineDebug(g.engines[0]), stalled.q.Pending())
				}
			}()
			wg.Wait()
			close(dbg)
			assert.Zero(t, failed.Load(), "active connections that failed")
			if failed.Load() != 0 {
				t.Logf("arena in use %d of %d; engine %s", g.engines[0].arena().InUse(), g.engines[0].arena().Len(), engineDebug(g.engines[0]))
			}
			close(stop)
			<-stalledDone
			require.NoError(t, stalled.Close())
			require.NoError(t, stalledPeer.Close())
			require.NoError(t, ln.Close())
			arenasIdle(t, g)
		})
	}
}

// TestConnManyRandomMessages: 1000 connections (fewer under -short) send
// framed messages of random sizes with checksums; the server reads every one,
// in blocking mode, with nothing lost, corrupted or reordered.
func TestConnManyRandomMessages(t *testing.T) {
	conns := 1000
	if testing.Short() {
		conns = 100
	}
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind)
			g := ln.g
			var wg sync.WaitGroup
			var bad, frames atomic.Int64
			sem := make(chan struct{}, 200) // bounded open client sockets at a time
			for i := range conns {
				sem <- struct{}{}
				peer := dial(t, ln)
				c, err := ln.Accept()
				require.NoError(t, err)
				wg.Add(2)
				go func() {
					defer wg.Done()
					sendFrames(peer, uint64(i), 5)
					_ = peer.(*net.TCPConn).CloseWrite()
				}()
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					defer peer.Close()
					defer c.Close()
					_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
					n, err := readFrames(c.Reader())
					frames.Add(int64(n))
					if err != nil || n != 5 {
						bad.Add(1)
					}
				}()
			}
			wg.Wait()
			assert.Zero(t, bad.Load())
			assert.Equal(t, int64(conns*5), frames.Load())
			require.NoError(t, ln.Close())
			arenasIdle(t, g)
		})
	}
}

// sendFrames writes count frames: a 4-byte big-endian length, a payload of
// random size up to 64 KiB, and the payload's SHA-256.
func sendFrames(w io.Writer, seed uint64, count int) {
	r := rand.New(rand.NewPCG(seed, 1))
	for range count {
		p := pattern(1+r.IntN(64<<10), r.Uint64())
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(p)))
		sum := sha256.Sum256(p)
		if _, err := w.Write(append(append(hdr[:], p...), sum[:]...)); err != nil {
			return
		}
	}
}

// readFrames reads frames until end of stream and checks each checksum.
func readFrames(r *Reader) (int, error) {
	h := sha256.New()
	var sum [sha256.Size]byte
	for n := 0; ; n++ {
		size, err := r.ReadUint32BE()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		h.Reset()
		for left := int(size); left > 0; {
			k := min(left, 8192)
			if err := r.ReadRange(k, func(b []byte) { h.Write(b) }); err != nil {
				return n, err
			}
			left -= k
		}
		if _, err := io.ReadFull(r, sum[:]); err != nil {
			return n, err
		}
		if string(h.Sum(nil)) != string(sum[:]) {
			return n, fmt.Errorf("frame %d: checksum mismatch", n)
		}
	}
}

// echoHandler echoes every byte back, from the engine loop, and records the
// connection's end.
type echoHandler struct {
	opened, closed atomic.Int32
	closeErrs      chan error
	panicOn        byte // a first byte that makes OnData panic
}

func (h *echoHandler) OnOpen(c *Conn) { h.opened.Add(1) }

func (h *echoHandler) OnData(c *Conn) {
	r := c.Reader()
	n := r.Buffered()
	if n == 0 {
		return
	}
	err := r.Peek(1, func(v [][]byte) {
		if h.panicOn != 0 && v[0][0] == h.panicOn {
			panic("boom")
		}
	})
	if err != nil {
		return
	}
	for n := r.Buffered(); n > 0; n = r.Buffered() {
		if err := r.ReadRange(min(n, r.Limit()), func(b []byte) { _, _ = c.Write(b) }); err != nil {
			panic(fmt.Sprintf("reading %d buffered bytes: %v", n, err))
		}
	}
	// Whatever comes next is not here yet: the call must not block.
	if err := r.ReadRange(1, func([]byte) {}); !errors.Is(err, ErrWouldBlock) && !errors.Is(err, io.EOF) {
		panic(fmt.Sprintf("non-blocking read returned %v", err))
	}
}

func (h *echoHandler) OnClose(c *Conn, err error) {
	h.closed.Add(1)
	if h.closeErrs != nil {
		h.closeErrs <- err
	}
}

func serve(t *testing.T, kind EngineKind, h Handler, opts ...Option) (*Listener, chan error) {
	ln := listen(t, kind, opts...)
	done := make(chan error, 1)
	go func() { done <- Serve(ln, h) }()
	return ln, done
}

func TestHandlerEcho(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			h := &echoHandler{closeErrs: make(chan error, 100)}
			ln, served := serve(t, kind, h, WithEngines(2), WithMemory(4<<20))
			g := ln.g
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					peer := dial(t, ln)
					defer peer.Close()
					want := pattern(300<<10, uint64(i))
					go func() { _, _ = peer.Write(want) }()
					got := make([]byte, len(want))
					_ = peer.SetReadDeadline(time.Now().Add(20 * time.Second))
					_, err := io.ReadFull(peer, got)
					assert.NoError(t, err)
					assert.Equal(t, want, got)
				}()
			}
			wg.Wait()
			for range 20 {
				select {
				case err := <-h.closeErrs:
					assert.NoError(t, err)
				case <-time.After(10 * time.Second):
					t.Fatal("OnClose not called")
				}
			}
			assert.EqualValues(t, 20, h.opened.Load())
			require.NoError(t, ln.Close())
			assert.ErrorIs(t, <-served, net.ErrClosed)
			arenasIdle(t, g)
		})
	}
}

// TestHandlerPanic: a handler that panics closes its connection with an error
// wrapping ErrHandlerPanic; the engine goes on serving the others.
func TestHandlerPanic(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			h := &echoHandler{closeErrs: make(chan error, 10), panicOn: '!'}
			ln, served := serve(t, kind, h, WithEngines(1), WithMemory(1<<20))
			g := ln.g
			bad := dial(t, ln)
			defer bad.Close()
			good := dial(t, ln)
			defer good.Close()
			_, err := bad.Write([]byte("!panic"))
			require.NoError(t, err)
			select {
			case err := <-h.closeErrs:
				assert.ErrorIs(t, err, ErrHandlerPanic)
			case <-time.After(5 * time.Second):
				t.Fatal("panicking handler's connection not closed")
			}
			// The server closed the bad connection: its peer sees EOF.
			_ = bad.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = bad.Read(make([]byte, 1))
			assert.ErrorIs(t, err, io.EOF)

			_, err = good.Write([]byte("still here"))
			require.NoError(t, err)
			buf := make([]byte, 10)
			_ = good.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.ReadFull(good, buf)
			require.NoError(t, err)
			assert.Equal(t, "still here", string(buf))
			require.NoError(t, good.Close())
			require.NoError(t, ln.Close())
			<-served
			arenasIdle(t, g)
		})
	}
}

// TestHandlerHalfClose: the peer shuts down its writing side; the handler
// still sees every byte, can answer, and gets OnClose with no error.
func TestHandlerHalfClose(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			h := &echoHandler{closeErrs: make(chan error, 10)}
			ln, served := serve(t, kind, h, WithEngines(1), WithMemory(1<<20))
			g := ln.g
			peer := dial(t, ln)
			defer peer.Close()
			_, err := peer.Write([]byte("last words"))
			require.NoError(t, err)
			require.NoError(t, peer.(*net.TCPConn).CloseWrite())
			_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(peer)
			require.NoError(t, err)
			assert.Equal(t, "last words", string(got))
			assert.NoError(t, <-h.closeErrs)
			require.NoError(t, ln.Close())
			<-served
			arenasIdle(t, g)
		})
	}
}

// wrapAccepted dials ln, Wraps the accepted end with opts and returns it
// with the peer; both are closed when the test ends.
func wrapAccepted(t *testing.T, ln net.Listener, opts ...Option) (*Conn, net.Conn) {
	t.Helper()
	peer, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = peer.Close() })
	nc, err := ln.Accept()
	require.NoError(t, err)
	c, err := Wrap(nc, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, peer
}

// closeSharedGroups drops the process-wide groups Wrap made, so that the
// package's leak checks see their engines stop.
func closeSharedGroups() {
	sharedGroupsMu.Lock()
	defer sharedGroupsMu.Unlock()
	for k, g := range sharedGroups {
		g.release()
		delete(sharedGroups, k)
	}
}

// frameHandler checks framed messages (see sendFrames) in handler mode: it
// consumes only whole frames, never waits, and keeps no state between calls
// but what the Reader holds.
type frameHandler struct {
	frames, bad atomic.Int64
	closed      chan error
}

func (h *frameHandler) OnOpen(*Conn) {}

func (h *frameHandler) OnData(c *Conn) {
	r := c.Reader()
	var sum [sha256.Size]byte
	for {
		var size uint32
		err := r.Peek(4, func(v [][]byte) {
			var hdr [4]byte
			n := 0
			for _, b := range v {
				n += copy(hdr[n:], b)
			}
			size = binary.BigEndian.Uint32(hdr[:])
		})
		if err != nil {
			return // ErrWouldBlock: the rest comes with the next OnData
		}
		if r.Buffered() < 4+int(size)+sha256.Size {
			return
		}
		_, _ = r.Discard(4)
		hs := sha256.New()
		if err := r.ReadRange(int(size), func(b []byte) { hs.Write(b) }); err != nil {
			h.bad.Add(1)
			return
		}
		if _, err := io.ReadFull(r, sum[:]); err != nil || string(hs.Sum(nil)) != string(sum[:]) {
			h.bad.Add(1)
			return
		}
		h.frames.Add(1)
	}
}

func (h *frameHandler) OnClose(c *Conn, err error) { h.closed <- err }

func TestHandlerManyRandomMessages(t *testing.T) {
	conns := 1000
	if testing.Short() {
		conns = 100
	}
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			h := &frameHandler{closed: make(chan error, conns)}
			ln, served := serve(t, kind, h)
			g := ln.g
			var wg sync.WaitGroup
			sem := make(chan struct{}, 200)
			for i := range conns {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					peer := dial(t, ln)
					defer peer.Close()
					sendFrames(peer, uint64(i), 5)
					_ = peer.(*net.TCPConn).CloseWrite()
					// Wait for the server's close: every frame was read.
					_ = peer.SetReadDeadline(time.Now().Add(60 * time.Second))
					_, _ = io.Copy(io.Discard, peer)
				}()
			}
			wg.Wait()
			for range conns {
				select {
				case err := <-h.closed:
					assert.NoError(t, err)
				case <-time.After(30 * time.Second):
					t.Fatal("OnClose missing")
				}
			}
			assert.Zero(t, h.bad.Load())
			assert.Equal(t, int64(conns*5), h.frames.Load())
			require.NoError(t, ln.Close())
			<-served
			arenasIdle(t, g)
		})
	}
}

// TestConnManyWaitersFewBlocks: 300 connections over one engine of 64
// blocks, each reader waiting for whole 1 KiB messages that arrive in
// pieces: more readers hold part of a message than there are blocks, so
// the engine runs dry again and again (ENOBUFS on io_uring), re-arms every
// starved connection, and readers spill partial messages when told to.
// Every message arrives.
func TestConnManyWaitersFewBlocks(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind, WithEngines(1), WithMemory(64*16<<10))
			g := ln.g
			const conns, msgs, size = 300, 192, 1024
			var read atomic.Int64
			var wg sync.WaitGroup
			batch := make([]byte, 16*size)
			for range conns {
				peer := dial(t, ln)
				c, err := ln.Accept()
				require.NoError(t, err)
				wg.Add(2)
				go func() {
					defer wg.Done()
					for range msgs / 16 {
						if _, err := peer.Write(batch); err != nil {
							return
						}
					}
				}()
				go func() {
					defer wg.Done()
					defer peer.Close()
					defer c.Close()
					_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
					for range msgs {
						if _, err := c.Reader().Discard(size); err != nil {
							return
						}
						read.Add(1)
					}
				}()
			}
			wg.Wait()
			if !assert.Equal(t, int64(conns*msgs), read.Load()) {
				t.Logf("engine: %s", engineDebug(g.engines[0]))
			}
			require.NoError(t, ln.Close())
			arenasIdle(t, g)
		})
	}
}

// TestConnDeadlineAndContext: a waiting read ends at the read deadline or
// when its context is done, with nothing consumed; the bytes stay readable.
func TestConnDeadlineAndContext(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind, WithEngines(1), WithMemory(1<<20))
			g := ln.g
			peer := dial(t, ln)
			defer peer.Close()
			c, err := ln.Accept()
			require.NoError(t, err)
			_, err = peer.Write([]byte("abc"))
			require.NoError(t, err)

			require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Millisecond)))
			start := time.Now()
			err = c.Reader().ReadRange(10, func([]byte) { t.Error("nothing may be shown") })
			assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
			assert.Less(t, time.Since(start), 5*time.Second)
			require.NoError(t, c.SetReadDeadline(time.Time{}))

			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
			defer cancel()
			buf := make([]byte, 10)
			n, err := c.ReadContext(ctx, buf)
			require.NoError(t, err, "buffered bytes are returned at once")
			assert.Equal(t, "abc", string(buf[:n]))
			_, err = c.ReadContext(ctx, buf)
			assert.ErrorIs(t, err, context.DeadlineExceeded)

			require.NoError(t, c.Close())
			require.NoError(t, ln.Close())
			arenasIdle(t, g)
		})
	}
}

// bigWriter writes 16 MiB from OnOpen, more than the socket buffers hold,
// and echoes whatever else arrives: the loop must not block on the first
// connection's writes while its peer does not read.
type bigWriter struct {
	payload []byte
	closed  chan error
	first   atomic.Bool
}

func (h *bigWriter) OnOpen(c *Conn) {
	if !h.first.CompareAndSwap(false, true) {
		return // only the first connection gets the big write
	}
	for off := 0; off < len(h.payload); off += 64 << 10 {
		if _, err := c.Write(h.payload[off : off+64<<10]); err != nil {
			panic(err)
		}
	}
}

func (h *bigWriter) OnData(c *Conn) {
	r := c.Reader()
	for n := r.Buffered(); n > 0; n = r.Buffered() {
		_ = r.ReadRange(min(n, r.Limit()), func(b []byte) { _, _ = c.Write(b) })
	}
}

func (h *bigWriter) OnClose(c *Conn, err error) { h.closed <- err }

func TestHandlerWritesQueueInOrderWithoutBlockingTheLoop(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			h := &bigWriter{payload: pattern(16<<20, 5), closed: make(chan error, 1024)}
			ln, served := serve(t, kind, h, WithEngines(1), WithMemory(1<<20))
			g := ln.g
			// The first connection gets the big write, the second does not;
			// both are served by the one engine loop.
			big := dial(t, ln)
			defer big.Close()
			require.Eventually(t, h.first.Load, 5*time.Second, time.Millisecond)
			small := dial(t, ln)
			defer small.Close()
			dialed := 2
			// big's peer does not read yet: its server-side writes are queued.
			// The loop still serves small.
			_ = small.SetDeadline(time.Now().Add(10 * time.Second))
			_, err := small.Write([]byte("ping"))
			require.NoError(t, err)
			buf := make([]byte, 4)
			_, err = io.ReadFull(small, buf)
			require.NoError(t, err, "the loop was blocked by another connection's writes")
			assert.Equal(t, "ping", string(buf))

			_ = big.SetReadDeadline(time.Now().Add(20 * time.Second))
			got := make([]byte, len(h.payload))
			_, err = io.ReadFull(big, got)
			require.NoError(t, err)
			assert.True(t, string(got) == string(h.payload), "queued writes arrived out of order or corrupted")

			require.NoError(t, big.Close())
			require.NoError(t, small.Close())
			assert.Eventually(t, func() bool { return len(h.closed) == dialed }, 10*time.Second, 5*time.Millisecond,
				"every connection gets OnClose")
			require.NoError(t, ln.Close())
			<-served
			arenasIdle(t, g)
		})
	}
}

func TestConnValue(t *testing.T) {
	leakCheck(t)
	ln := listen(t, Fallback)
	defer ln.Close()
	peer := dial(t, ln)
	defer peer.Close()
	c, err := ln.Accept()
	require.NoError(t, err)
	assert.Nil(t, c.Value(), "no value before SetValue")
	type session struct{ n int }
	s := &session{n: 7}
	c.SetValue(s)
	got, ok := c.Value().(*session)
	require.True(t, ok)
	assert.Same(t, s, got)
	// A pointer is kept as it is: no box per connection.
	assert.Zero(t, testing.AllocsPerRun(100, func() { c.SetValue(s) }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = c.Value() }))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				c.SetValue(i)
				_ = c.Value()
			}
		}()
	}
	wg.Wait()
	assert.IsType(t, 0, c.Value())
	c.SetValue(nil)
	assert.Nil(t, c.Value())
	require.NoError(t, c.Close())
}

// crossCloseHandler: the first data on each connection closes its partner,
// a connection of the other engine, once both callbacks are running.
type crossCloseHandler struct {
	conns   chan *Conn
	arrived sync.WaitGroup
	closed  chan error
}

func (h *crossCloseHandler) OnOpen(c *Conn)       { h.conns <- c }
func (h *crossCloseHandler) OnClose(*Conn, error) {}
func (h *crossCloseHandler) OnData(c *Conn) {
	partner, _ := c.Value().(*Conn)
	if partner == nil {
		return
	}
	c.SetValue(nil)
	h.arrived.Done()
	both := make(chan struct{})
	go func() { h.arrived.Wait(); close(both) }()
	select { // both loops inside a callback at once (bounded)
	case <-both:
	case <-time.After(2 * time.Second):
	}
	h.closed <- partner.Close()
}

// Two handlers on two engines closing each other's connection at the same
// moment: a Close that waited for the other engine to let go would have each
// loop wait for the other, forever.
func TestHandlersCloseAcrossEngines(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			h := &crossCloseHandler{conns: make(chan *Conn, 2), closed: make(chan error, 2)}
			h.arrived.Add(2)
			ln, served := serve(t, kind, h, WithEngines(2), WithMemory(1<<20))
			g := ln.g
			p0 := dial(t, ln)
			defer p0.Close()
			c0 := <-h.conns
			p1 := dial(t, ln)
			defer p1.Close()
			c1 := <-h.conns
			require.NotEqual(t, c0.ei, c1.ei, "the two connections should be on different engines")
			c0.SetValue(c1)
			c1.SetValue(c0)
			_, err := p0.Write([]byte("a"))
			require.NoError(t, err)
			_, err = p1.Write([]byte("b"))
			require.NoError(t, err)
			for range 2 {
				select {
				case err := <-h.closed:
					assert.NoError(t, err)
				case <-time.After(10 * time.Second):
					require.Fail(t, "a Close from a handler did not return: the loops wait for each other")
				}
			}
			// Both peers see their connection closed.
			for _, p := range []net.Conn{p0, p1} {
				_ = p.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err := p.Read(make([]byte, 1))
				assert.ErrorIs(t, err, io.EOF)
			}
			require.NoError(t, ln.Close())
			assert.ErrorIs(t, <-served, net.ErrClosed)
			arenasIdle(t, g)
		})
	}
}

// Reader.Close from another goroutine wakes a call of the connection's
// Reader that waits for data: it returns an error matching net.ErrClosed,
// and every block goes back.
func TestReaderCloseWakesABlockedRead(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind, WithEngines(1), WithMemory(1<<20))
			g := ln.g
			peer := dial(t, ln)
			defer peer.Close()
			c, err := ln.Accept()
			require.NoError(t, err)
			_, err = peer.Write([]byte("partial"))
			require.NoError(t, err)
			r := c.Reader()
			done := make(chan error, 1)
			go func() { done <- r.ReadRange(100, func([]byte) {}) }()
			require.Eventually(t, func() bool { return r.gs.Load() == gsBusy }, 5*time.Second, time.Millisecond)
			time.Sleep(20 * time.Millisecond) // let it wait
			require.NoError(t, r.Close())
			select {
			case err := <-done:
				assert.ErrorIs(t, err, net.ErrClosed)
			case <-time.After(5 * time.Second):
				require.NoError(t, c.Close())
				<-done
				require.Fail(t, "a read still waits after Reader.Close returned")
			}
			assert.ErrorIs(t, r.Close(), ErrClosed, "a second Close")
			require.NoError(t, c.Close())
			require.NoError(t, ln.Close())
			arenasIdle(t, g)
		})
	}
}

// A read with a context of its own, on a Listener made WithContext, also
// ends when the Listener's context does (WithContext: every wait observes
// it), with nothing consumed.
func TestReadContextObservesTheReadersContext(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			base, cancel := context.WithCancel(context.Background())
			defer cancel()
			ln := listen(t, kind, WithEngines(1), WithMemory(1<<20), WithContext(base))
			g := ln.g
			peer := dial(t, ln)
			defer peer.Close()
			c, err := ln.Accept()
			require.NoError(t, err)
			done := make(chan error, 1)
			go func() {
				_, err := c.ReadContext(context.Background(), make([]byte, 8))
				done <- err
			}()
			time.Sleep(20 * time.Millisecond) // let it wait
			cancel()
			select {
			case err := <-done:
				assert.ErrorIs(t, err, context.Canceled)
			case <-time.After(5 * time.Second):
				require.NoError(t, c.Close())
				<-done
				require.Fail(t, "the wait did not observe the Reader's context")
			}
			require.NoError(t, c.Close())
			require.NoError(t, ln.Close())
			arenasIdle(t, g)
		})
	}
}

// Every connection has a Conn, idle or not: keep it in the 160-byte size
// class (rare state lives in lazily made parts: writeState, connAddrs; the
// adopted net.Conn and the Handler are one word each).
func TestConnIsSmall(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(Conn{}), uintptr(160))
}

// Accept racing Listener.Close returns a working Conn (the kernel had handed
// the connection over) or an error matching net.ErrClosed, never an error
// from attaching to engines the Close stopped; every engine stops once.
func TestAcceptRacingClose(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			bad, conns := 0, 0
			var first error
			deadline := time.Now().Add(5 * time.Second)
			for i := 0; i < 400 && time.Now().Before(deadline); i++ {
				ln := listen(t, kind, WithEngines(1), WithMemory(1<<20))
				res := make(chan error, 1)
				go func() {
					c, err := ln.Accept()
					if err == nil {
						conns++
						err = c.Close()
					}
					res <- err
				}()
				peer := dial(t, ln)
				for range i % 50 {
					runtime.Gosched()
				}
				_ = ln.Close()
				select {
				case err := <-res:
					if err != nil && !errors.Is(err, net.ErrClosed) {
						bad++
						if first == nil {
							first = err
						}
					}
				case <-time.After(5 * time.Second):
					require.Fail(t, "Accept did not return after Close")
				}
				_ = peer.Close()
			}
			t.Logf("%d of the accepts returned a connection", conns)
			assert.Zero(t, bad, "Accept errors not matching net.ErrClosed; the first: %v", first)
		})
	}
}

// With the default number of engines, a machine with hundreds of cores still
// gets engines with arenas of a sane size.
func TestDefaultEnginesOnManyCores(t *testing.T) {
	old := runtime.GOMAXPROCS(300)
	defer runtime.GOMAXPROCS(old)
	ln, err := Listen("tcp", "127.0.0.1:0", WithEngine(Fallback))
	require.NoError(t, err)
	defer ln.Close()
	assert.LessOrEqual(t, len(ln.g.engines), 32)
	for _, e := range ln.g.engines {
		assert.GreaterOrEqual(t, e.arena().Len(), 32, "blocks per engine")
	}
}

// Wrap with WithDebug gets a debug arena whatever an earlier Wrap asked.
func TestWrapHonoursDebug(t *testing.T) {
	t.Cleanup(closeSharedGroups)
	closeSharedGroups()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	plain, _ := wrapAccepted(t, ln, WithEngine(Fallback))
	debug, _ := wrapAccepted(t, ln, WithEngine(Fallback), WithDebug())
	assert.False(t, plain.g.engines[plain.ei].arena().Debug())
	assert.True(t, debug.g.engines[debug.ei].arena().Debug(), "WithDebug was ignored after a plain Wrap")
}

// A Wrap that leaves the engine to Auto and one that names the engine Auto
// resolves to read on one group: the process does not run two sets of
// engines, each with an arena of its own, for the same settings.
func TestWrapAutoSharesTheGroupOfTheEngineItPicks(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			t.Cleanup(closeSharedGroups)
			closeSharedGroups()
			t.Setenv(EnvEngine, kind.String())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			wrap := func(opts ...Option) *Conn {
				t.Helper()
				c, _ := wrapAccepted(t, ln, opts...)
				return c
			}
			auto := wrap()
			named := wrap(WithEngine(kind))
			assert.Same(t, auto.g, named.g)
			assert.Equal(t, kind.String(), named.Engine().Name)
			assert.Equal(t, EnvEngine+" asked for it", named.Engine().Reason, "the group keeps the reason of the Wrap that made it")
			other := Fallback
			if kind == Fallback {
				other = IOUring
			}
			if other == IOUring && Probe().IOUring != nil {
				return
			}
			assert.NotSame(t, auto.g, wrap(WithEngine(other)).g)
		})
	}
}

// Wrap's engine options choose the process-wide group it reads on: the
// same settings share one, other settings start another, and the settings
// are the ones asked for.
func TestWrapHonoursEngineOptions(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			t.Cleanup(closeSharedGroups)
			closeSharedGroups()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			wrap := func(opts ...Option) (*Conn, net.Conn) {
				t.Helper()
				return wrapAccepted(t, ln, append([]Option{WithEngine(kind)}, opts...)...)
			}
			small := []Option{WithEngines(1), WithMemory(1 << 20), WithBlockSize(4096), WithQueueLimit(64 << 10)}
			a, peer := wrap(small...)
			b, _ := wrap(small...)
			plain, _ := wrap()
			dflt, _ := wrap(WithMemory(DefaultMemory), WithBlockSize(DefaultEngineBlockSize), WithIdleTrim(DefaultIdleTrim))

			assert.Same(t, a.g, b.g, "the same settings share a group")
			assert.Same(t, plain.g, dflt.g, "the defaults spelled out share the default group")
			assert.NotSame(t, a.g, plain.g)
			require.Len(t, a.g.engines, 1)
			ar := a.g.engines[0].arena()
			assert.Equal(t, 4096, ar.BlockSize())
			assert.Equal(t, 256, ar.Len())
			assert.Equal(t, 64<<10, a.g.qlimit)
			assert.Equal(t, DefaultEngineBlockSize, plain.g.engines[plain.ei].arena().BlockSize())

			// The small group reads: a message bigger than a block arrives whole.
			msg := pattern(3*4096+100, 7)
			_, err = peer.Write(msg)
			require.NoError(t, err)
			got := make([]byte, len(msg))
			require.NoError(t, a.SetReadDeadline(time.Now().Add(5*time.Second)))
			_, err = io.ReadFull(a, got)
			require.NoError(t, err)
			assert.Equal(t, msg, got)

			_, err = Wrap(peer, WithEngine(kind), WithReceiveBurst(-1))
			assert.ErrorIs(t, err, ErrNegativeCount)
			assert.ErrorContains(t, err, "zcio/reader: wrap: ")
		})
	}
}

// A Conn.Close from another goroutine while fixed-size reads run: every
// read returns a value or an error, none panics or reads a block given back.
func TestFixedReadsRacingClose(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			for i := range 20 {
				ln := listen(t, kind, WithEngines(1), WithMemory(1<<20), WithDebug())
				g := ln.g
				peer := dial(t, ln)
				c, err := ln.Accept()
				require.NoError(t, err)
				stop := make(chan struct{})
				wrote := make(chan struct{})
				go func() {
					defer close(wrote)
					buf := make([]byte, 32<<10)
					for {
						select {
						case <-stop:
							return
						default:
						}
						_ = peer.SetWriteDeadline(time.Now().Add(time.Second))
						if _, err := peer.Write(buf); err != nil {
							return
						}
					}
				}()
				r := c.Reader()
				done := make(chan any, 1)
				go func() {
					defer func() { done <- recover() }()
					for range 1 << 20 {
						if _, err := r.ReadUint32BE(); err != nil {
							return
						}
						if _, err := r.ReadUint16LE(); err != nil {
							return
						}
					}
				}()
				time.Sleep(time.Duration(1+i%5) * time.Millisecond)
				require.NoError(t, c.Close())
				p := <-done
				close(stop)
				_ = peer.Close()
				<-wrote
				require.NoError(t, ln.Close())
				require.Nil(t, p, "a fixed-size read panicked on round %d", i)
				arenasIdle(t, g)
			}
		})
	}
}

// Wrap of a connection whose socket was put in blocking mode (os.File.Fd on
// a duplicate from TCPConn.File does that to the shared file description):
// the engine must not block in read(2) on it, which would stall every other
// connection it reads (the Wrap engines are shared by the whole process).
func TestWrapBlockingModeSocketDoesNotStallItsEngine(t *testing.T) {
	leakCheck(t)
	t.Cleanup(closeSharedGroups)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	wrap := func(blocking bool) (net.Conn, *Conn) {
		peer, err := net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		nc, err := l.Accept()
		require.NoError(t, err)
		if blocking {
			f, err := nc.(*net.TCPConn).File()
			require.NoError(t, err)
			_ = f.Fd() // clears O_NONBLOCK on the socket nc shares with f
			require.NoError(t, f.Close())
		}
		c, err := Wrap(nc, WithEngine(Fallback))
		require.NoError(t, err)
		return peer, c
	}
	bpeer, bc := wrap(true)
	var peer net.Conn
	var c *Conn
	for range 64 { // another connection on the same engine
		p, x := wrap(false)
		if x.ei == bc.ei {
			peer, c = p, x
			break
		}
		require.NoError(t, x.Close())
		require.NoError(t, p.Close())
	}
	require.NotNil(t, c)
	defer func() {
		_ = bpeer.Close() // first: ends a read(2) that blocks the loop
		_ = peer.Close()
		_ = bc.Close()
		_ = c.Close()
	}()
	// A whole block's worth: the loop reads again after a full read.
	_, err = bpeer.Write(make([]byte, DefaultEngineBlockSize))
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	_, err = peer.Write([]byte("x"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, err = c.Read(make([]byte, 1))
	assert.NoError(t, err, "a connection on the engine of a blocking-mode socket gets no data")
	b := make([]byte, DefaultEngineBlockSize)
	require.NoError(t, bc.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, err = io.ReadFull(bc, b)
	assert.NoError(t, err)
}

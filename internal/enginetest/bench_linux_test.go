//go:build linux

package enginetest_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/fallback"
	"github.com/zcio/zcio/internal/enginetest"
	"github.com/zcio/zcio/ring"
)

// counter is an allocation-free Sink: it counts bytes and releases at once.
type counter struct {
	a        *arena.Arena
	n        atomic.Int64
	notify   chan struct{}
	target   atomic.Int64
	detached chan struct{}
	timer    *time.Timer // reused so waiting does not allocate
}

func (c *counter) Deliver(ref arena.Ref, off, n int) bool {
	c.a.Release(ref)
	if c.n.Add(int64(n)) >= c.target.Load() {
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
	return false
}
func (c *counter) Flush()        {}
func (c *counter) End(err error) {}
func (c *counter) Detached()     { close(c.detached) }

// sendAndWait writes count messages of msg and waits until the sink has seen
// them all.
func sendAndWait(tb testing.TB, peer *os.File, c *counter, msg []byte, count int) {
	c.target.Store(c.n.Load() + int64(len(msg)*count))
	for i := 0; i < count; i++ {
		if _, err := peer.Write(msg); err != nil {
			tb.Fatal(err)
		}
	}
	c.timer.Reset(10 * time.Second)
	defer c.timer.Stop()
	for c.n.Load() < c.target.Load() {
		select {
		case <-c.notify:
		case <-c.timer.C:
			tb.Fatalf("timeout: %d of %d bytes", c.n.Load(), c.target.Load())
		}
	}
}

// engine is the part of an engine the benchmarks use.
type engine interface {
	Attach(fd int, s enginetest.Sink) (enginetest.Handle, error)
	Detach(h enginetest.Handle)
	Close() error
}

type fallbackEngine struct{ *fallback.Engine }

func (x fallbackEngine) Attach(fd int, s enginetest.Sink) (enginetest.Handle, error) {
	return x.Engine.Attach(fd, s)
}
func (x fallbackEngine) Detach(h enginetest.Handle) { x.Engine.Detach(h.(*fallback.Conn)) }

type ringEngine struct{ *ring.Engine }

func (x ringEngine) Attach(fd int, s enginetest.Sink) (enginetest.Handle, error) {
	return x.Engine.Attach(fd, s)
}
func (x ringEngine) Detach(h enginetest.Handle) { x.Engine.Detach(h.(*ring.EngineConn)) }

// engines are the engines this machine runs, by name.
func engines(tb testing.TB) []string {
	names := []string{"fallback"}
	if ring.Probe().ZeroCopyReceive() {
		names = append([]string{"io_uring"}, names...)
	} else {
		tb.Logf("io_uring engine skipped: %v", ring.Probe().Err)
	}
	return names
}

func newEngine(name string, a *arena.Arena) (engine, error) {
	if name == "io_uring" {
		e, err := ring.NewEngine(ring.EngineConfig{Arena: a})
		if err != nil {
			return nil, err
		}
		return ringEngine{e}, nil
	}
	e, err := fallback.New(fallback.Config{Arena: a})
	if err != nil {
		return nil, err
	}
	return fallbackEngine{e}, nil
}

func newCounterConn(tb testing.TB, name string, blockSize int) (*arena.Arena, *counter, *os.File, func()) {
	a, err := arena.New(arena.Config{Blocks: 64, BlockSize: blockSize})
	require.NoError(tb, err)
	e, err := newEngine(name, a)
	require.NoError(tb, err)
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(tb, err)
	require.NoError(tb, syscall.SetNonblock(fds[0], true))
	c := &counter{a: a, notify: make(chan struct{}, 1), detached: make(chan struct{}), timer: time.NewTimer(time.Hour)}
	c.timer.Stop()
	h, err := e.Attach(fds[0], c)
	require.NoError(tb, err)
	peer := os.NewFile(uintptr(fds[1]), "peer")
	return a, c, peer, func() {
		e.Detach(h)
		<-c.detached
		syscall.Close(fds[0])
		peer.Close()
		require.NoError(tb, e.Close())
		assert.Zero(tb, a.InUse())
		require.NoError(tb, a.Close())
	}
}

func TestSteadyStateReadPathDoesNotAllocate(t *testing.T) {
	for _, name := range engines(t) {
		t.Run(name, func(t *testing.T) {
			_, c, peer, done := newCounterConn(t, name, 16<<10)
			defer done()
			msg := make([]byte, 1024)
			sendAndWait(t, peer, c, msg, 200) // warm up: slices grow once
			const batch = 20
			allocs := testing.AllocsPerRun(100, func() { sendAndWait(t, peer, c, msg, batch) })
			// Neither the engine's read path nor the test's waiting
			// allocates; the slack covers runtime background work.
			assert.Less(t, allocs/batch, 0.01, "allocations per message on the engine's read path")
		})
	}
}

// BenchmarkSocketpairRecv compares the engines' read paths (io_uring:
// multishot recv into the buffer ring; fallback: epoll + read(2) into arena
// blocks; each then delivers to a sink that releases at once) with a blocking
// read(2) into one reused buffer, on the same kind of socketpair, for 64 B
// and 4 KiB messages sent in batches of 64.
func BenchmarkSocketpairRecv(b *testing.B) {
	const batch = 64
	for _, size := range []int{64, 4096} {
		msg := make([]byte, size)
		for _, name := range engines(b) {
			b.Run(fmt.Sprintf("impl=%s/size=%dB", name, size), func(b *testing.B) {
				_, c, peer, done := newCounterConn(b, name, 16<<10)
				defer done()
				b.ReportAllocs()
				b.SetBytes(int64(size * batch))
				for b.Loop() {
					sendAndWait(b, peer, c, msg, batch)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/msg")
			})
		}
		b.Run(fmt.Sprintf("impl=read-reused-buffer/size=%dB", size), func(b *testing.B) {
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			require.NoError(b, err)
			peer := os.NewFile(uintptr(fds[1]), "peer")
			defer peer.Close()
			defer syscall.Close(fds[0])
			total := make(chan int)
			want := make(chan int)
			go func() {
				buf := make([]byte, 16<<10)
				got := 0
				for w := range want {
					for got < w {
						n, err := syscall.Read(fds[0], buf)
						if err != nil {
							break
						}
						got += n
					}
					total <- got
				}
			}()
			b.ReportAllocs()
			b.SetBytes(int64(size * batch))
			sent := 0
			for b.Loop() {
				// Tell the reader first: a batch can exceed the socket buffer.
				sent += size * batch
				want <- sent
				for i := 0; i < batch; i++ {
					if _, err := peer.Write(msg); err != nil {
						b.Fatal(err)
					}
				}
				<-total
			}
			close(want)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/msg")
		})
	}
}

// BenchmarkWakeup measures the wake-up latency of an idle engine: one
// 1-byte write to a socketpair until the sink has it and the waiting
// goroutine runs again (a round trip through the engine's wait: a blocking
// io_uring_enter on a locked thread for io_uring, epoll_wait for the
// fallback), against a goroutine blocked in read(2) on the same kind of
// socketpair (Go's netpoller).
func BenchmarkWakeup(b *testing.B) {
	msg := []byte{1}
	for _, name := range engines(b) {
		b.Run("impl="+name, func(b *testing.B) {
			_, c, peer, done := newCounterConn(b, name, 16<<10)
			defer done()
			b.ReportAllocs()
			for b.Loop() {
				sendAndWait(b, peer, c, msg, 1)
			}
		})
	}
	b.Run("impl=netpoller-read", func(b *testing.B) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
		require.NoError(b, err)
		conn := os.NewFile(uintptr(fds[0]), "engine-side")
		defer conn.Close()
		peer := os.NewFile(uintptr(fds[1]), "peer")
		defer peer.Close()
		got := make(chan struct{})
		go func() {
			buf := make([]byte, 64)
			for {
				if _, err := conn.Read(buf); err != nil {
					close(got)
					return
				}
				got <- struct{}{}
			}
		}()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := peer.Write(msg); err != nil {
				b.Fatal(err)
			}
			<-got
		}
		peer.Close()
		<-got
	})
}

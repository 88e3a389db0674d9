//go:build linux

package reader

import (
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// idleConns is how many connections TestIdleConnHeap opens per case.
const idleConns = 2000

// Heap budgets per idle connection (Go heap bytes, after a GC), before and
// after each connection has received one message. They guard against a
// regression; the figures measured are logged.
const (
	idleHandlerHeapBudget  = 360
	idleBlockingHeapBudget = 820
)

// countingHandler consumes everything, counting bytes; it keeps no state of
// its own per connection.
type countingHandler struct {
	opened atomic.Int64
	closed atomic.Int64
	bytes  atomic.Int64
}

func (h *countingHandler) OnOpen(*Conn) { h.opened.Add(1) }
func (h *countingHandler) OnData(c *Conn) {
	r := c.Reader()
	if n := r.Buffered(); n > 0 {
		if _, err := r.Discard(n); err == nil {
			h.bytes.Add(int64(n))
		}
	}
}
func (h *countingHandler) OnClose(*Conn, error) { h.closed.Add(1) }

// warmGoroutines runs n goroutines at once and lets them end: the runtime
// keeps their g structures for reuse, so goroutines started later do not
// add them to the heap measured (they are the runtime's, not the Conn's).
func warmGoroutines(n int) {
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
		}()
	}
	close(release)
	wg.Wait()
}

// heapNow returns the live heap after a full collection.
func heapNow() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// rawDial connects a Unix socket to path without any Go object per socket.
func rawDial(t *testing.T, path string) int {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, syscall.Connect(fd, &syscall.SockaddrUnix{Name: path}))
	return fd
}

// TestIdleConnHeap measures the Go heap an idle connection costs, on each
// engine and model, before and after it has received one 4 KiB message: no
// Go object is made per client socket (raw fds), so the difference is the
// server side's. Blocking mode counts what its waiting goroutine allocates
// but neither the runtime's g structure (reused from goroutines that ended
// before) nor its stack (TestBlockedReaderStackIsSmall measures that).
func TestIdleConnHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("opens thousands of sockets")
	}
	if raceEnabled {
		t.Skip("the race detector adds shadow memory to every object")
	}
	msg := make([]byte, 4096)
	for _, kind := range engineKinds(t) {
		for _, handler := range []bool{true, false} {
			name := kind.String() + "/blocking"
			if handler {
				name = kind.String() + "/handler"
			}
			t.Run(name, func(t *testing.T) {
				leakCheck(t)
				path := filepath.Join(t.TempDir(), "s")
				// A short idle trim: "after" is what an idle server holds.
				ln, err := Listen("unix", path, WithEngine(kind), WithIdleTrim(20*time.Millisecond))
				require.NoError(t, err)
				g := ln.g
				h := &countingHandler{}
				var (
					wg       sync.WaitGroup
					mu       sync.Mutex
					conns    []*Conn
					received atomic.Int64
					served   = make(chan error, 1)
				)
				if !handler {
					conns = make([]*Conn, 0, idleConns)
					warmGoroutines(idleConns)
				}
				base := heapNow()
				if handler {
					go func() { served <- Serve(ln, h) }()
				} else {
					go func() {
						for {
							c, err := ln.Accept()
							if err != nil {
								served <- err
								return
							}
							mu.Lock()
							conns = append(conns, c)
							mu.Unlock()
							wg.Add(1)
							go func() {
								defer wg.Done()
								r := c.Reader()
								for r.Peek(1, func([][]byte) {}) == nil {
									n := r.Buffered()
									if _, err := r.Discard(n); err == nil {
										received.Add(int64(n))
									}
								}
							}()
						}
					}()
				}
				clients := make([]int, 0, idleConns)
				closeClients := func() {
					for _, fd := range clients {
						_ = syscall.Close(fd)
					}
					clients = nil
				}
				defer closeClients()
				for range idleConns {
					clients = append(clients, rawDial(t, path))
				}
				opened := func() int64 {
					if handler {
						return h.opened.Load()
					}
					mu.Lock()
					defer mu.Unlock()
					return int64(len(conns))
				}
				require.Eventually(t, func() bool { return opened() == idleConns }, 30*time.Second, 5*time.Millisecond)
				time.Sleep(50 * time.Millisecond) // blocking readers reach their wait
				idle := heapNow()
				for _, fd := range clients {
					n, err := syscall.Write(fd, msg)
					require.NoError(t, err)
					require.Equal(t, len(msg), n)
				}
				got := func() int64 {
					if handler {
						return h.bytes.Load()
					}
					return received.Load()
				}
				require.Eventually(t, func() bool { return got() == idleConns*int64(len(msg)) }, 30*time.Second, 5*time.Millisecond)
				time.Sleep(100 * time.Millisecond) // past the idle trim
				after := heapNow()

				perIdle := (float64(idle) - float64(base)) / idleConns
				perAfter := (float64(after) - float64(base)) / idleConns
				t.Logf("%s: %d connections, heap per connection: idle %.0f B, after one message %.0f B",
					name, idleConns, perIdle, perAfter)
				budget := float64(idleHandlerHeapBudget)
				if !handler {
					budget = idleBlockingHeapBudget
				}
				assert.LessOrEqual(t, perIdle, budget, "heap per idle connection")
				assert.LessOrEqual(t, perAfter, budget, "heap per connection after one message")
				// Handler mode: the lent Reader and the queue's segment
				// array went back to the engine. Blocking mode: the
				// waiting Reader gave its segment and view arrays to the
				// spares, and the queue its own (segq.Queue.Spare). The
				// idle trim dropped the spares: nothing stays behind per
				// connection.
				assert.LessOrEqual(t, perAfter-perIdle, 8.0, "heap a message left behind per connection")

				require.NoError(t, ln.Close())
				<-served
				if handler {
					// Each connection closes after OnClose, which the
					// peer's close brings.
					closeClients()
					assert.Eventually(t, func() bool { return h.closed.Load() == idleConns }, 30*time.Second, 5*time.Millisecond)
				} else {
					mu.Lock()
					for _, c := range conns {
						_ = c.Close()
					}
					mu.Unlock()
					wg.Wait()
					closeClients()
				}
				arenasIdle(t, g)
			})
		}
	}
}

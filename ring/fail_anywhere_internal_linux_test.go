//go:build linux

package ring

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// anySink checks order and the Sink contract and, at its failAt-th
// Deliver, makes the ring fail right there (as a submit failing in sqe
// would, wherever the loop is: a batch, refill's starved reads).
type anySink struct {
	e         *Engine
	a         *arena.Arena
	seed      int64
	n         int64
	held      []arena.Ref
	failAt    *atomic.Int64
	ended     bool
	ends      int
	detached  chan struct{}
	viol      atomic.Value
	heldAtDet atomic.Int64
	pauseN    int
	h         atomic.Pointer[EngineConn]
}

func (s *anySink) bad(f string, a ...any) {
	if s.viol.Load() == nil {
		s.viol.Store(fmt.Sprintf(f, a...))
	}
}

func (s *anySink) Deliver(ref arena.Ref, off, n int) bool {
	if s.ended {
		s.bad("Deliver after End")
	}
	b := s.a.Bytes(ref.ID())[off : off+n]
	for i, x := range b {
		if x != Pat(s.seed, s.n+int64(i)) {
			s.bad("byte %d out of order", s.n+int64(i))
			break
		}
	}
	s.n += int64(n)
	s.held = append(s.held, ref)
	if s.failAt.Add(-1) == 0 {
		s.e.fail(fmt.Errorf("io_uring_enter: %w", syscall.EBADR))
	}
	s.pauseN++
	if s.pauseN%4 == 0 {
		h := s.h.Load()
		if h != nil {
			go func() { time.Sleep(100 * time.Microsecond); h.Resume() }()
		}
		return true
	}
	return false
}
func (s *anySink) Flush() {
	for _, r := range s.held {
		s.a.Release(r)
	}
	s.held = s.held[:0]
}
func (s *anySink) End(error) { s.ended = true; s.ends++ }
func (s *anySink) Detached() {
	s.heldAtDet.Store(int64(len(s.held)))
	for _, r := range s.held {
		s.a.Release(r)
	}
	s.held = nil
	if s.ends > 1 {
		s.bad("%d Ends", s.ends)
	}
	close(s.detached)
}

func TestEngineFailureAnywhere(t *testing.T) {
	defer func(v uint32) { starvedReadsAfter.Store(v) }(starvedReadsAfter.Load())
	starvedReadsAfter.Store(2)
	for it := range 30 {
		t.Run(fmt.Sprint(it), func(t *testing.T) {
			a, err := arena.New(arena.Config{Blocks: 16, BlockSize: 4096})
			require.NoError(t, err)
			e, err := NewEngine(EngineConfig{Arena: a, ArmCap: 16 * 4096, IdleTrim: -1, Entries: uint32(2 << (it % 3))})
			require.NoError(t, err)
			var failAt atomic.Int64
			failAt.Store(int64(20 + rand.IntN(6000)))
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var sinks []*anySink
			var fds []int
			var peers []*os.File
			for i := range 6 {
				p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
				require.NoError(t, err)
				require.NoError(t, syscall.SetNonblock(p[0], true))
				peer := os.NewFile(uintptr(p[1]), "peer")
				s := &anySink{e: e, a: a, seed: int64(i*31 + it), failAt: &failAt, detached: make(chan struct{})}
				h, err := e.Attach(p[0], s)
				require.NoError(t, err)
				s.h.Store(h)
				sinks, fds, peers = append(sinks, s), append(fds, p[0]), append(peers, peer)
				wg.Add(1)
				go func(seed int64, slow bool) {
					defer wg.Done()
					if slow {
						WritePattern(peer, seed, -1, 4<<10, 500*time.Microsecond, stop)
					} else {
						WritePattern(peer, seed, -1, 32<<10, 0, stop)
					}
				}(s.seed, i >= 3)
			}
			select {
			case <-e.Done():
			case <-time.After(15 * time.Second):
				require.Fail(t, "engine did not stop", "failAt left %d stats %+v", failAt.Load(), e.Stats())
			}
			for i, s := range sinks {
				select {
				case <-s.detached:
				case <-time.After(time.Second):
					assert.Fail(t, "not detached", "conn %d", i)
					continue
				}
				if v := s.viol.Load(); v != nil {
					assert.Fail(t, "contract", "conn %d: %v", i, v)
				}
				assert.Zero(t, s.heldAtDet.Load(), "conn %d: Delivers not flushed before Detached", i)
			}
			t.Logf("stats %+v", e.Stats())
			assert.Equal(t, 0, a.InUse())
			close(stop)
			for _, fd := range fds {
				syscall.Close(fd)
			}
			wg.Wait()
			for _, p := range peers {
				p.Close()
			}
			assert.ErrorIs(t, e.Close(), ErrEngineFailed)
			require.NoError(t, a.Close())
		})
	}
}

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
			var sinks []*CheckSink
			var fds []int
			var peers []*os.File
			for i := range 6 {
				p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
				require.NoError(t, err)
				require.NoError(t, syscall.SetNonblock(p[0], true))
				peer := os.NewFile(uintptr(p[1]), "peer")
				s := NewCheckSink(a, int64(i*31+it))
				s.PauseEvery = 4
				s.OnDeliver = func() { // the ring fails right here: in a batch, or in refill's starved reads
					if failAt.Add(-1) == 0 {
						e.fail(fmt.Errorf("io_uring_enter: %w", syscall.EBADR))
					}
				}
				h, err := e.Attach(p[0], s)
				require.NoError(t, err)
				s.H.Store(h)
				sinks, fds, peers = append(sinks, s), append(fds, p[0]), append(peers, peer)
				wg.Add(1)
				go func(seed int64, slow bool) {
					defer wg.Done()
					if slow {
						WritePattern(peer, seed, -1, 4<<10, 500*time.Microsecond, stop)
					} else {
						WritePattern(peer, seed, -1, 32<<10, 0, stop)
					}
				}(s.Seed, i >= 3)
			}
			select {
			case <-e.Done():
			case <-time.After(15 * time.Second):
				require.Fail(t, "engine did not stop", "failAt left %d stats %+v", failAt.Load(), e.Stats())
			}
			for i, s := range sinks {
				select {
				case <-s.DetachedCh:
				case <-time.After(time.Second):
					assert.Fail(t, "not detached", "conn %d", i)
					continue
				}
				if v := s.Violation(); v != nil {
					assert.Fail(t, "contract", "conn %d: %v", i, v)
				}
				assert.Zero(t, s.HeldAtDetach.Load(), "conn %d: Delivers not flushed before Detached", i)
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

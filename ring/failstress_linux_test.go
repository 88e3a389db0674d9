//go:build linux

package ring_test

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
	"github.com/zcio/zcio/ring"
)

// strictSink checks the Sink contract: bytes in order, nothing after End
// or Detached, End at most once, every Deliver flushed before Detached.
type strictSink struct {
	a          *arena.Arena
	seed       int64
	n          atomic.Int64
	held       []arena.Ref
	pauseEvery int
	delivers   int
	h          atomic.Pointer[ring.EngineConn]
	ended      atomic.Bool
	detached   atomic.Bool
	ends       atomic.Int32
	heldAtDet  atomic.Int64
	viol       atomic.Value
	detachedCh chan struct{}
	endErr     atomic.Value
}

func (s *strictSink) bad(f string, args ...any) {
	if s.viol.Load() == nil {
		s.viol.Store(fmt.Sprintf(f, args...))
	}
}

func (s *strictSink) Deliver(ref arena.Ref, off, n int) bool {
	if s.ended.Load() {
		s.bad("Deliver of %d bytes after End", n)
	}
	if s.detached.Load() {
		s.bad("Deliver after Detached")
	}
	b := s.a.Bytes(ref.ID())[off : off+n]
	base := s.n.Load()
	for i, x := range b {
		if want := ring.Pat(s.seed, base+int64(i)); x != want {
			s.bad("byte %d: got %d want %d", base+int64(i), x, want)
			break
		}
	}
	s.n.Add(int64(n))
	s.held = append(s.held, ref)
	s.delivers++
	if s.pauseEvery > 0 && s.delivers%s.pauseEvery == 0 {
		go func() {
			time.Sleep(200 * time.Microsecond)
			if h := s.h.Load(); h != nil {
				h.Resume()
			}
		}()
		return true
	}
	return false
}

func (s *strictSink) Flush() {
	if s.detached.Load() {
		s.bad("Flush after Detached")
	}
	time.Sleep(50 * time.Microsecond)
	for _, r := range s.held {
		s.a.Release(r)
	}
	s.held = s.held[:0]
}

func (s *strictSink) End(err error) {
	if s.detached.Load() {
		s.bad("End after Detached")
	}
	s.ends.Add(1)
	s.ended.Store(true)
	s.endErr.Store(err)
}

func (s *strictSink) Detached() {
	s.heldAtDet.Store(int64(len(s.held)))
	// give them back anyway so that a leak shows once, here
	for _, r := range s.held {
		s.a.Release(r)
	}
	s.held = nil
	s.detached.Store(true)
	close(s.detachedCh)
}

// The ring fails at a random moment while connections stream, starve,
// get read by the loop and pause: the failing engine must stop, keep the
// Sink contract and give every block back.
func TestEngineFailureUnderStarvedStreaming(t *testing.T) {
	defer ring.SetStarvedReadAfter(2)()
	iters := 12
	for it := range iters {
		t.Run(fmt.Sprint(it), func(t *testing.T) { failOnce(t, it, 0, false) })
	}
}

// The same with a 2-entry SQ (sqe submits and reaps into later), refused
// submits now and then, and plain receives.
func TestEngineFailureWithASmallSQ(t *testing.T) {
	defer ring.SetStarvedReadAfter(2)()
	defer ring.SetNoBundles()()
	for it := range 12 {
		t.Run(fmt.Sprint(it), func(t *testing.T) { failOnce(t, it, 2, true) })
	}
}

func failOnce(t *testing.T, it int, entries uint32, refuse bool) {
	const bs, blocks = 4096, 16
	a, err := arena.New(arena.Config{Blocks: blocks, BlockSize: bs})
	require.NoError(t, err)
	e, err := ring.NewEngine(ring.EngineConfig{Arena: a, ArmCap: blocks * bs, IdleTrim: -1, Entries: entries})
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sinks []*strictSink
	var fds []int
	var peers []*os.File
	for i := range 7 {
		fd, peer := streamPair(t)
		s := &strictSink{a: a, seed: int64(i*13 + it), detachedCh: make(chan struct{})}
		if i >= 4 {
			s.pauseEvery = 3
		}
		h, err := e.Attach(fd, s)
		require.NoError(t, err)
		s.h.Store(h)
		sinks, fds, peers = append(sinks, s), append(fds, fd), append(peers, peer)
		wg.Add(1)
		go func(seed int64, slow bool) {
			defer wg.Done()
			if slow {
				ring.WritePattern(peer, seed, -1, 8<<10, time.Millisecond, stop)
			} else {
				ring.WritePattern(peer, seed, -1, 64<<10, 0, stop)
			}
		}(s.seed, i >= 4)
	}
	if refuse {
		go func() {
			for {
				select {
				case <-e.Done():
					return
				case <-time.After(time.Millisecond):
					ring.RefuseNextSubmit()
				}
			}
		}()
	}
	time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
	if it%3 == 1 {
		sinks[5].h.Load().Detach()
	}
	e.FailNextEnter(ebadr)
	select {
	case <-e.Done():
	case <-time.After(10 * time.Second):
		require.Fail(t, "the failed engine did not stop")
	}
	for i, s := range sinks {
		select {
		case <-s.detachedCh:
		default:
			assert.Fail(t, "not detached", "conn %d", i)
			continue
		}
		if v := s.viol.Load(); v != nil {
			assert.Fail(t, "contract", "conn %d: %v", i, v)
		}
		assert.LessOrEqual(t, s.ends.Load(), int32(1), "conn %d ended twice", i)
		assert.Zero(t, s.heldAtDet.Load(), "conn %d: blocks delivered and never flushed before Detached", i)
	}
	assert.Equal(t, 0, a.InUse(), "blocks not back: stats %+v", e.Stats())
	close(stop)
	for _, fd := range fds {
		syscall.Close(fd)
	}
	wg.Wait()
	for _, p := range peers {
		p.Close()
	}
	assert.ErrorIs(t, e.Close(), ring.ErrEngineFailed)
	require.NoError(t, a.Close())
}

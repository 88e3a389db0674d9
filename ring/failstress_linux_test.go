//go:build linux

package ring_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/ring"
)

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
	var sinks []*ring.CheckSink
	var fds []int
	var peers []*os.File
	for i := range 7 {
		fd, peer := streamPair(t)
		s := ring.NewCheckSink(a, int64(i*13+it))
		s.Work = 50 * time.Microsecond
		if i >= 4 {
			s.PauseEvery = 3
		}
		h, err := e.Attach(fd, s)
		require.NoError(t, err)
		s.H.Store(h)
		sinks, fds, peers = append(sinks, s), append(fds, fd), append(peers, peer)
		wg.Add(1)
		go func(seed int64, slow bool) {
			defer wg.Done()
			if slow {
				ring.WritePattern(peer, seed, -1, 8<<10, time.Millisecond, stop)
			} else {
				ring.WritePattern(peer, seed, -1, 64<<10, 0, stop)
			}
		}(s.Seed, i >= 4)
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
		sinks[5].H.Load().Detach()
	}
	e.FailNextEnter(errEBADR)
	select {
	case <-e.Done():
	case <-time.After(10 * time.Second):
		require.Fail(t, "the failed engine did not stop")
	}
	for i, s := range sinks {
		select {
		case <-s.DetachedCh:
		default:
			assert.Fail(t, "not detached", "conn %d", i)
			continue
		}
		if v := s.Violation(); v != nil { // End twice among them
			assert.Fail(t, "contract", "conn %d: %v", i, v)
		}
		assert.Zero(t, s.HeldAtDetach.Load(), "conn %d: blocks delivered and never flushed before Detached", i)
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

//go:build linux

package ring

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// dropSink gives every block back at once, runs onLoop (on the loop) after
// each Deliver, and pauses when asked.
type dropSink struct {
	a      *arena.Arena
	pause  bool
	onLoop func()
	got    chan struct{}
}

func (s *dropSink) Deliver(ref arena.Ref, _, _ int) bool {
	s.a.Release(ref)
	if s.onLoop != nil {
		s.onLoop()
	}
	select {
	case s.got <- struct{}{}:
	default:
	}
	return s.pause
}
func (s *dropSink) Flush()    {}
func (s *dropSink) End(error) {}
func (s *dropSink) Detached() {}

// EBADR means the kernel dropped completions, and one of them may have
// been a receive's final CQE: the loop then still counts that receive as
// armed. Simulated here (from a callback, on the loop) by marking a paused
// connection, whose receive is gone, armed. The failing engine's shutdown
// used to wait for that CQE without a bound, so the engine never stopped
// and Close never returned (found by review); it now gives up after
// shutdownWait.
func TestEngineFailureDoesNotWaitForADroppedFinalCQE(t *testing.T) {
	a, err := arena.New(arena.Config{Blocks: 32, BlockSize: 16 << 10})
	require.NoError(t, err)
	e, err := NewEngine(EngineConfig{Arena: a, IdleTrim: -1})
	require.NoError(t, err)
	pair := func() (int, int) {
		p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		require.NoError(t, syscall.SetNonblock(p[0], true))
		return p[0], p[1]
	}
	fd1, peer1 := pair()
	fd2, peer2 := pair()
	victim := &dropSink{a: a, pause: true, got: make(chan struct{}, 1)}
	h1, err := e.Attach(fd1, victim)
	require.NoError(t, err)
	_, err = syscall.Write(peer1, []byte("x"))
	require.NoError(t, err)
	<-victim.got
	require.Eventually(t, func() bool { return e.Stats().Pauses == 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // the cancel's final CQE has come: h1's receive is gone

	other := &dropSink{a: a, got: make(chan struct{}, 1)}
	other.onLoop = func() { h1.c.armed = true } // as if its final CQE had been dropped
	_, err = e.Attach(fd2, other)
	require.NoError(t, err)
	_, err = syscall.Write(peer2, []byte("y"))
	require.NoError(t, err)
	<-other.got
	e.faultNext.Store(func() *error { err := fmt.Errorf("io_uring_enter: %w", syscall.EBADR); return &err }())
	_, err = syscall.Write(peer2, []byte("z")) // ends the loop's wait: the fault hits
	require.NoError(t, err)
	t0 := time.Now()
	select {
	case <-e.Done():
		t.Logf("stopped after %v", time.Since(t0))
	case <-time.After(shutdownWait + 5*time.Second):
		require.Fail(t, "the failed engine did not stop: its shutdown waits for a final CQE that was dropped")
	}
	assert.Equal(t, 0, a.InUse())
	assert.ErrorIs(t, e.Close(), ErrEngineFailed)
	require.NoError(t, a.Close())
	for _, fd := range []int{fd1, fd2, peer1, peer2} {
		assert.NoError(t, syscall.Close(fd))
	}
}

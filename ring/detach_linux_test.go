//go:build linux

package ring_test

import (
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

// holdSink keeps every block it is given until the test takes them back.
type holdSink struct {
	mu       sync.Mutex
	held     []arena.Ref
	detached chan struct{}
}

func (s *holdSink) Deliver(ref arena.Ref, _, _ int) bool {
	s.mu.Lock()
	s.held = append(s.held, ref)
	s.mu.Unlock()
	return false
}
func (s *holdSink) Flush()    {}
func (s *holdSink) End(error) {}
func (s *holdSink) Detached() { close(s.detached) }
func (s *holdSink) take() []arena.Ref {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.held
	s.held = nil
	return h
}

// A connection detached while it waited for blocks is no longer counted as
// waiting (nor keeps the loop polling for blocks).
func TestDetachedConnectionLeavesTheStarved(t *testing.T) {
	a, err := arena.New(arena.Config{Blocks: 4, BlockSize: 4096})
	require.NoError(t, err)
	e, err := ring.NewEngine(ring.EngineConfig{Arena: a})
	require.NoError(t, err)
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, syscall.SetNonblock(pair[0], true))
	peer := os.NewFile(uintptr(pair[1]), "peer")
	defer peer.Close()
	s := &holdSink{detached: make(chan struct{})}
	h, err := e.Attach(pair[0], s)
	require.NoError(t, err)
	_, err = peer.Write(make([]byte, 64<<10))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return e.Stats().Starved == 1 }, 5*time.Second, time.Millisecond, "the sink holds every block")
	h.Detach()
	select {
	case <-s.detached:
	case <-time.After(5 * time.Second):
		require.Fail(t, "no Detached")
	}
	assert.Eventually(t, func() bool { return e.Stats().Starved == 0 }, time.Second, time.Millisecond,
		"a detached connection still counts as waiting for blocks: %+v", e.Stats())
	for _, r := range s.take() {
		a.Release(r)
	}
	require.NoError(t, e.Close())
	require.NoError(t, syscall.Close(pair[0]))
	assert.Zero(t, a.InUse())
	require.NoError(t, a.Close())
}

// Attach beyond EngineConfig.MaxConns fails with ErrTooManyConns and leaves
// the engine serving the connections it has.
func TestAttachBeyondMaxConns(t *testing.T) {
	a, err := arena.New(arena.Config{Blocks: 8, BlockSize: 4096})
	require.NoError(t, err)
	e, err := ring.NewEngine(ring.EngineConfig{Arena: a, MaxConns: 1})
	require.NoError(t, err)
	var fds []int
	for range 2 {
		pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		require.NoError(t, syscall.SetNonblock(pair[0], true))
		fds = append(fds, pair[0], pair[1])
	}
	s := &holdSink{detached: make(chan struct{})}
	h, err := e.Attach(fds[0], s)
	require.NoError(t, err)
	_, err = e.Attach(fds[2], &holdSink{detached: make(chan struct{})})
	assert.ErrorIs(t, err, ring.ErrTooManyConns)
	assert.ErrorContains(t, err, "zcio/ring: attach fd ")

	_, err = syscall.Write(fds[1], []byte("still served"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.held) > 0 }, 5*time.Second, time.Millisecond)
	h.Detach()
	select {
	case <-s.detached:
	case <-time.After(5 * time.Second):
		require.Fail(t, "no Detached")
	}
	for _, r := range s.take() {
		a.Release(r)
	}
	require.NoError(t, e.Close())
	for _, fd := range fds {
		require.NoError(t, syscall.Close(fd))
	}
	assert.Zero(t, a.InUse())
	require.NoError(t, a.Close())
}

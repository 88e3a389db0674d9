//go:build linux

package fallback

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/seam"
)

// orderSink records the order of its callbacks; it is an Opener.
type orderSink struct {
	a        *arena.Arena
	mu       sync.Mutex
	calls    []string
	endErr   error
	onOpened func()
	detached chan struct{}
}

func newOrderSink(a *arena.Arena) *orderSink { return &orderSink{a: a, detached: make(chan struct{})} }

func (s *orderSink) add(call string) {
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
}

func (s *orderSink) Deliver(ref arena.Ref, _, _ int) bool {
	s.a.Release(ref)
	s.add("Deliver")
	return false
}
func (s *orderSink) Flush() {}
func (s *orderSink) End(err error) {
	s.mu.Lock()
	s.endErr = err
	s.mu.Unlock()
	s.add("End")
}
func (s *orderSink) Detached() { s.add("Detached"); close(s.detached) }
func (s *orderSink) Opened() {
	s.add("Opened")
	if s.onOpened != nil {
		s.onOpened()
	}
}

func (s *orderSink) log() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...), s.endErr
}

// plain hides Opened: Attach then watches the fd itself, as for a
// blocking-mode reader.
func plain(s *orderSink) Sink { return struct{ Sink }{s} }

// lostEngine starts an engine over a fresh arena and lets its loop fall
// asleep in epoll_wait with nothing to do.
func lostEngine(t *testing.T) (*Engine, *arena.Arena) {
	t.Helper()
	a, err := arena.New(arena.Config{Blocks: 16, BlockSize: 4096})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	e, err := New(Config{Arena: a, IdleTrim: -1})
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	return e, a
}

func pairFD(t *testing.T) int {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, syscall.SetNonblock(fds[0], true))
	t.Cleanup(func() { _ = syscall.Close(fds[0]); _ = syscall.Close(fds[1]) })
	return fds[0]
}

func waitDetached(t *testing.T, s *orderSink) {
	t.Helper()
	select {
	case <-s.detached:
	case <-time.After(5 * time.Second):
		require.FailNow(t, "no Detached")
	}
}

// An Opener attached just before the engine fails still gets Opened before
// End and Detached (the Opener contract), as on a Close.
func TestFailureStillOpensQueuedOpeners(t *testing.T) {
	e, a := lostEngine(t)
	seam.CloseEpollFD(e) // a double close elsewhere in the process
	first, second := newOrderSink(a), newOrderSink(a)
	// first's Opened attaches second: it is queued while the loop runs the
	// commands that find the epoll fd lost.
	first.onOpened = func() {
		_, err := e.Attach(pairFD(t), second)
		assert.NoError(t, err)
	}
	_, err := e.Attach(pairFD(t), first)
	require.NoError(t, err)
	waitDetached(t, first)
	waitDetached(t, second)
	assert.ErrorIs(t, e.Close(), ErrEngineFailed)
	for _, s := range []*orderSink{first, second} {
		calls, endErr := s.log()
		assert.Equal(t, []string{"Opened", "End", "Detached"}, calls)
		assert.ErrorIs(t, endErr, ErrEngineFailed)
	}
	assert.Zero(t, a.InUse())
}

// The epoll fd closed behind the engine's back and its number reused by
// someone else's file while the loop sleeps: an Attach fails with
// ErrEngineFailed, and Close neither closes that file nor reports success.
func TestReusedEpollNumberIsLeftToItsNewOwner(t *testing.T) {
	e, a := lostEngine(t)
	var p [2]int
	require.NoError(t, syscall.Pipe2(p[:], syscall.O_CLOEXEC))
	defer syscall.Close(p[1])
	require.NoError(t, syscall.Dup3(p[0], e.epfd, syscall.O_CLOEXEC)) // the number now names their pipe
	require.NoError(t, syscall.Close(p[0]))
	theirs := e.epfd
	defer syscall.Close(theirs)

	_, err := e.Attach(pairFD(t), plain(newOrderSink(a)))
	assert.ErrorIs(t, err, ErrEngineFailed)
	assert.ErrorIs(t, e.Err(), ErrEngineFailed)
	assert.ErrorIs(t, e.Close(), ErrEngineFailed)
	_, err = fcntlGetfd(theirs)
	assert.NoError(t, err, "the engine closed fd %d, someone else's file by then", theirs)
	assert.Zero(t, a.InUse())
}

// An idle engine that lost its epoll fd finds out at the next Attach that
// watches a socket itself: that Attach and the later ones fail with
// ErrEngineFailed, Err reports it, and the loop stops.
func TestIdleEngineNoticesItsLostEpollFD(t *testing.T) {
	e, a := lostEngine(t)
	seam.CloseEpollFD(e)
	for i := range 3 {
		_, err := e.Attach(pairFD(t), plain(newOrderSink(a)))
		assert.ErrorIs(t, err, ErrEngineFailed, "attach %d", i)
	}
	assert.ErrorIs(t, e.Err(), ErrEngineFailed)
	select {
	case <-e.Done():
	case <-time.After(5 * time.Second):
		assert.Fail(t, "the loop did not stop")
	}
	assert.ErrorIs(t, e.Close(), ErrEngineFailed)
	assert.Zero(t, a.InUse())
}

func fcntlGetfd(fd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

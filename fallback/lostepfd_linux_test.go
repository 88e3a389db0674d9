//go:build linux

package fallback

import (
	"sync"
	"sync/atomic"
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
	fd, _ := pairFDs(t)
	return fd
}

// pairFDs returns a socket pair: a non-blocking end for the engine and the
// peer's end, both closed when the test ends.
func pairFDs(t *testing.T) (engineFD, peerFD int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, syscall.SetNonblock(fds[0], true))
	t.Cleanup(func() { _ = syscall.Close(fds[0]); _ = syscall.Close(fds[1]) })
	return fds[0], fds[1]
}

// trimmingEngine starts an engine with idle trim after idleTrim, attaches a
// connection and gives it a byte: the loop then goes quiet and trims. It
// returns when that work was sent, and the trims' times as they come.
func trimmingEngine(t *testing.T, idleTrim time.Duration) (e *Engine, a *arena.Arena, sent time.Time, trims <-chan time.Time) {
	t.Helper()
	a, err := arena.New(arena.Config{Blocks: 16, BlockSize: 4096})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	at := make(chan time.Time, 4)
	e, err = New(Config{Arena: a, IdleTrim: idleTrim, OnIdleTrim: func() { at <- time.Now() }})
	require.NoError(t, err)
	fd, peer := pairFDs(t)
	_, err = e.Attach(fd, plain(newOrderSink(a)))
	require.NoError(t, err)
	sent = time.Now()
	_, err = syscall.Write(peer, []byte("x"))
	require.NoError(t, err)
	return e, a, sent, at
}

// nextTrim waits for the engine's next idle trim and returns its time.
func nextTrim(t *testing.T, trims <-chan time.Time) time.Time {
	t.Helper()
	select {
	case at := <-trims:
		return at
	case <-time.After(5 * time.Second):
		require.FailNow(t, "no idle trim")
		return time.Time{}
	}
}

// pipeOnEventfd makes a pipe take the number of e's eventfd, as a stray
// close of it and a new pipe elsewhere in the process would. It returns the
// pipe's read end; both ends are closed when the test ends.
func pipeOnEventfd(t *testing.T, e *Engine) (readEnd int) {
	t.Helper()
	var p [2]int
	require.NoError(t, syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK))
	t.Cleanup(func() { _ = syscall.Close(p[0]) })
	require.NoError(t, syscall.Dup3(p[1], e.evfd, syscall.O_CLOEXEC))
	require.NoError(t, syscall.Close(p[1]))
	theirs := e.evfd
	t.Cleanup(func() { _ = syscall.Close(theirs) })
	return p[0]
}

// theirEpoll stands for another component's epoll instance created after
// the engine's epoll fd was closed behind its back: epoll_create1 takes the
// lowest free number, the engine's old one. The test is skipped if another
// number came out.
func theirEpoll(t *testing.T, old int) int {
	t.Helper()
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if fd != old {
		t.Skipf("the new epoll instance took fd %d, not the engine's old %d", fd, old)
	}
	return fd
}

// registered reports how many of the sockets in epoll instance epfd are
// ready, after writeFD got a byte: the engine must have put none there.
func registered(t *testing.T, epfd, writeFD int) int {
	t.Helper()
	_, err := syscall.Write(writeFD, []byte("y"))
	require.NoError(t, err)
	ev := make([]syscall.EpollEvent, 4)
	n, err := syscall.EpollWait(epfd, ev, 0)
	require.NoError(t, err)
	return n
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
	stopsFailed(t, e, 5*time.Second, "the loop did not stop")
	assert.Zero(t, a.InUse())
}

func fcntlGetfd(fd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// The number taken by another epoll instance: an ADD there would succeed,
// so Attach checks first and fails the engine; nothing of the engine's goes
// into the other instance, and Close leaves it open.
func TestAttachRefusesAnEpollNumberTakenByAnotherInstance(t *testing.T) {
	e, a := lostEngine(t)
	old := e.epfd
	seam.CloseEpollFD(e)
	theirs := theirEpoll(t, old)
	fd, peer := pairFDs(t)
	_, err := e.Attach(fd, plain(newOrderSink(a)))
	assert.ErrorIs(t, err, ErrEngineFailed)
	assert.ErrorIs(t, err, syscall.ENOENT, "the eventfd is not in their instance")
	assert.Zero(t, registered(t, theirs, peer), "the engine registered a socket in another epoll instance")
	assert.ErrorIs(t, e.Close(), ErrEngineFailed)
	_, err = fcntlGetfd(theirs)
	assert.NoError(t, err, "the engine closed the other instance")
	assert.Zero(t, a.InUse())
}

// blockedSink holds the loop in its first Deliver until release is closed.
type blockedSink struct {
	*orderSink
	entered, release chan struct{}
	once             sync.Once
}

func (b *blockedSink) Deliver(ref arena.Ref, off, n int) bool {
	b.once.Do(func() {
		close(b.entered)
		<-b.release
	})
	return b.orderSink.Deliver(ref, off, n)
}

// Once the loop found the number lost, the rest of that batch of commands
// calls no epoll_ctl on it: here the second queued Opener's Opened creates
// another epoll instance, which takes the number, and the engine must not
// put that Opener's socket there.
func TestNoEpollCtlAfterTheLossInTheSameBatch(t *testing.T) {
	e, a := lostEngine(t)
	fd0, peer0 := pairFDs(t)
	fd1 := pairFD(t)
	fd2, peer2 := pairFDs(t) // made now: after the close they would take its number
	busy := &blockedSink{orderSink: newOrderSink(a), entered: make(chan struct{}), release: make(chan struct{})}
	_, err := e.Attach(fd0, busy)
	require.NoError(t, err)
	require.Eventually(t, func() bool { calls, _ := busy.log(); return len(calls) > 0 }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // Opened, then the loop watches fd0 and sleeps

	old := e.epfd
	seam.CloseEpollFD(e) // the loop sleeps on its old instance meanwhile
	_, err = syscall.Write(peer0, []byte("x"))
	require.NoError(t, err)
	<-busy.entered // the loop is held in Deliver: the Opens below queue up

	first, second := newOrderSink(a), newOrderSink(a)
	theirs := -1
	second.onOpened = func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC) // someone else's epoll
		if assert.NoError(t, err) {
			theirs = fd
		}
	}
	_, err = e.Attach(fd1, first)
	require.NoError(t, err)
	_, err = e.Attach(fd2, second)
	require.NoError(t, err)
	close(busy.release)
	for _, s := range []*orderSink{busy.orderSink, first, second} {
		waitDetached(t, s)
	}
	require.NotEqual(t, -1, theirs)
	defer syscall.Close(theirs)
	if theirs != old {
		t.Skipf("their epoll instance took fd %d, not the engine's old %d", theirs, old)
	}
	assert.Zero(t, registered(t, theirs, peer2), "the engine registered a socket in another epoll instance")
	assert.ErrorIs(t, e.Err(), ErrEngineFailed)
	assert.ErrorIs(t, e.Close(), ErrEngineFailed)
	assert.Zero(t, a.InUse())
}

// The loop, woken on its old instance after the number was taken by
// another one, checks before it sleeps again with no timeout: it fails
// instead of sleeping where its own wake-ups never come, so Close returns.
func TestLoopDoesNotSleepOnAnotherEpollInstance(t *testing.T) {
	e, a := lostEngine(t)
	fd, peer := pairFDs(t)
	s := newOrderSink(a)
	_, err := e.Attach(fd, plain(s))
	require.NoError(t, err)
	old := e.epfd
	seam.CloseEpollFD(e) // the loop sleeps on its old instance meanwhile
	theirs := theirEpoll(t, old)
	_, err = syscall.Write(peer, []byte("x")) // wakes the loop, through the old instance
	require.NoError(t, err)
	waitDetached(t, s)
	calls, endErr := s.log()
	assert.Equal(t, []string{"Deliver", "End", "Detached"}, calls, "the byte, then the failure")
	assert.ErrorIs(t, endErr, ErrEngineFailed)
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	select {
	case err := <-closed:
		assert.ErrorIs(t, err, ErrEngineFailed)
	case <-time.After(5 * time.Second):
		require.FailNow(t, "Close waits for a loop asleep on another epoll instance")
	}
	assert.Zero(t, registered(t, theirs, peer))
	assert.Zero(t, a.InUse())
}

// A handler-mode sink (an Opener): Attach only queues its Open, and the loop
// checks the number before its first ADD, as Attach does for other sinks.
func TestOpenerIsNotAddedToAnotherInstance(t *testing.T) {
	e, a := lostEngine(t)
	old := e.epfd
	seam.CloseEpollFD(e) // the loop sleeps on its old instance meanwhile
	theirs := theirEpoll(t, old)
	fd, peer := pairFDs(t)
	s := newOrderSink(a)
	_, err := e.Attach(fd, s)
	require.NoError(t, err)
	waitDetached(t, s)
	calls, endErr := s.log()
	assert.Equal(t, []string{"Opened", "End", "Detached"}, calls)
	assert.ErrorIs(t, endErr, ErrEngineFailed)
	assert.Zero(t, registered(t, theirs, peer), "the engine registered a socket in another epoll instance")
	assert.ErrorIs(t, e.Close(), ErrEngineFailed)
}

// pauseSink pauses its connection at its first Deliver.
type pauseSink struct {
	*orderSink
	paused atomic.Bool
}

func (p *pauseSink) Deliver(ref arena.Ref, off, n int) bool {
	p.orderSink.Deliver(ref, off, n)
	return p.paused.CompareAndSwap(false, true)
}

// Attach found the loss while the loop was inside a batch: the rest of that
// batch (a Resume here) calls no epoll_ctl on the number either.
func TestNoEpollCtlAfterAttachFoundTheLoss(t *testing.T) {
	e, a := lostEngine(t)
	pfd, ppeer := pairFDs(t)
	paused := &pauseSink{orderSink: newOrderSink(a)}
	hp, err := e.Attach(pfd, struct{ Sink }{paused}) // Attach watches it
	require.NoError(t, err)
	_, err = syscall.Write(ppeer, []byte("p"))
	require.NoError(t, err)
	require.Eventually(t, paused.paused.Load, 5*time.Second, time.Millisecond)

	bfd, bpeer := pairFDs(t)
	busy := &blockedSink{orderSink: newOrderSink(a), entered: make(chan struct{}), release: make(chan struct{})}
	_, err = e.Attach(bfd, struct{ Sink }{busy})
	require.NoError(t, err)
	nextFD := pairFD(t)               // made now: after the close it would take the number
	time.Sleep(20 * time.Millisecond) // the loop asleep again

	old := e.epfd
	seam.CloseEpollFD(e)
	theirs := theirEpoll(t, old)
	_, err = syscall.Write(bpeer, []byte("x")) // wakes the loop through its old instance
	require.NoError(t, err)
	<-busy.entered // the loop is inside its batch

	e.Resume(hp)
	_, err = e.Attach(nextFD, plain(newOrderSink(a)))
	require.ErrorIs(t, err, ErrEngineFailed, "Attach finds the loss")
	close(busy.release)
	waitDetached(t, busy.orderSink)
	waitDetached(t, paused.orderSink)
	assert.Zero(t, registered(t, theirs, ppeer), "the resumed connection went into another epoll instance")
	assert.ErrorIs(t, e.Close(), ErrEngineFailed)
}

// The number taken by another instance that has a ready level-triggered fd:
// the loop never finds nothing to do, so it never reaches a sleep's check,
// but the events that match no connection make it check: it fails instead
// of spinning on someone else's events.
func TestLoopDoesNotSpinOnAnotherReadyInstance(t *testing.T) {
	e, a := lostEngine(t)
	fd, peer := pairFDs(t)
	s := newOrderSink(a)
	_, err := e.Attach(fd, plain(s))
	require.NoError(t, err)
	old := e.epfd
	seam.CloseEpollFD(e)
	theirs := theirEpoll(t, old)
	var p [2]int
	require.NoError(t, syscall.Pipe2(p[:], syscall.O_CLOEXEC))
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	_, err = syscall.Write(p[1], []byte("r")) // their fd, ready, level-triggered
	require.NoError(t, err)
	require.NoError(t, syscall.EpollCtl(theirs, syscall.EPOLL_CTL_ADD, p[0],
		&syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: 7, Pad: 7}))
	_, err = syscall.Write(peer, []byte("x")) // wakes the loop through its old instance
	require.NoError(t, err)
	waitDetached(t, s)
	assert.ErrorIs(t, e.Err(), ErrEngineFailed)
	assert.ErrorIs(t, e.Close(), ErrEngineFailed)
}

// Replaced during the idle-trim wait, the number is checked before the
// longer deep-trim wait: the loop fails then instead of sleeping on the
// other instance for DeepTrimFactor x IdleTrim.
func TestLongWaitsAreCheckedFirst(t *testing.T) {
	e, _, _, trims := trimmingEngine(t, 500*time.Millisecond) // the loop then sleeps until the idle trim
	time.Sleep(50 * time.Millisecond)
	old := e.epfd
	seam.CloseEpollFD(e)
	theirEpoll(t, old)
	nextTrim(t, trims) // next: a 5 s deep-trim wait, on their instance without the check
	stopsFailed(t, e, 2*time.Second, "the loop went to sleep on another epoll instance")
}

// The stray close hit the eventfd, whose number a pipe took: Attach's check
// fails the engine; nothing is written into the pipe and it stays open, and
// Close returns (the loop's sleeps are bounded, its wake-ups gone).
func TestReusedEventfdNumberIsLeftAlone(t *testing.T) {
	e, a := lostEngine(t)
	theirs := e.evfd
	readEnd := pipeOnEventfd(t, e)
	_, err := e.Attach(pairFD(t), plain(newOrderSink(a)))
	assert.ErrorIs(t, err, ErrEngineFailed)
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	select {
	case err := <-closed:
		assert.ErrorIs(t, err, ErrEngineFailed)
	case <-time.After(5 * time.Second):
		require.FailNow(t, "Close hangs: the loop sleeps and its eventfd is gone")
	}
	_, err = fcntlGetfd(theirs)
	assert.NoError(t, err, "the engine closed fd %d, someone else's file by then", theirs)
	n, _ := syscall.Read(readEnd, make([]byte, 16))
	assert.LessOrEqual(t, n, 0, "the engine wrote into someone else's file")
}

// Waits longer than a second are cut into seconds, each checked first: the
// loss found by an Attach that may not wake the loop (ENOENT: the eventfd's
// number now names a pipe) stops it within about a second even when it
// sleeps in a long deep-trim wait.
func TestLongWaitsAreCutIntoSeconds(t *testing.T) {
	e, a, _, trims := trimmingEngine(t, time.Second) // an idle trim after 1 s, then a 10 s deep-trim wait
	nextTrim(t, trims)
	time.Sleep(100 * time.Millisecond) // the loop checked and sleeps on its own instance
	pipeOnEventfd(t, e)
	_, err := e.Attach(pairFD(t), plain(newOrderSink(a)))
	require.ErrorIs(t, err, ErrEngineFailed)
	stopsFailed(t, e, 4*time.Second, "the loop slept on through its deep-trim wait")
}

// The trim waits keep their length when cut into seconds: the idle trim
// still comes IdleTrim after the last work, not at the first cut.
func TestCutWaitsKeepTheirLength(t *testing.T) {
	e, _, sent, trims := trimmingEngine(t, 1500*time.Millisecond)
	defer e.Close()
	assert.GreaterOrEqual(t, nextTrim(t, trims).Sub(sent), 1400*time.Millisecond, "the idle trim came at the first one-second cut")
}

// Events of another epoll instance that took the number make the loop
// check even when their data look like the engine's own: its wake-up slot
// (another engine's eventfd, say) or a connection that is not watched.
func TestAliasedForeignEventsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ended bool
	}{{"wake slot", false}, {"ended connection", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e, a := lostEngine(t)
			fd, peer := pairFDs(t)
			s := newOrderSink(a)
			h, err := e.Attach(fd, plain(s))
			require.NoError(t, err)
			require.NoError(t, syscall.Shutdown(peer, syscall.SHUT_WR)) // end of stream: ended, still attached
			require.Eventually(t, func() bool { calls, _ := s.log(); return len(calls) > 0 }, 5*time.Second, time.Millisecond)
			time.Sleep(20 * time.Millisecond)
			ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: -1} // the wake slot
			if tc.ended {
				ev.Fd, ev.Pad = int32(h.c.slot), int32(h.c.gen)
			}
			old := e.epfd
			seam.CloseEpollFD(e)
			theirs := theirEpoll(t, old)
			var p [2]int
			require.NoError(t, syscall.Pipe2(p[:], syscall.O_CLOEXEC))
			defer syscall.Close(p[0])
			defer syscall.Close(p[1])
			_, err = syscall.Write(p[1], []byte("r")) // their fd, ready, level-triggered
			require.NoError(t, err)
			require.NoError(t, syscall.EpollCtl(theirs, syscall.EPOLL_CTL_ADD, p[0], &ev))
			e.Resume(h) // wakes the loop through its old instance; then it polls theirs
			stopsFailed(t, e, 3*time.Second, "the loop spins on another instance's events")
		})
	}
}

// stopsFailed checks that e's loop stops within d (why: what it does
// instead) and that Close then reports the failure.
func stopsFailed(t *testing.T, e *Engine, d time.Duration, why string) {
	t.Helper()
	select {
	case <-e.Done():
	case <-time.After(d):
		assert.Fail(t, why)
	}
	assert.ErrorIs(t, e.Close(), ErrEngineFailed)
}

//go:build linux

package loopctl

import (
	"runtime"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/internal/unix"
)

func TestControlQueueWakeShutdown(t *testing.T) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	require.NoError(t, err)
	defer unix.Close(efd)
	var l Control[int]
	l.Init(efd)
	assert.False(t, l.OnLoop(), "no loop bound yet")

	assert.True(t, l.Send(1))
	assert.True(t, l.Send(2))
	var buf [8]byte
	n, err := unix.Read(efd, buf[:])
	require.NoError(t, err)
	require.Equal(t, 8, n)
	assert.Equal(t, byte(1), buf[0], "two sends, one eventfd write: wake-ups coalesce")
	assert.Equal(t, []int{1, 2}, l.Take())
	assert.Empty(t, l.Take())

	assert.True(t, l.Shutdown(9))
	assert.False(t, l.Shutdown(9), "a second shutdown is refused")
	assert.False(t, l.Send(3), "sends after shutdown are dropped")
	l.Mu.Lock()
	assert.True(t, l.Closing())
	l.Mu.Unlock()
	assert.Equal(t, []int{9}, l.Take())

	runtime.LockOSThread() // held while the other goroutine runs: it gets another thread
	defer runtime.UnlockOSThread()
	l.BindLoop()
	defer l.UnbindLoop()
	assert.True(t, l.OnLoop())
	done := make(chan bool)
	go func() { done <- l.OnLoop() }()
	assert.False(t, <-done, "another thread is not the loop")
}

// OnAnyLoop is true on the thread of a bound loop, of any Control, and
// nowhere else; not after UnbindLoop.
func TestOnAnyLoop(t *testing.T) {
	var a, b Control[int]
	type seen struct{ a, b, any, anyAfter bool }
	run := func(l *Control[int]) seen {
		ch := make(chan seen)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			l.BindLoop()
			s := seen{a: a.OnLoop(), b: b.OnLoop(), any: OnAnyLoop()}
			l.UnbindLoop()
			s.anyAfter = OnAnyLoop()
			ch <- s
		}()
		return <-ch
	}
	assert.Equal(t, seen{a: true, any: true}, run(&a))
	assert.Equal(t, seen{b: true, any: true}, run(&b))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	assert.False(t, OnAnyLoop(), "the test's own thread is no loop")
}

// After CloseFD a Wake writes nothing, not even to a file that took the
// eventfd's number (a block released after the engine closed calls Wake).
func TestWakeAfterCloseFDWritesNothing(t *testing.T) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	require.NoError(t, err)
	var l Control[int]
	l.Init(efd)
	l.CloseFD()
	var p [2]int
	require.NoError(t, syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK))
	// The read end far from the old number, the write end on it.
	rd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[0]), syscall.F_DUPFD_CLOEXEC, 1000)
	require.Zero(t, errno)
	defer syscall.Close(int(rd))
	require.NoError(t, syscall.Dup3(p[1], efd, syscall.O_CLOEXEC))
	for _, fd := range p {
		if fd != efd {
			_ = syscall.Close(fd)
		}
	}
	defer syscall.Close(efd)
	l.Wake()
	var buf [8]byte
	n, err := syscall.Read(int(rd), buf[:])
	assert.ErrorIs(t, err, syscall.EAGAIN, "Wake after CloseFD wrote %d bytes into another file", max(n, 0))
	l.CloseFD() // again: nothing
}

//go:build linux

package ring

import (
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/unix"
)

// waiter is an owner goroutine's way of waiting for completions.
type waiter int

const (
	// waitEnter blocks in io_uring_enter on the locked thread.
	waitEnter waiter = iota
	// waitEventfd parks on an eventfd registered with the ring
	// (IORING_REGISTER_EVENTFD) in Go's netpoller, then enters without
	// waiting to run the deferred task work and reap.
	waitEventfd
)

// wakeOwner runs a ring with one multishot receive on fd until end of
// stream, signalling got (buffered, capacity 1) after each completion with
// data. The signal is a non-blocking send, as in the engine: a goroutine
// readied by a hand-off on an unbuffered channel just before the owner goes
// back into a blocking io_uring_enter waits on the P the owner takes into
// the system call until another thread steals it or sysmon retakes the P
// (measured here: 65-125 µs per wake-up instead of 16-30 µs). It reports setup
// errors on started and closes everything before closing done.
func wakeOwner(w waiter, fd int, got chan<- struct{}, started chan<- error, done chan<- struct{}) {
	defer close(done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := New(Config{})
	if err != nil {
		started <- err
		return
	}
	defer r.Close()
	a, err := arena.New(arena.Config{Blocks: 8, BlockSize: 4096})
	if err != nil {
		started <- err
		return
	}
	defer a.Close()
	br, err := r.RegisterBufRing(1, a)
	if err != nil {
		started <- err
		return
	}
	defer br.Close()
	var efile *os.File
	if w == waitEventfd {
		efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			started <- err
			return
		}
		efile = os.NewFile(uintptr(efd), "eventfd") // non-blocking: the netpoller waits on it
		defer efile.Close()
		if err := r.RegisterEventfd(efd); err != nil {
			started <- err
			return
		}
		defer r.UnregisterEventfd()
	}
	r.GetSQE().PrepRecvMultishot(fd, 1, 1)
	if _, err := r.Submit(); err != nil {
		started <- err
		return
	}
	started <- nil
	cqes := make([]CQE, 16)
	counter := make([]byte, 8)
	for {
		if w == waitEnter {
			if _, err := r.SubmitAndWait(1); err != nil {
				return
			}
		} else {
			if _, err := efile.Read(counter); err != nil {
				return
			}
			if _, err := r.Submit(); err != nil { // runs the deferred task work
				return
			}
		}
		n, err := r.Reap(cqes)
		if err != nil {
			return
		}
		for _, c := range cqes[:n] {
			rv := DecodeRecv(c)
			if rv.N > 0 {
				ref, _ := br.Claim(rv.Buf, rv.N, rv.BufMore)
				a.Release(ref)
				select {
				case got <- struct{}{}:
				default:
				}
			}
			if !rv.More {
				return // end of stream (the benchmark never runs the ring dry)
			}
		}
		br.Refill()
	}
}

// BenchmarkRingWakeup measures the two ways an idle ring's owner can wait,
// as the wake-up latency of one 1-byte write on a socketpair until the
// benchmark goroutine hears that the owner reaped it (a round trip through
// two goroutine wake-ups): a blocking io_uring_enter on the locked thread,
// and an eventfd registered with the ring parked in Go's netpoller. The
// baseline is a goroutine blocked in read(2) through the netpoller on the
// same kind of socketpair.
func BenchmarkRingWakeup(b *testing.B) {
	msg := []byte{1}
	for _, w := range []struct {
		name string
		w    waiter
	}{{"blocking-enter", waitEnter}, {"eventfd-netpoller", waitEventfd}} {
		b.Run("wait="+w.name, func(b *testing.B) {
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
			require.NoError(b, err)
			defer syscall.Close(fds[0])
			got, started, done := make(chan struct{}, 1), make(chan error, 1), make(chan struct{})
			go wakeOwner(w.w, fds[0], got, started, done)
			require.NoError(b, <-started)
			timer := time.NewTimer(time.Hour)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := syscall.Write(fds[1], msg); err != nil {
					b.Fatal(err)
				}
				timer.Reset(10 * time.Second)
				select {
				case <-got:
				case <-timer.C:
					b.Fatal("no wake-up in 10 s")
				}
			}
			timer.Stop()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "µs/wakeup")
			assert.NoError(b, syscall.Close(fds[1])) // end of stream stops the owner
			<-done
		})
	}
	b.Run("wait=netpoller-read", func(b *testing.B) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
		require.NoError(b, err)
		conn := os.NewFile(uintptr(fds[0]), "reader")
		defer conn.Close()
		got := make(chan struct{})
		go func() {
			defer close(got)
			buf := make([]byte, 64)
			for {
				if _, err := conn.Read(buf); err != nil {
					return
				}
				got <- struct{}{}
			}
		}()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := syscall.Write(fds[1], msg); err != nil {
				b.Fatal(err)
			}
			<-got
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "µs/wakeup")
		assert.NoError(b, syscall.Close(fds[1]))
		<-got
	})
}

// TestIdleOwnerWaits: both ways of waiting wake for a completion (the
// eventfd registered with a DEFER_TASKRUN ring and parked in Go's netpoller
// too: the owner then enters to run the task work and reaps), and an idle
// owner takes no CPU.
func TestIdleOwnerWaits(t *testing.T) {
	noLeaks(t)
	for _, w := range []waiter{waitEnter, waitEventfd} {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		got, started, done := make(chan struct{}, 1), make(chan error, 1), make(chan struct{})
		go wakeOwner(w, fds[0], got, started, done)
		require.NoError(t, <-started)
		var before, after syscall.Rusage
		require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &before))
		time.Sleep(200 * time.Millisecond) // the owner is idle
		require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &after))
		cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
		assert.Less(t, cpu, 100*time.Millisecond, "an idle owner (waiter %d) must not spin", w)
		for range 3 {
			_, err := syscall.Write(fds[1], []byte("x"))
			require.NoError(t, err)
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Fatalf("waiter %d: no wake-up", w)
			}
		}
		require.NoError(t, syscall.Close(fds[1]))
		<-done
		require.NoError(t, syscall.Close(fds[0]))
	}
}

//go:build linux

package ring

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// Errors of recvLoop.round, preallocated so that the loop allocates nothing.
var (
	errRoundEnded   = errors.New("receive ended before the batch arrived")
	errRoundTimeout = errors.New("no completion for a second")
)

// recvLoop drives one multishot receive on a socketpair by hand, the way an
// event loop does: write a batch from the peer, wait, reap, claim each
// block, release it at once, refill, re-arm when the multishot ends. The
// calling goroutine must hold its OS thread (SINGLE_ISSUER).
type recvLoop struct {
	r           *Ring
	a           *arena.Arena
	br          *BufRing
	fd, peer    int
	cqes        []CQE
	got         int // bytes received
	completions int // receive completions with data
}

const recvLoopUD = 99

func newRecvLoop(tb testing.TB) *recvLoop {
	tb.Helper()
	r, err := New(Config{})
	require.NoError(tb, err)
	a, err := arena.New(arena.Config{Blocks: 64, BlockSize: 16 << 10})
	require.NoError(tb, err)
	br, err := r.RegisterBufRing(9, a)
	require.NoError(tb, err)
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(tb, err)
	l := &recvLoop{r: r, a: a, br: br, fd: fds[0], peer: fds[1], cqes: make([]CQE, 128)}
	l.arm()
	return l
}

func (l *recvLoop) arm() { l.r.GetSQE().PrepRecvMultishot(l.fd, l.br.Group(), recvLoopUD) }

// round writes batch copies of msg and receives them all.
func (l *recvLoop) round(msg []byte, batch int) error {
	target := l.got + len(msg)*batch
	for range batch {
		if _, err := syscall.Write(l.peer, msg); err != nil {
			return err
		}
	}
	for idle := 0; l.got < target; {
		if _, err := l.r.SubmitAndWaitTimeout(1, time.Second); err != nil {
			return err
		}
		n, err := l.r.Reap(l.cqes)
		if err != nil {
			return err
		}
		if n == 0 {
			if idle++; idle == 10 {
				return errRoundTimeout
			}
			continue
		}
		for _, c := range l.cqes[:n] {
			rv := DecodeRecv(c)
			if rv.N > 0 {
				ref, _ := l.br.Claim(rv.Buf, rv.N, rv.BufMore)
				l.a.Release(ref)
				l.got += rv.N
				l.completions++
			}
			if rv.EOF || rv.Errno != 0 {
				return errRoundEnded
			}
			if !rv.More {
				l.br.Refill()
				l.arm()
			}
		}
		l.br.Refill()
	}
	return nil
}

// close ends the receive, closes everything and checks that every block came
// back.
func (l *recvLoop) close(tb testing.TB) {
	tb.Helper()
	assert.NoError(tb, syscall.Close(l.peer)) // the receive ends with EOF
	for range 100 {
		_, _ = l.r.SubmitAndWaitTimeout(1, 10*time.Millisecond)
		n, _ := l.r.Reap(l.cqes)
		done := false
		for _, c := range l.cqes[:n] {
			rv := DecodeRecv(c)
			if rv.N > 0 {
				ref, _ := l.br.Claim(rv.Buf, rv.N, rv.BufMore)
				l.a.Release(ref)
			}
			done = done || !rv.More
		}
		if done {
			break
		}
	}
	assert.NoError(tb, l.br.Close())
	assert.NoError(tb, l.r.Close())
	assert.NoError(tb, syscall.Close(l.fd))
	assert.Zero(tb, l.a.InUse(), "blocks not given back")
	assert.NoError(tb, l.a.Close())
}

// TestRecvPathDoesNotAllocate: once warm, a multishot receive completion
// costs no allocation, from the write through reap, claim, release, refill
// and re-arm.
func TestRecvPathDoesNotAllocate(t *testing.T) {
	noLeaks(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, size := range []int{64, 4096} {
		l := newRecvLoop(t)
		msg := make([]byte, size)
		for range 50 { // warm up
			require.NoError(t, l.round(msg, 16))
		}
		before := l.completions
		var err error
		allocs := testing.AllocsPerRun(200, func() { err = l.round(msg, 16) })
		require.NoError(t, err)
		require.Greater(t, l.completions, before, "the runs received something")
		assert.Zero(t, allocs, "allocations per round of 16 messages of %d B", size)
		l.close(t)
	}
}

// BenchmarkSocketpairRecv compares, in one run and on the same kind of
// socketpair, the binding's multishot receive into buffer-ring blocks (reap,
// claim, release, refill on this goroutine) with a blocking read(2) into one
// reused buffer. Each op writes 16 messages of the size and receives them.
func BenchmarkSocketpairRecv(b *testing.B) {
	const batch = 16
	for _, size := range []int{64, 4096} {
		msg := make([]byte, size)
		b.Run(fmt.Sprintf("impl=multishot-recv/size=%s", sizeName(size)), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			l := newRecvLoop(b)
			defer l.close(b)
			b.ReportAllocs()
			b.SetBytes(int64(size * batch))
			for b.Loop() {
				if err := l.round(msg, batch); err != nil {
					b.Fatal(err)
				}
			}
			reportRecv(b, batch, l.completions)
		})
		b.Run(fmt.Sprintf("impl=read-reused-buffer/size=%s", sizeName(size)), func(b *testing.B) {
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			require.NoError(b, err)
			defer syscall.Close(fds[0])
			defer syscall.Close(fds[1])
			buf := make([]byte, 16<<10)
			reads := 0
			b.ReportAllocs()
			b.SetBytes(int64(size * batch))
			for b.Loop() {
				for range batch {
					if _, err := syscall.Write(fds[1], msg); err != nil {
						b.Fatal(err)
					}
				}
				for got := 0; got < size*batch; reads++ {
					n, err := syscall.Read(fds[0], buf)
					if err != nil || n == 0 {
						b.Fatal("read:", err)
					}
					got += n
				}
			}
			reportRecv(b, batch, reads)
		})
	}
}

// reportRecv reports time per message, and receives (completions with data,
// or read calls) per second and per op.
func reportRecv(b *testing.B, batch, receives int) {
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/msg")
	b.ReportMetric(float64(receives)/sec, "recvs/s")
	b.ReportMetric(float64(receives)/float64(b.N), "recvs/op")
}

func sizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

//go:build linux

package ring

import (
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// noLeaks fails the test when it ends with more open fds or goroutines than
// it started with. Call it first: its cleanup then runs after every other.
func noLeaks(t *testing.T) {
	t.Helper()
	// The runtime's netpoller keeps two fds (epoll, eventfd) from its first
	// use on: make that happen before the count, not during the test.
	r, w, err := os.Pipe()
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.NoError(t, w.Close())
	fds, gs := openFds(t), runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) && (openFds(t) > fds || runtime.NumGoroutine() > gs) {
			time.Sleep(10 * time.Millisecond) // exiting goroutines, deferred closes
		}
		assert.LessOrEqual(t, openFds(t), fds, "leaked file descriptors")
		assert.LessOrEqual(t, runtime.NumGoroutine(), gs, "leaked goroutines")
	})
}

func openFds(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// recvRig is a ring with a buffer ring over its own arena, checked empty at
// the end.
type recvRig struct {
	r    *Ring
	a    *arena.Arena
	br   *BufRing
	cqes []CQE
}

func newRecvRig(t *testing.T, cfg Config, blocks, blockSize int) *recvRig {
	t.Helper()
	r := newTestRing(t, cfg)
	a, err := arena.New(arena.Config{Blocks: blocks, BlockSize: blockSize})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, a.Close()) })
	br, err := r.RegisterBufRing(5, a)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, br.Close())
		assert.Zero(t, a.InUse(), "blocks not given back")
	})
	return &recvRig{r: r, a: a, br: br, cqes: make([]CQE, 64)}
}

// pattern is n bytes that reveal a lost, repeated or reordered byte.
func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*131 + i>>8)
	}
	return p
}

// writeChunks writes p to w in chunks of varying size, then closes w unless
// keepOpen.
func writeChunks(w interface {
	Write([]byte) (int, error)
	Close() error
}, p []byte, keepOpen bool) {
	sizes := []int{1, 7, 64, 1000, 4096, 5000, 33, 65536}
	for i, k := 0, 0; i < len(p); k++ {
		n := min(sizes[k%len(sizes)], len(p)-i)
		if _, err := w.Write(p[i : i+n]); err != nil {
			break
		}
		i += n
	}
	if !keepOpen {
		_ = w.Close()
	}
}

// receive arms a multishot recv on fd and reaps until end of stream, an
// error or the deadline. Each completion's bytes are copied out and the
// block released at once, unless hold is set: then claimed blocks are kept
// until the buffer ring runs dry (ENOBUFS), released, and the receive
// re-armed. It returns the bytes, the last completion and how many times the
// ring ran dry.
func (x *recvRig) receive(t *testing.T, fd int, hold bool, d time.Duration) (got []byte, last Recv, dry int) {
	t.Helper()
	const ud = 77
	var held []arena.Ref
	giveBack := func() {
		for _, ref := range held {
			x.a.Release(ref)
		}
		held = held[:0]
		x.br.Refill()
	}
	defer giveBack()
	arm := func() {
		sqe := x.r.GetSQE()
		require.NotNil(t, sqe, "submission queue full")
		sqe.PrepRecvMultishot(fd, x.br.Group(), ud)
	}
	arm()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		_, err := x.r.SubmitAndWaitTimeout(1, 50*time.Millisecond)
		require.NoError(t, err)
		n, err := x.r.Reap(x.cqes)
		require.NoError(t, err)
		for _, c := range x.cqes[:n] {
			require.EqualValues(t, ud, c.UserData)
			rv := DecodeRecv(c)
			last = rv
			if rv.N > 0 {
				require.True(t, rv.HasBuf, "a receive names its block")
				ref, off := x.br.Claim(rv.Buf, rv.N, rv.BufMore)
				require.Equal(t, rv.Buf, ref.ID())
				got = append(got, x.a.Bytes(ref.ID())[off:off+rv.N]...)
				if hold {
					held = append(held, ref)
				} else {
					x.a.Release(ref)
				}
			}
			switch {
			case rv.EOF, rv.Errno != 0:
				assert.False(t, rv.More, "a final completion clears F_MORE")
				return got, last, dry
			case rv.NoBuffers:
				assert.False(t, rv.More, "ENOBUFS ends the multishot")
				dry++
				giveBack()
				arm()
			case !rv.More:
				arm()
			}
		}
		if !hold {
			x.br.Refill()
		}
	}
	t.Fatalf("timeout after %d bytes", len(got))
	return
}

// TestRecvPatternSocketpair: a known pattern written in uneven chunks
// arrives complete and in order through multishot recv into arena blocks,
// then end of stream.
func TestRecvPatternSocketpair(t *testing.T) {
	noLeaks(t)
	x := newRecvRig(t, Config{}, 16, 4096)
	fd, peer := socketpair(t)
	want := pattern(1 << 20)
	go writeChunks(peer, want, false)
	got, last, _ := x.receive(t, fd, false, 20*time.Second)
	assert.Equal(t, len(want), len(got))
	assert.True(t, bytesEqual(want, got), "bytes lost, repeated or reordered")
	assert.True(t, last.EOF, "peer close is end of stream")
	assert.False(t, last.More)
}

// TestRecvPatternTCP: the same over loopback TCP.
func TestRecvPatternTCP(t *testing.T) {
	noLeaks(t)
	x := newRecvRig(t, Config{}, 16, 16<<10)
	fd, client := tcpPair(t)
	want := pattern(2 << 20)
	go writeChunks(client, want, false)
	got, last, _ := x.receive(t, fd, false, 20*time.Second)
	assert.Equal(t, len(want), len(got))
	assert.True(t, bytesEqual(want, got), "bytes lost, repeated or reordered")
	assert.True(t, last.EOF)
}

// TestRecvENOBUFSRearm: a buffer ring of two blocks, none given back until
// it runs dry, under many sends: the multishot ends with ENOBUFS, is re-armed
// after the blocks come back, and every byte still arrives in order.
func TestRecvENOBUFSRearm(t *testing.T) {
	noLeaks(t)
	x := newRecvRig(t, Config{}, 2, 4096)
	fd, peer := socketpair(t)
	want := pattern(256 << 10)
	go writeChunks(peer, want, false)
	got, last, dry := x.receive(t, fd, true, 20*time.Second)
	assert.Positive(t, dry, "two blocks held under 256 KiB of sends must run dry")
	assert.True(t, bytesEqual(want, got), "got %d of %d bytes, or out of order", len(got), len(want))
	assert.True(t, last.EOF)
}

// TestRecvEOFWithoutData: a peer that closes at once gives end of stream and
// no block.
func TestRecvEOFWithoutData(t *testing.T) {
	noLeaks(t)
	x := newRecvRig(t, Config{}, 4, 4096)
	fd, peer := socketpair(t)
	require.NoError(t, peer.Close())
	got, last, _ := x.receive(t, fd, false, 5*time.Second)
	assert.Empty(t, got)
	assert.True(t, last.EOF)
	assert.False(t, last.HasBuf, "end of stream uses no block")
	assert.NoError(t, last.Err())
}

// TestRecvReset: a TCP peer that aborts (SO_LINGER 0, RST) gives ECONNRESET
// after the bytes it sent before.
func TestRecvReset(t *testing.T) {
	noLeaks(t)
	x := newRecvRig(t, Config{}, 4, 4096)
	fd, client := tcpPair(t)
	_, err := client.Write([]byte("before the reset"))
	require.NoError(t, err)
	require.NoError(t, client.SetLinger(0))
	got, last, _ := func() ([]byte, Recv, int) {
		time.Sleep(10 * time.Millisecond) // let the bytes land first
		require.NoError(t, client.Close())
		return x.receive(t, fd, false, 5*time.Second)
	}()
	assert.Equal(t, syscall.ECONNRESET, last.Errno)
	assert.ErrorIs(t, last.Err(), syscall.ECONNRESET)
	assert.False(t, last.EOF)
	// A reset discards what was queued and not read; what came before it
	// came intact.
	assert.True(t, bytesEqual([]byte("before the reset")[:len(got)], got))
}

// tcpPair returns the server side of a loopback TCP connection as a raw fd
// (closed at cleanup) and the client side.
func tcpPair(t *testing.T) (int, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	srv, err := ln.Accept()
	require.NoError(t, err)
	f, err := srv.(*net.TCPConn).File() // a dup the test owns
	require.NoError(t, err)
	require.NoError(t, srv.Close())
	t.Cleanup(func() { f.Close() })
	return int(f.Fd()), client.(*net.TCPConn)
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// TestBufRingLifecycle: registering publishes every free block but the
// reserve, Claim hands the ring's reference over, Refill gives a released
// block back, Close unregisters the group (it can be registered again) and
// releases every block, once.
func TestBufRingLifecycle(t *testing.T) {
	noLeaks(t)
	r := newTestRing(t, Config{})
	a, err := arena.New(arena.Config{Blocks: 8, BlockSize: 4096})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()

	br, err := r.RegisterBufRing(2, a)
	require.NoError(t, err)
	assert.Equal(t, 8, br.Held(), "every block published")
	assert.Equal(t, 8, a.InUse())
	assert.Equal(t, uint16(2), br.Group())
	assert.Equal(t, Probe().IncrementalBuffers.OK, br.Incremental())
	_, err = r.RegisterBufRing(2, a)
	assert.ErrorIs(t, err, syscall.EEXIST, "one ring per group")

	ref, off := br.Claim(3, 100, false)
	assert.Equal(t, uint16(3), ref.ID())
	assert.Zero(t, off)
	assert.Equal(t, 7, br.Held(), "the claimed block is the caller's")
	assert.Panics(t, func() { br.Claim(3, 1, false) }, "a block the ring does not hold")
	a.Release(ref)
	br.SetReserve(1)
	assert.Zero(t, br.Refill(), "the one free block is the reserve")
	br.SetReserve(0)
	assert.Equal(t, 1, br.Refill())
	assert.Equal(t, 8, br.Held())

	if br.Incremental() { // Linux 6.12: one block carries several receives
		first, off := br.Claim(4, 100, true)
		assert.Zero(t, off)
		assert.Equal(t, 8, br.Held(), "the kernel keeps filling block 4")
		second, off := br.Claim(4, 50, false)
		assert.Equal(t, 100, off, "the next receive follows the first")
		assert.Equal(t, 7, br.Held())
		a.Release(first)
		a.Release(second)
		assert.Equal(t, 1, br.Refill(), "block 4 is back after its last reference")
	}

	require.NoError(t, br.Close())
	assert.ErrorIs(t, br.Close(), ErrClosed)
	assert.Zero(t, a.InUse(), "Close releases every block")
	again, err := r.RegisterBufRing(2, a)
	require.NoError(t, err, "Close unregistered the group")
	require.NoError(t, again.Close())
	assert.Zero(t, a.InUse())
}

// TestSetupFlags: on this kernel a default ring gets the flags the engine
// relies on, a CQ of CQFactor × the SQ, and a registered ring fd; a NOP
// round-trips; and the ring refuses another OS thread.
func TestSetupFlags(t *testing.T) {
	noLeaks(t)
	if !Probe().DeferTaskrun.OK {
		t.Skipf("DEFER_TASKRUN (Linux 6.1): %v", Probe().DeferTaskrun.Err)
	}
	r := newTestRing(t, Config{})
	assert.EqualValues(t, DefaultEntries, r.SQEntries())
	assert.EqualValues(t, DefaultEntries*CQFactor, r.CQEntries())
	assert.True(t, r.DeferTaskrun())
	assert.NotZero(t, r.SetupFlags()&setupSingleIssuer, "SINGLE_ISSUER")
	assert.NotZero(t, r.SetupFlags()&setupClamp, "CLAMP")
	assert.True(t, r.RegisteredFd(), "registered ring fd (Linux 5.18)")

	r.GetSQE().PrepNop(123)
	_, err := r.SubmitAndWait(1)
	require.NoError(t, err)
	cqes := make([]CQE, 4)
	n, err := r.Reap(cqes)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	assert.EqualValues(t, 123, cqes[0].UserData)
	assert.Zero(t, cqes[0].Res)

	assert.ErrorIs(t, enterElsewhere(r), ErrWrongThread, "registered ring fd")

	plain := newTestRing(t, Config{NoRegisteredFd: true})
	require.False(t, plain.RegisteredFd())
	err = enterElsewhere(plain)
	assert.ErrorIs(t, err, ErrWrongThread, "SINGLE_ISSUER")
	assert.ErrorIs(t, err, syscall.EEXIST)
}

// enterElsewhere calls Submit on r from another OS thread.
func enterElsewhere(r *Ring) error {
	errc := make(chan error)
	go func() {
		runtime.LockOSThread() // a thread of its own, not the ring's
		defer runtime.UnlockOSThread()
		r.GetSQE().PrepNop(1)
		_, err := r.Submit()
		errc <- err
	}()
	return <-errc
}

//go:build linux

package ring

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/unix"
)

// TestABILayout checks sizes and field offsets against the kernel's
// include/uapi/linux/io_uring.h.
func TestABILayout(t *testing.T) {
	var sqe SQE
	assert.EqualValues(t, 64, unsafe.Sizeof(sqe))
	for name, got := range map[string]uintptr{
		"opcode": unsafe.Offsetof(sqe.Opcode), "flags": unsafe.Offsetof(sqe.Flags),
		"ioprio": unsafe.Offsetof(sqe.Ioprio), "fd": unsafe.Offsetof(sqe.Fd),
		"off": unsafe.Offsetof(sqe.Off), "addr": unsafe.Offsetof(sqe.Addr), "len": unsafe.Offsetof(sqe.Len),
		"op_flags": unsafe.Offsetof(sqe.OpFlags), "user_data": unsafe.Offsetof(sqe.UserData),
		"buf_group": unsafe.Offsetof(sqe.BufIndex), "personality": unsafe.Offsetof(sqe.Personality),
		"optlen": unsafe.Offsetof(sqe.FileIndex), "addr3": unsafe.Offsetof(sqe.Addr3),
	} {
		want := map[string]uintptr{"opcode": 0, "flags": 1, "ioprio": 2, "fd": 4, "off": 8, "addr": 16, "len": 24,
			"op_flags": 28, "user_data": 32, "buf_group": 40, "personality": 42, "optlen": 44, "addr3": 48}[name]
		assert.Equal(t, want, got, "io_uring_sqe.%s", name)
	}
	var cqe CQE
	assert.EqualValues(t, 16, unsafe.Sizeof(cqe))
	assert.EqualValues(t, 8, unsafe.Offsetof(cqe.Res))
	assert.EqualValues(t, 12, unsafe.Offsetof(cqe.Flags))

	var p params
	assert.EqualValues(t, 120, unsafe.Sizeof(p), "io_uring_params")
	assert.EqualValues(t, 40, unsafe.Offsetof(p.sqOff), "io_uring_params.sq_off")
	assert.EqualValues(t, 80, unsafe.Offsetof(p.cqOff), "io_uring_params.cq_off")
	assert.EqualValues(t, 40, unsafe.Sizeof(sqringOffsets{}), "io_sqring_offsets")
	assert.EqualValues(t, 40, unsafe.Sizeof(cqringOffsets{}), "io_cqring_offsets")

	var e bufEntry
	assert.EqualValues(t, bufEntrySize, unsafe.Sizeof(e), "io_uring_buf")
	assert.EqualValues(t, 12, unsafe.Offsetof(e.bid))
	assert.EqualValues(t, bufTailOff, unsafe.Offsetof(e.resv), "the ring's tail overlays entry 0's resv")
	assert.EqualValues(t, 40, unsafe.Sizeof(bufReg{}), "io_uring_buf_reg")
	assert.EqualValues(t, 16, unsafe.Sizeof(probeHeader{}), "io_uring_probe")
	assert.EqualValues(t, 8, unsafe.Sizeof(probeOp{}), "io_uring_probe_op")
	assert.EqualValues(t, 16, unsafe.Sizeof(rsrcUpdate{}), "io_uring_rsrc_update")
	assert.EqualValues(t, 24, unsafe.Sizeof(geteventsArg{}), "io_uring_getevents_arg")
}

// TestTailWord checks the 32-bit publication of the u16 buffer-ring tail.
func TestTailWord(t *testing.T) {
	assert.Equal(t, uint32(0xbeef_1234), tailWord(0xdead_1234, 0xbeef, true))
	assert.Equal(t, uint32(0xdead_beef), tailWord(0xdead_1234, 0xbeef, false))
	assert.Equal(t, uint16(3), bufQueued(0xfffe, 1), "the u16 indices wrap")
}

// TestProbeMatchesKernel: this machine runs Linux 6.18, which has every
// feature the probe asks about; a test fails if the probe says otherwise.
func TestProbeMatchesKernel(t *testing.T) {
	var u syscall.Utsname
	require.NoError(t, syscall.Uname(&u))
	release := utsString(u.Release[:])
	f := Probe()
	if !atLeast(release, 6, 12) {
		t.Skipf("kernel %s: the expectations are for 6.12 and later", release)
	}
	require.NoError(t, f.Err, "io_uring must work on %s", release)
	for _, ft := range f.List() {
		var major, minor int
		_, err := fmt.Sscanf(ft.Since, "%d.%d", &major, &minor)
		require.NoError(t, err, "%v", ft)
		if atLeast(release, major, minor) { // older kernels may have it backported, or not
			assert.True(t, ft.OK, "%v", ft)
		}
	}
	assert.True(t, f.ZeroCopyReceive())
	assert.True(t, f.Op(OpRecv) && f.Op(OpAccept) && f.Op(OpAsyncCancel))
	assert.GreaterOrEqual(t, int(f.LastOp), OpRecv)
	assert.Same(t, f, Probe(), "the probe is cached")
}

func utsString[T int8 | uint8](b []T) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func atLeast(release string, major, minor int) bool {
	var a, b int
	for i, n := 0, 0; i < len(release); i++ {
		c := release[i]
		if c >= '0' && c <= '9' {
			n = n*10 + int(c-'0')
			continue
		}
		if c != '.' {
			b = n
			break
		}
		a, n = n, 0
		if i == len(release)-1 {
			b = n
		}
	}
	return a > major || a == major && b >= minor
}

// TestForcedUnsupported drives the unsupported path through the setup seam:
// EPERM (io_uring_disabled, seccomp), ENOSYS and EINVAL all give an error
// wrapping ErrUnsupported and the cause.
func TestForcedUnsupported(t *testing.T) {
	defer func() { setupFault = nil }()
	for _, cause := range []error{unix.EPERM, unix.ENOSYS, unix.EINVAL} {
		setupFault = func(uint32) error { return cause }
		f := probe()
		require.Error(t, f.Err)
		assert.ErrorIs(t, f.Err, ErrUnsupported)
		assert.ErrorIs(t, f.Err, cause)
		assert.False(t, f.ZeroCopyReceive())
		for _, ft := range f.List() {
			assert.False(t, ft.OK, "%s", ft.Name)
		}
		_, err := newRing(8, 16, 0)
		assert.ErrorIs(t, err, ErrUnsupported)
		assert.ErrorIs(t, err, cause)
	}
}

func newTestRing(t *testing.T, cfg Config) *Ring {
	t.Helper()
	runtime.LockOSThread()
	r, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, r.Close())
		assert.ErrorIs(t, r.Close(), ErrClosed, "Close frees everything once")
		runtime.UnlockOSThread()
	})
	return r
}

func socketpair(t *testing.T) (int, *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Close(fds[0]) })
	peer := os.NewFile(uintptr(fds[1]), "peer")
	t.Cleanup(func() { peer.Close() })
	return fds[0], peer
}

// reapAll waits for completions until cond says stop or the time is up.
func reapAll(t *testing.T, r *Ring, d time.Duration, cond func(CQE) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	cqes := make([]CQE, 64)
	for time.Now().Before(deadline) {
		if _, err := r.SubmitAndWaitTimeout(1, 50*time.Millisecond); err != nil && !errors.Is(err, unix.ETIME) {
			require.NoError(t, err)
		}
		n, err := r.Reap(cqes)
		require.NoError(t, err)
		for _, c := range cqes[:n] {
			if !cond(c) {
				return
			}
		}
	}
	t.Fatal("timeout waiting for completions")
}

// TestTinyCQBurstLosesNothing: a CQ of 2 entries under a burst of multishot
// completions overflows; Reap flushes the kernel's backlog and every byte
// arrives, in order.
func TestTinyCQBurstLosesNothing(t *testing.T) {
	noLeaks(t)
	r := newTestRing(t, Config{Entries: 2, CQEntries: 2})
	a, err := arena.New(arena.Config{Blocks: 64, BlockSize: 4096})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	br, err := r.RegisterBufRing(3, a)
	require.NoError(t, err)
	defer func() { assert.NoError(t, br.Close()); assert.Zero(t, a.InUse()) }()

	fd, peer := socketpair(t)
	want := make([]byte, 200<<10)
	for i := range want {
		want[i] = byte(i * 7)
	}
	// 64 KiB wait in the socket before the receive is armed: its first
	// issue alone posts a CQE per 4 KiB block, far more than the CQ holds,
	// however fast this test reaps (with the writes all paced, a fast
	// reaper could keep up and the overflow this test is about would not
	// happen).
	const early = 64 << 10
	_, err = peer.Write(want[:early])
	require.NoError(t, err)
	r.GetSQE().PrepRecvMultishot(fd, 3, 42)
	go func() {
		for i := early; i < len(want); i += 1000 {
			_, _ = peer.Write(want[i:min(i+1000, len(want))])
		}
		peer.Close()
	}()
	var got []byte
	eof := false
	reapAll(t, r, 10*time.Second, func(c CQE) bool {
		rv := DecodeRecv(c)
		if rv.N > 0 {
			ref, off := br.Claim(rv.Buf, rv.N, rv.BufMore)
			got = append(got, a.Bytes(ref.ID())[off:off+rv.N]...)
			a.Release(ref)
			br.Refill()
		}
		if rv.EOF {
			eof = true
			return false
		}
		require.Zero(t, rv.Errno, "recv error")
		if !rv.More {
			r.GetSQE().PrepRecvMultishot(fd, 3, 42) // ended (ENOBUFS, overflow): re-arm
		}
		return true
	})
	assert.True(t, eof)
	assert.Equal(t, want, got)
	assert.Positive(t, r.Stats().Overflows, "a 2-entry CQ must have overflowed")
}

// TestCancelEndsMultishot: cancelling an armed multishot receive ends it
// with ECANCELED.
func TestCancelEndsMultishot(t *testing.T) {
	noLeaks(t)
	r := newTestRing(t, Config{})
	a, err := arena.New(arena.Config{Blocks: 4, BlockSize: 4096})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	br, err := r.RegisterBufRing(1, a)
	require.NoError(t, err)
	defer func() { assert.NoError(t, br.Close()); assert.Zero(t, a.InUse()) }()
	fd, _ := socketpair(t)
	r.GetSQE().PrepRecvMultishot(fd, 1, 7)
	_, err = r.Submit()
	require.NoError(t, err)
	r.GetSQE().PrepCancel(7, 8)
	var cancelRes, recvRes int32 = 1, 1
	reapAll(t, r, 5*time.Second, func(c CQE) bool {
		switch c.UserData {
		case 8:
			cancelRes = c.Res
		case 7:
			recvRes = c.Res
		}
		return cancelRes == 1 || recvRes == 1
	})
	assert.Zero(t, cancelRes, "the cancel found the request")
	assert.Equal(t, -int32(syscall.ECANCELED), recvRes)
}

// TestMultishotAccept: one multishot accept delivers every connection.
func TestMultishotAccept(t *testing.T) {
	noLeaks(t)
	r := newTestRing(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	require.NoError(t, err)
	defer f.Close()
	r.GetSQE().PrepAcceptMultishot(int(f.Fd()), acceptCloexec, 9)
	_, err = r.Submit()
	require.NoError(t, err)
	const n = 5
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
	}
	var fds []int
	reapAll(t, r, 5*time.Second, func(c CQE) bool {
		require.EqualValues(t, 9, c.UserData)
		require.Positive(t, c.Res, "accept error %d", c.Res)
		assert.True(t, c.More(), "the multishot accept stays armed")
		fds = append(fds, int(c.Res))
		return len(fds) < n
	})
	assert.Len(t, fds, n)
	for _, fd := range fds {
		assert.NoError(t, syscall.Close(fd))
	}
	r.GetSQE().PrepCancel(9, 10)
	reapAll(t, r, 5*time.Second, func(c CQE) bool { return c.UserData != 9 || c.More() })
}

// TestConfigErrors: out-of-range sizes are clear errors.
func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{Entries: 3}, {Entries: MaxEntries * 2}, {Entries: 8, CQEntries: 4}, {Entries: 8, CQEntries: 24}} {
		_, err := New(cfg)
		assert.ErrorIs(t, err, ErrInvalidConfig, "%+v", cfg)
	}
	_, err := NewEngine(EngineConfig{})
	assert.ErrorIs(t, err, ErrInvalidConfig)
}

// Every attached connection has an EngineConn, idle or not: keep it in the
// 48-byte size class.
func TestEngineConnIsSmall(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(EngineConn{}), uintptr(48))
}

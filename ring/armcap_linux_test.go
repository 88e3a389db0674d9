//go:build linux

package ring

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	linux "golang.org/x/sys/unix"
)

// The arming cap is an eighth of the arena, within [one block, 1 MiB].
func TestArmCap(t *testing.T) {
	for _, tc := range []struct {
		arena, block int
		want         uint32
	}{
		{8 << 20, 16 << 10, 1 << 20},  // the default budget over two engines
		{64 << 20, 16 << 10, 1 << 20}, // large arenas stop at 1 MiB
		{1 << 20, 16 << 10, 128 << 10},
		{64 * 4096, 4096, 32 << 10},
		{2 * 4096, 4096, 4096}, // never below a block
	} {
		assert.Equal(t, tc.want, armCap(tc.arena, tc.block), "arena %d, block %d", tc.arena, tc.block)
	}
}

// holdSink keeps every block it is given and asks for a pause each time.
type holdSink struct {
	mu       sync.Mutex
	held     []arena.Ref
	n        int
	detached chan struct{}
}

func (s *holdSink) Deliver(ref arena.Ref, off, n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = append(s.held, ref)
	s.n += n
	return true
}
func (s *holdSink) Flush()     {}
func (s *holdSink) End(error)  {}
func (s *holdSink) Detached()  { close(s.detached) }
func (s *holdSink) bytes() int { s.mu.Lock(); defer s.mu.Unlock(); return s.n }
func (s *holdSink) release(a *arena.Arena) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ref := range s.held {
		a.Release(ref)
	}
	s.held = nil
}

// A sink that asks for a pause at its first block gets no more than one
// arming's worth, however much the socket holds and the window has room for:
// the cap, not the window, bounds how far a paused connection runs on. Here
// 3 MiB wait in the socket, the window is 2 MiB and the cap 1 MiB by
// default, or what EngineConfig.ArmCap says.
func TestPausedConnectionStopsWithinArmCap(t *testing.T) {
	if !Probe().RecvCap.OK {
		t.Skip("no capped multishot receive:", Probe().RecvCap.Err)
	}
	const blockSize, blocks = 16 << 10, 1024
	for _, tc := range []struct {
		name    string
		cfg     int // EngineConfig.ArmCap
		wantCap int
	}{
		{"default", 0, 1 << 20},
		{"configured", 256 << 10, 256 << 10},
		{"below a block", 1000, blockSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := pausedOverrun(t, blocks, blockSize, tc.cfg)
			assert.LessOrEqual(t, got, tc.wantCap, "a paused connection ran past one arming")
			assert.Positive(t, got)
			t.Logf("delivered %d bytes after the pause asked at the first block (cap %d)", got, tc.wantCap)
		})
	}
}

// pausedOverrun queues 3 MiB in a socket pair, attaches it to an engine over
// an arena of blocks×blockSize with the given ArmCap and a sink that pauses
// at its first block, and returns how many bytes the sink got.
func pausedOverrun(t *testing.T, blocks, blockSize, capCfg int) int {
	t.Helper()
	const queued = 3 << 20
	a, err := arena.New(arena.Config{Blocks: blocks, BlockSize: blockSize})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	require.Less(t, 1<<20, maxWindow(blocks, blockSize)*blockSize, "the test needs a window larger than the default cap")

	fd, peer := testPair(t)
	_ = syscall.SetsockoptInt(int(peer.Fd()), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 2*queued)
	wrote := make(chan error, 1)
	go func() {
		_, err := peer.Write(make([]byte, queued))
		wrote <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for inq := 0; inq < queued; {
		inq, err = linux.IoctlGetInt(fd, linux.SIOCINQ)
		require.NoError(t, err)
		if time.Now().After(deadline) {
			_ = peer.Close()
			_ = syscall.Close(fd)
			<-wrote
			t.Skipf("the socket pair queues only %d bytes here (wmem_max)", inq)
		}
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, <-wrote)

	e, err := NewEngine(EngineConfig{Arena: a, ArmCap: capCfg})
	require.NoError(t, err)
	s := &holdSink{detached: make(chan struct{})}
	h, err := e.Attach(fd, s)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.bytes() > 0 }, 5*time.Second, time.Millisecond)
	time.Sleep(100 * time.Millisecond) // room for an overrun, if any
	got := s.bytes()

	s.release(a)
	h.Detach()
	<-s.detached
	require.NoError(t, syscall.Close(fd))
	require.NoError(t, peer.Close())
	require.NoError(t, e.Close())
	assert.Zero(t, a.InUse(), "every block back once the engine closed")
	return got
}

func TestNegativeArmCapIsRefused(t *testing.T) {
	a, err := arena.New(arena.Config{Blocks: 16, BlockSize: 4096})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	_, err = NewEngine(EngineConfig{Arena: a, ArmCap: -1})
	assert.ErrorIs(t, err, ErrInvalidConfig)
}

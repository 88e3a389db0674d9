//go:build linux

package ring

import (
	"errors"
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

// pauseSink keeps every block it is given and asks for a pause each time
// (detach_linux_test.go's holdSink, in the external test package, never
// pauses).
type pauseSink struct {
	mu       sync.Mutex
	held     []arena.Ref
	n        int
	detached chan struct{}
}

func (s *pauseSink) Deliver(ref arena.Ref, off, n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = append(s.held, ref)
	s.n += n
	return true
}
func (s *pauseSink) Flush()    {}
func (s *pauseSink) End(error) {}
func (s *pauseSink) Detached() { close(s.detached) }

func (s *pauseSink) bytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *pauseSink) release(a *arena.Arena) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ref := range s.held {
		a.Release(ref)
	}
	s.held = nil
}

// A sink that asks for a pause at its first block gets no more than one
// arming's worth, however much the socket holds and the window has room for:
// the cap, not the window, bounds how far a paused connection runs on. In
// every case more bytes wait in the socket than the cap, and the window
// could take more than the cap too.
func TestPausedConnectionStopsWithinArmCap(t *testing.T) {
	if !Probe().RecvCap.OK {
		t.Skip("no capped multishot receive:", Probe().RecvCap.Err)
	}
	for _, tc := range []struct {
		name              string
		blocks, blockSize int
		cfg               int // EngineConfig.ArmCap
		wantCap, queued   int
	}{
		// 16 MiB arena: cap 1 MiB, window 2 MiB. Needs a socket pair that
		// queues 3 MiB (net.core.wmem_max of 4 MiB here; skipped below that).
		{"default", 1024, 16 << 10, 0, 1 << 20, 3 << 20},
		// 4 MiB arena: window 512 KiB; 160 KiB queued fit the stock wmem_max.
		{"configured", 1024, 4096, 64 << 10, 64 << 10, 160 << 10},
		{"below a block", 1024, 4096, 1000, 4096, 160 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Less(t, tc.wantCap, min(tc.queued, maxWindow(tc.blocks, tc.blockSize)*tc.blockSize),
				"the case must offer more than the cap")
			got := pausedOverrun(t, tc.blocks, tc.blockSize, tc.cfg, tc.queued)
			assert.LessOrEqual(t, got, tc.wantCap, "a paused connection ran past one arming")
			assert.Positive(t, got)
			t.Logf("delivered %d of %d bytes after the pause asked at the first block (cap %d)", got, tc.queued, tc.wantCap)
		})
	}
}

// pausedOverrun queues the given bytes in a socket pair, attaches it to an
// engine over an arena of blocks×blockSize with the given ArmCap and a sink
// that pauses at its first block, and returns how many bytes the sink got.
func pausedOverrun(t *testing.T, blocks, blockSize, capCfg, queued int) int {
	t.Helper()
	fd, peer := testPair(t)
	t.Cleanup(func() {
		_ = peer.Close()
		_ = syscall.Close(fd)
	})
	_ = syscall.SetsockoptInt(int(peer.Fd()), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 2*queued)
	if sb, err := syscall.GetsockoptInt(int(peer.Fd()), syscall.SOL_SOCKET, syscall.SO_SNDBUF); err != nil || sb < queued*5/4 {
		t.Skipf("the socket pair's send buffer is %d bytes (net.core.wmem_max), too small to queue %d", sb, queued)
	}
	// Non-blocking: a write that does not fit fails instead of hanging.
	require.NoError(t, syscall.SetNonblock(int(peer.Fd()), true))
	for sent := 0; sent < queued; {
		n, err := syscall.Write(int(peer.Fd()), make([]byte, min(queued-sent, 64<<10)))
		if errors.Is(err, syscall.EAGAIN) {
			t.Skipf("the socket pair took only %d of %d bytes", sent, queued)
		}
		require.NoError(t, err)
		sent += n
	}
	inq, err := linux.IoctlGetInt(fd, linux.SIOCINQ)
	require.NoError(t, err)
	require.Equal(t, queued, inq, "every byte waits in the socket before the engine sees it")

	a, err := arena.New(arena.Config{Blocks: blocks, BlockSize: blockSize})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, a.Close()) })
	e, err := NewEngine(EngineConfig{Arena: a, ArmCap: capCfg})
	require.NoError(t, err)
	t.Cleanup(func() { // before the arena's: cleanups run last-in first-out
		require.NoError(t, e.Close())
		assert.Zero(t, a.InUse(), "every block back once the engine closed")
	})
	s := &pauseSink{detached: make(chan struct{})}
	h, err := e.Attach(fd, s)
	require.NoError(t, err)
	defer func() {
		h.Detach()
		<-s.detached
		s.release(a)
	}()
	require.Eventually(t, func() bool { return s.bytes() > 0 }, 5*time.Second, time.Millisecond)
	time.Sleep(100 * time.Millisecond) // room for an overrun, if any
	return s.bytes()
}

func TestNegativeArmCapIsRefused(t *testing.T) {
	a, err := arena.New(arena.Config{Blocks: 16, BlockSize: 4096})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	_, err = NewEngine(EngineConfig{Arena: a, ArmCap: -1})
	assert.ErrorIs(t, err, ErrInvalidConfig)
}

//go:build linux

package ring_test

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/ring"
)

// failSink counts bytes, gives every block back at once and records how
// the connection ended.
type failSink struct {
	a        *arena.Arena
	n        atomic.Int64
	end      chan error
	detached chan struct{}
}

func newFailSink(a *arena.Arena) *failSink {
	return &failSink{a: a, end: make(chan error, 1), detached: make(chan struct{})}
}

func (s *failSink) Deliver(ref arena.Ref, _, n int) bool {
	s.n.Add(int64(n))
	s.a.Release(ref)
	return false
}
func (s *failSink) Flush()        {}
func (s *failSink) End(err error) { s.end <- err }
func (s *failSink) Detached()     { close(s.detached) }

type failConn struct {
	fd   int
	peer *os.File
	sink *failSink
	h    *ring.EngineConn
}

func attachFailConn(t *testing.T, e *ring.Engine, a *arena.Arena) failConn {
	fd, peer := streamPair(t)
	s := newFailSink(a)
	h, err := e.Attach(fd, s)
	require.NoError(t, err)
	_, err = peer.Write(make([]byte, 3000))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.n.Load() == 3000 }, 5*time.Second, time.Millisecond, "no receive")
	return failConn{fd: fd, peer: peer, sink: s, h: h}
}

// An io_uring_enter error the ring cannot recover from (EBADR: the kernel
// dropped completions under memory pressure) used to panic the process.
// Now that engine alone fails: each of its connections ends with an error
// wrapping ErrEngineFailed and the kernel's errno, every one is detached,
// every block goes back to the arena, Attach and Close report the failure,
// and another engine goes on receiving.
func TestEngineFailsAloneOnAnEnterError(t *testing.T) {
	newEngine := func() (*ring.Engine, *arena.Arena) {
		a, err := arena.New(arena.Config{Blocks: 32, BlockSize: 16 << 10})
		require.NoError(t, err)
		e, err := ring.NewEngine(ring.EngineConfig{Arena: a, IdleTrim: -1})
		require.NoError(t, err)
		return e, a
	}
	e, a := newEngine()
	other, otherArena := newEngine()
	var conns []failConn
	for range 3 {
		conns = append(conns, attachFailConn(t, e, a))
	}
	survivor := attachFailConn(t, other, otherArena)

	e.FailNextEnter(fmt.Errorf("io_uring_enter: %w", syscall.EBADR))
	for _, c := range conns { // completions end the loop's wait
		_, err := c.peer.Write(make([]byte, 100))
		require.NoError(t, err)
	}
	select {
	case <-e.Done():
	case <-time.After(5 * time.Second):
		require.Fail(t, "the failed engine did not stop")
	}
	for i, c := range conns {
		select {
		case err := <-c.sink.end:
			assert.ErrorIs(t, err, ring.ErrEngineFailed, "conn %d", i)
			assert.ErrorIs(t, err, syscall.EBADR, "conn %d", i)
		default:
			assert.Fail(t, "not ended", "conn %d", i)
		}
		select {
		case <-c.sink.detached:
		default:
			assert.Fail(t, "not detached", "conn %d", i)
		}
	}
	assert.ErrorIs(t, e.Err(), ring.ErrEngineFailed)
	assert.ErrorIs(t, e.Err(), syscall.EBADR)
	assert.Equal(t, 0, a.InUse(), "blocks not given back")

	fd, peer := streamPair(t)
	_, err := e.Attach(fd, newFailSink(a))
	assert.ErrorIs(t, err, ring.ErrEngineFailed, "Attach after the failure")
	err = e.Close()
	assert.ErrorIs(t, err, ring.ErrEngineFailed, "Close after the failure")
	assert.True(t, errors.Is(err, syscall.EBADR))

	// The other engine was not touched.
	assert.NoError(t, other.Err())
	_, err = survivor.peer.Write(make([]byte, 5000))
	require.NoError(t, err)
	assert.Eventually(t, func() bool { return survivor.sink.n.Load() == 8000 }, 5*time.Second, time.Millisecond,
		"the other engine stopped receiving")
	survivor.h.Detach()
	<-survivor.sink.detached
	require.NoError(t, other.Close())
	assert.Equal(t, 0, otherArena.InUse())

	require.NoError(t, a.Close())
	require.NoError(t, otherArena.Close())
	for _, c := range append(conns, survivor) {
		require.NoError(t, c.peer.Close())
		require.NoError(t, syscall.Close(c.fd))
	}
	require.NoError(t, peer.Close())
	require.NoError(t, syscall.Close(fd))
}

//go:build linux

package ring_test

import (
	"errors"
	"fmt"
	"os"
	"sync"
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
	assert.Equal(t, "zcio/ring: engine failed: io_uring_enter: "+syscall.EBADR.Error(), e.Err().Error())
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

// pauseSink pauses on its first Deliver (and releases every block).
type pauseSink struct {
	*failSink
	paused chan struct{}
	once   bool
}

func (s *pauseSink) Deliver(ref arena.Ref, off, n int) bool {
	s.failSink.Deliver(ref, off, n)
	if !s.once {
		s.once = true
		close(s.paused)
		return true
	}
	return false
}

func newFailEngine(t *testing.T) (*ring.Engine, *arena.Arena) {
	a, err := arena.New(arena.Config{Blocks: 32, BlockSize: 16 << 10})
	require.NoError(t, err)
	e, err := ring.NewEngine(ring.EngineConfig{Arena: a, IdleTrim: -1})
	require.NoError(t, err)
	return e, a
}

func waitDone(t *testing.T, e *ring.Engine, what string) bool {
	select {
	case <-e.Done():
		return true
	case <-time.After(5 * time.Second):
		assert.Fail(t, "the failed engine did not stop", what)
		return false
	}
}

var errEBADR = fmt.Errorf("io_uring_enter: %w", syscall.EBADR)

// An Attach queued when the ring fails: the failing loop arms it on the
// scratch SQE, which used to mark it armed though nothing reached the
// kernel, and shutdown waited forever for its final CQE (found by review:
// Done never closed, 3 of 3).
func TestEngineFailureWithAnAttachQueued(t *testing.T) {
	e, a := newFailEngine(t)
	e.FailNextEnter(errEBADR)
	fd, peer := streamPair(t)
	defer peer.Close()
	s := newFailSink(a)
	_, err := e.Attach(fd, s) // its wake ends the loop's wait: the fault hits with the Attach queued
	require.NoError(t, err)
	if !waitDone(t, e, "attach queued") {
		return
	}
	assert.ErrorIs(t, <-s.end, ring.ErrEngineFailed)
	<-s.detached
	assert.Equal(t, 0, a.InUse())
	assert.ErrorIs(t, e.Close(), ring.ErrEngineFailed)
	require.NoError(t, a.Close())
	syscall.Close(fd)
}

// A Detach queued when the ring fails: its cancel went to the scratch SQE
// and was marked sent, so shutdown never submitted the real one and waited
// forever for the receive's final CQE (found by review).
func TestEngineFailureWithADetachQueued(t *testing.T) {
	e, a := newFailEngine(t)
	c := attachFailConn(t, e, a)
	defer c.peer.Close()
	e.FailNextEnter(errEBADR)
	c.h.Detach() // its wake ends the loop's wait
	if !waitDone(t, e, "detach queued") {
		return
	}
	<-c.sink.detached
	assert.Equal(t, 0, a.InUse())
	assert.ErrorIs(t, e.Close(), ring.ErrEngineFailed)
	require.NoError(t, a.Close())
	syscall.Close(c.fd)
}

// A Resume queued when the ring fails, for a paused connection whose
// receive is gone: it was armed on the scratch SQE, marked armed, and
// shutdown waited forever (found by review).
func TestEngineFailureWithAResumeQueued(t *testing.T) {
	e, a := newFailEngine(t)
	fd, peer := streamPair(t)
	defer peer.Close()
	s := &pauseSink{failSink: newFailSink(a), paused: make(chan struct{})}
	h, err := e.Attach(fd, s)
	require.NoError(t, err)
	_, err = peer.Write(make([]byte, 100))
	require.NoError(t, err)
	<-s.paused
	require.Eventually(t, func() bool { return e.Stats().Pauses == 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // the cancel's final CQE: the receive is gone
	e.FailNextEnter(errEBADR)
	h.Resume()
	if !waitDone(t, e, "resume queued") {
		return
	}
	<-s.detached
	assert.Equal(t, 0, a.InUse())
	assert.ErrorIs(t, e.Close(), ring.ErrEngineFailed)
	require.NoError(t, a.Close())
	syscall.Close(fd)
}

// unflushedSink is flushSink that also counts the Delivers no Flush
// followed by the time the connection is detached.
type unflushedSink struct {
	flushSink
	pending   int // Delivers since the last Flush (loop only)
	atDetach  atomic.Int64
	detached  chan struct{}
	delivered atomic.Int64
}

func (s *unflushedSink) Deliver(ref arena.Ref, off, n int) bool {
	s.pending++
	s.delivered.Add(1)
	return s.flushSink.Deliver(ref, off, n)
}
func (s *unflushedSink) Flush()        { s.pending = 0; s.flushSink.Flush() }
func (s *unflushedSink) End(err error) {}
func (s *unflushedSink) Detached() {
	s.atDetach.Store(int64(s.pending))
	close(s.detached)
}

// The ring fails in an iteration where refill's starved reads delivered
// blocks: every Deliver must still be followed by a Flush before the
// connection is detached. Before, the failing loop detached them first
// (shutdown's flush skips detached connections), and a sink that gives its
// blocks back at Flush, as handler mode does, kept them for good: 3
// connections unflushed, 3 blocks never back (found by review, 4 of 4).
func TestEngineFailureFlushesWhatArrived(t *testing.T) {
	const bs, blocks = 4096, 16
	a, err := arena.New(arena.Config{Blocks: blocks, BlockSize: bs})
	require.NoError(t, err)
	e, err := ring.NewEngine(ring.EngineConfig{Arena: a, ArmCap: blocks * bs, IdleTrim: -1})
	require.NoError(t, err)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sinks []*unflushedSink
	var fds []int
	var peers []*os.File
	attach := func(write func(p *os.File)) *unflushedSink {
		fd, peer := streamPair(t)
		s := &unflushedSink{flushSink: flushSink{a: a, work: 100 * time.Microsecond, ended: make(chan error, 1)},
			detached: make(chan struct{})}
		_, err := e.Attach(fd, s)
		require.NoError(t, err)
		sinks, fds, peers = append(sinks, s), append(fds, fd), append(peers, peer)
		wg.Add(1)
		go func() { defer wg.Done(); write(peer) }()
		return s
	}
	stream := func(p *os.File) { streamUntil(p, stop) }
	for range 4 {
		attach(stream)
	}
	time.Sleep(200 * time.Millisecond)
	for range 3 {
		attach(stream) // these starve, and the loop reads for them
	}
	require.Eventually(t, func() bool { return e.Stats().StarvedReads > 50 }, 20*time.Second, time.Millisecond,
		"no starved reads: stats %+v", e.Stats())

	e.FailNextEnter(errEBADR)
	select {
	case <-e.Done():
	case <-time.After(10 * time.Second):
		require.Fail(t, "the failed engine did not stop")
	}
	t.Logf("stats %+v", e.Stats())
	unflushed := 0
	for i, s := range sinks {
		<-s.detached
		if n := s.atDetach.Load(); n > 0 {
			unflushed++
			t.Logf("conn %d: %d Delivers with no Flush after them", i, n)
		}
	}
	assert.Zero(t, unflushed, "connections detached with Delivers never flushed")
	assert.Equal(t, 0, a.InUse(), "blocks never given back (the sinks wait for a Flush)")

	close(stop)
	for _, fd := range fds {
		assert.NoError(t, syscall.Close(fd)) // the writers' blocked writes fail (EPIPE)
	}
	wg.Wait()
	for _, p := range peers {
		assert.NoError(t, p.Close())
	}
	assert.ErrorIs(t, e.Close(), ring.ErrEngineFailed)
	require.NoError(t, a.Close())
}

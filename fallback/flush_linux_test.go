//go:build linux

package fallback_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/fallback"
)

// consumeSink consumes at each Flush, as a handler does: it checks the bytes
// it was handed against what the peer sent and releases their blocks.
type consumeSink struct {
	a        *arena.Arena
	want     []byte
	held     []arena.Ref
	got      atomic.Int64 // bytes delivered so far (read by the test on timeout)
	bad      bool         // a delivered byte differed from the one sent
	done     chan struct{}
	detached chan struct{}
}

func (s *consumeSink) Deliver(ref arena.Ref, off, n int) bool {
	b := s.a.Bytes(ref.ID())[off : off+n]
	got := int(s.got.Load())
	if got+n > len(s.want) || string(b) != string(s.want[got:got+n]) {
		s.bad = true
	}
	s.got.Add(int64(n))
	s.held = append(s.held, ref)
	return false
}

func (s *consumeSink) Flush() {
	for _, r := range s.held {
		s.a.Release(r)
	}
	s.held = s.held[:0]
	if int(s.got.Load()) == len(s.want) {
		close(s.done)
	}
}

func (s *consumeSink) End(error) {}
func (s *consumeSink) Detached() { close(s.detached) }

// TestBusyEngineWorksInOneReadOfArena: many sockets are readable at once
// and a sink consumes at each Flush. The engine flushes after every read, so
// the blocks a read took are free again before the next read: the arena's
// peak stays about one read (at most 512 KiB) plus the tail block. Flushing
// once per batch of events instead held every ready socket's reads at the
// same time (about 250 blocks here with 64 KiB reads).
func TestBusyEngineWorksInOneReadOfArena(t *testing.T) {
	const (
		conns     = 16
		perConn   = 1 << 20
		blockSize = 16 << 10
	)
	a, err := arena.New(arena.Config{Blocks: 1024, BlockSize: blockSize})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	fds := make([][2]int, conns)
	t.Cleanup(func() {
		for _, p := range fds {
			if p != [2]int{} {
				_ = syscall.Close(p[0])
				_ = syscall.Close(p[1])
			}
		}
	})
	e, err := fallback.New(fallback.Config{Arena: a})
	require.NoError(t, err)
	// On a failure too, the engine stops (its connections detach) before
	// the fds close, which ends the writers.
	t.Cleanup(func() { _ = e.Close() })

	var writers sync.WaitGroup
	writeErrs := make(chan error, conns)
	sinks := make([]*consumeSink, conns)
	handles := make([]*fallback.Conn, conns)
	for i := range sinks {
		p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		fds[i] = [2]int{p[0], p[1]}
		require.NoError(t, syscall.SetNonblock(p[0], true))
		data := pattern(perConn, uint64(i+1))
		// Fill the socket before the engine sees it, so that every socket
		// is readable in the engine's first wait; a goroutine sends the rest.
		require.NoError(t, syscall.SetNonblock(p[1], true))
		sent := fill(t, p[1], data)
		if sent <= 4*blockSize {
			t.Skipf("a socket pair here buffers %d bytes, no more than one read (net.core.wmem_default)", sent)
		}
		require.NoError(t, syscall.SetNonblock(p[1], false))
		writers.Add(1)
		go func(fd int, rest []byte) {
			defer writers.Done()
			for len(rest) > 0 {
				n, err := syscall.Write(fd, rest)
				if err == syscall.EINTR {
					continue
				}
				if err != nil {
					writeErrs <- err
					return
				}
				rest = rest[n:]
			}
		}(p[1], data[sent:])
		sinks[i] = &consumeSink{a: a, want: data, done: make(chan struct{}), detached: make(chan struct{})}
	}
	for i, s := range sinks {
		handles[i], err = e.Attach(fds[i][0], s)
		require.NoError(t, err)
	}
	deadline := time.After(20 * time.Second)
	for i, s := range sinks {
		select {
		case <-s.done:
		case err := <-writeErrs:
			t.Fatalf("a peer's write failed: %v", err)
		case <-deadline:
			t.Fatalf("connection %d: %d of %d bytes after 20 s", i, s.got.Load(), perConn)
		}
	}
	writers.Wait()
	for i, s := range sinks {
		e.Detach(handles[i])
		<-s.detached
		assert.False(t, s.bad, "connection %d: bytes differ from those sent", i)
	}
	require.NoError(t, e.Close())

	st := a.Stats()
	t.Logf("peak %d blocks of %d bytes in use", st.PeakInUse, blockSize)
	// One read: the tail block's room plus up to 32 blocks ahead (512 KiB
	// of 16 KiB blocks); a block of slack for the tail changing hands.
	assert.LessOrEqual(t, st.PeakInUse, 34, "peak blocks in use while %d busy sockets were read", conns)
	assert.Zero(t, a.InUse(), "blocks still taken after the engine closed")
}

// pattern returns n bytes of a sequence that seed picks.
func pattern(n int, seed uint64) []byte {
	b := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// detachSink asks for a Detach at its first Flush and counts the bytes
// delivered after that.
type detachSink struct {
	a        *arena.Arena
	e        *fallback.Engine
	h        chan *fallback.Conn // the handle, once Attach returned
	asked    bool
	after    int
	detached chan struct{}
}

func (s *detachSink) Deliver(ref arena.Ref, off, n int) bool {
	if s.asked {
		s.after += n
	}
	s.a.Release(ref)
	return false
}

func (s *detachSink) Flush() {
	if !s.asked {
		s.asked = true
		s.e.Detach(<-s.h)
	}
}

func (s *detachSink) End(error) {}
func (s *detachSink) Detached() { close(s.detached) }

// TestDetachInFlushStopsReads: a sink that detaches at its first Flush, with
// far more than one read waiting in the socket, is handed nothing after it.
func TestDetachInFlushStopsReads(t *testing.T) {
	a, err := arena.New(arena.Config{Blocks: 256, BlockSize: 16 << 10})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(p[0]); _ = syscall.Close(p[1]) })
	e, err := fallback.New(fallback.Config{Arena: a})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() }) // before the fds close
	require.NoError(t, syscall.SetNonblock(p[0], true))
	require.NoError(t, syscall.SetNonblock(p[1], true))
	queued := fill(t, p[1], make([]byte, 4<<20))
	if queued <= 128<<10 {
		t.Skipf("a socket pair here buffers %d bytes, no more than two reads", queued)
	}
	s := &detachSink{a: a, e: e, h: make(chan *fallback.Conn, 1), detached: make(chan struct{})}
	h, err := e.Attach(p[0], s)
	require.NoError(t, err)
	s.h <- h
	select {
	case <-s.detached:
	case <-time.After(5 * time.Second):
		t.Fatal("no Detached 5 s after a Detach asked for in Flush")
	}
	assert.True(t, s.asked)
	assert.Zero(t, s.after, "bytes delivered after the sink asked for a Detach (%d were queued)", queued)
	require.NoError(t, e.Close())
	assert.Zero(t, a.InUse(), "blocks still taken after the engine closed")
}

// fill writes data to the non-blocking socket fd, 64 KiB at a time, until
// the socket takes no more or all is written, and returns how much it took.
func fill(t *testing.T, fd int, data []byte) int {
	t.Helper()
	sent := 0
	for sent < len(data) {
		n, err := syscall.Write(fd, data[sent:min(sent+64<<10, len(data))])
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		require.NoError(t, err)
		sent += n
	}
	return sent
}

// batchProbe is shared by the sinks of TestBusyBatchRunsCommands; they all
// run on the engine's loop.
type batchProbe struct {
	a       *arena.Arena
	e       *fallback.Engine
	idle    *fallback.Conn // detached at the batch's first Flush
	asked   bool
	after   int // bytes delivered since the Detach was asked for
	atEnd   int // after, when the idle connection's Detached ran
	endSeen chan struct{}
	left    int // bytes queued and not yet delivered
	allRead chan struct{}
}

// countSink releases what it is handed and counts it; the first Flush of
// any countSink asks for the idle connection's Detach.
type countSink struct {
	p   *batchProbe
	got int
}

func (s *countSink) Deliver(ref arena.Ref, off, n int) bool {
	s.got += n
	if s.p.asked {
		s.p.after += n
	}
	s.p.a.Release(ref)
	if s.p.left -= n; s.p.left == 0 {
		close(s.p.allRead)
	}
	return false
}

func (s *countSink) Flush() {
	if !s.p.asked {
		s.p.asked = true
		s.p.e.Detach(s.p.idle)
	}
}

func (s *countSink) End(error) {}
func (s *countSink) Detached() {}

// idleSink belongs to the connection the batch's first Flush detaches.
type idleSink struct{ p *batchProbe }

func (s *idleSink) Deliver(ref arena.Ref, _, _ int) bool { s.p.a.Release(ref); return false }
func (s *idleSink) Flush()                               {}
func (s *idleSink) End(error)                            {}
func (s *idleSink) Detached() {
	s.p.atEnd = s.p.after
	close(s.p.endSeen)
}

// gateSink blocks the loop in its first Flush until the test opens the
// gate, so that every socket the test fills meanwhile is in the loop's next
// batch of events.
type gateSink struct {
	a       *arena.Arena
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (s *gateSink) Deliver(ref arena.Ref, _, _ int) bool { s.a.Release(ref); return false }
func (s *gateSink) Flush() {
	s.once.Do(func() {
		close(s.entered)
		<-s.gate
	})
}
func (s *gateSink) End(error) {}
func (s *gateSink) Detached() {}

// TestBusyBatchRunsCommands: one batch of events with far more than 4 MiB
// to read (32 sockets, each with what its buffer holds) runs the commands
// queued meanwhile every 4 MiB, not after the whole batch: a Detach asked
// for at the batch's first Flush is done within 5 MiB (the cut, plus one
// socket's 1 MiB per event) of further reads.
func TestBusyBatchRunsCommands(t *testing.T) {
	const (
		conns    = 32
		cutBound = 4<<20 + 1<<20 // batchBudget + eventBudget
	)
	a, err := arena.New(arena.Config{Blocks: 1024, BlockSize: 16 << 10})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	var fds []int
	t.Cleanup(func() {
		for _, fd := range fds {
			_ = syscall.Close(fd)
		}
	})
	pair := func() (int, int) {
		p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		fds = append(fds, p[0], p[1])
		require.NoError(t, syscall.SetNonblock(p[0], true))
		require.NoError(t, syscall.SetNonblock(p[1], true))
		return p[0], p[1]
	}
	e, err := fallback.New(fallback.Config{Arena: a})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() }) // before the fds close

	g := &gateSink{a: a, entered: make(chan struct{}), gate: make(chan struct{})}
	gr, gw := pair()
	_, err = e.Attach(gr, g)
	require.NoError(t, err)
	_, err = syscall.Write(gw, []byte{1})
	require.NoError(t, err)
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the gate connection's byte was not delivered in 5 s")
	}

	// The loop waits in the gate's Flush: fill every socket to what it
	// holds and attach it, then let the loop go on.
	p := &batchProbe{a: a, e: e, endSeen: make(chan struct{}), allRead: make(chan struct{})}
	ir, _ := pair()
	p.idle, err = e.Attach(ir, &idleSink{p: p})
	require.NoError(t, err)
	sinks := make([]*countSink, conns)
	queued := make([]int, conns)
	total := 0
	for i := range sinks {
		r, w := pair()
		_ = syscall.SetsockoptInt(w, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 1<<20) // capped at wmem_max
		queued[i] = fill(t, w, make([]byte, 4<<20))
		total += queued[i]
		p.left = total // the loop waits at the gate
		sinks[i] = &countSink{p: p}
		_, err = e.Attach(r, sinks[i])
		require.NoError(t, err)
	}
	close(g.gate)
	if total < 2*cutBound {
		t.Skipf("%d sockets here buffer %d bytes in all, too few to tell a cut batch from a whole one", conns, total)
	}
	select {
	case <-p.endSeen:
	case <-time.After(10 * time.Second):
		t.Fatal("no Detached 10 s after a Detach asked for in a Flush")
	}
	select {
	case <-p.allRead:
	case <-time.After(10 * time.Second):
		t.Fatal("not every queued byte was delivered in 10 s")
	}
	require.NoError(t, e.Close())
	assert.True(t, p.asked)
	assert.LessOrEqual(t, p.atEnd, cutBound, "bytes read after the Detach was asked for, before it ran (%d were queued in the batch)", total)
	for i, s := range sinks {
		assert.Equal(t, queued[i], s.got, "connection %d", i)
	}
	assert.Zero(t, a.InUse(), "blocks still taken after the engine closed")
	t.Logf("%d bytes queued in the batch, %d read after the Detach was asked for and before it ran", total, p.atEnd)
}

//go:build linux

package enginetest

import (
	"bytes"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// Sink is the engines' callback set (fallback.Sink, ring.Sink).
type Sink interface {
	Deliver(ref arena.Ref, off, n int) (pause bool)
	Flush()
	End(err error)
	Detached()
}

// Handle is an engine's handle on an attached connection.
type Handle any

// Engine is what the suite drives; each engine's test adapts its own type.
type Engine interface {
	Attach(fd int, s Sink) (Handle, error)
	Resume(h Handle)
	Detach(h Handle)
	BlocksFreed()
	OnLoop() bool
	Close() error
}

// Suite describes the engine under test.
type Suite struct {
	// New starts an engine over a.
	New func(a *arena.Arena) (Engine, error)
	// ErrClosed is the engine's sentinel for End after Close.
	ErrClosed error
	// TakesFromArena: the engine takes blocks only as data comes (the
	// fallback), so a dry arena shows as failed takes; an io_uring engine
	// keeps a window of free blocks published in its buffer ring instead.
	TakesFromArena bool
	// Fail, when set, makes the next wait of e's loop (io_uring_enter,
	// epoll_wait) fail with err, syscall.EBADF, as the kernel's answer, and
	// ErrFailed is the engine's sentinel for that: the suite checks that the
	// engine then fails alone (FailureEndsEveryConnection).
	Fail      func(e Engine, err error)
	ErrFailed error
}

// Run runs every conformance test against the engine.
func Run(t *testing.T, s Suite) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Suite)
	}{
		{"DeliversBytesInOrder", testDeliversBytesInOrder},
		{"SmallMessagesShareBlocks", testSmallMessagesShareBlocks},
		{"PoisonedBlocksShowNoStaleBytes", testPoisonedBlocksShowNoStaleBytes},
		{"DryArenaBackPressureLosesNothing", testDryArenaBackPressureLosesNothing},
		{"DryArenaStillSeesEndOfStream", testDryArenaStillSeesEndOfStream},
		{"DryArenaAfterFullReadSeesEndOfStream", testDryArenaAfterFullReadSeesEndOfStream},
		{"PauseAndResume", testPauseAndResume},
		{"LaterSegmentLiftsPause", testLaterSegmentLiftsPause},
		{"ResetIsAnError", testResetIsAnError},
		{"CloseEndsEveryConnection", testCloseEndsEveryConnection},
		{"AttachRejectsBadFD", testAttachRejectsBadFD},
		{"DetachFromCallback", testDetachFromCallback},
		{"OpenedRunsOnLoopBeforeData", testOpenedRunsOnLoopBeforeData},
		{"WorkingSetStaysSmall", testWorkingSetStaysSmall},
		{"FailureEndsEveryConnection", testFailureEndsEveryConnection},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) })
	}
}

// recorder is a Sink that copies what it is given and keeps or releases the
// block references as the test asks.
type recorder struct {
	a *arena.Arena

	mu      sync.Mutex
	got     bytes.Buffer
	held    []arena.Ref // references kept when hold is set
	hold    bool
	pauseAt int // pause once this many bytes are held (0: never)
	// pauseOnce: answer the first Deliver with pause and every later one
	// with go on, as a queue does whose consumer drained between two
	// pushes of one receive; Resume is never asked for.
	pauseOnce  bool
	pausedOnce bool
	firstBatch int // Deliver calls before the first Flush
	segments   int
	blocks     map[uint16]bool // ids of the blocks segments were in
	stale      bool            // a segment reached past its block
	flushes    int
	endErr     error
	changed    chan struct{} // signalled after every callback

	ended    chan struct{}
	detached chan struct{}
}

func newRecorder(a *arena.Arena) *recorder {
	return &recorder{a: a, changed: make(chan struct{}, 1), ended: make(chan struct{}), detached: make(chan struct{})}
}

func (r *recorder) Deliver(ref arena.Ref, off, n int) bool {
	r.mu.Lock()
	defer r.signal()
	defer r.mu.Unlock()
	r.segments++
	if r.flushes == 0 {
		r.firstBatch++
	}
	if r.blocks == nil {
		r.blocks = map[uint16]bool{}
	}
	r.blocks[ref.ID()] = true
	if n <= 0 || off+n > r.a.BlockSize() {
		r.stale = true
	}
	r.got.Write(r.a.Bytes(ref.ID())[off : off+n])
	if r.pauseOnce {
		r.a.Release(ref)
		first := !r.pausedOnce
		r.pausedOnce = true
		return first
	}
	if r.hold {
		r.held = append(r.held, ref)
		return r.pauseAt > 0 && r.heldBytesLocked() >= r.pauseAt
	}
	r.a.Release(ref)
	return false
}

func (r *recorder) heldBytesLocked() int { return r.got.Len() } // in hold mode every byte is held

func (r *recorder) Flush() {
	r.mu.Lock()
	r.flushes++
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) End(err error) {
	r.mu.Lock()
	r.endErr = err
	r.mu.Unlock()
	close(r.ended)
	r.signal()
}

func (r *recorder) Detached() { close(r.detached) }

func (r *recorder) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// releaseHeld gives back every kept reference and stops holding.
func (r *recorder) releaseHeld() {
	r.mu.Lock()
	held := r.held
	r.held, r.hold = nil, false
	r.mu.Unlock()
	for _, ref := range held {
		r.a.Release(ref)
	}
}

func (r *recorder) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.got.Bytes())
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got.Len()
}

// waitLen waits until n bytes have arrived, or fails the test after timeout.
func (r *recorder) waitLen(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for r.len() < n {
		select {
		case <-r.changed:
		case <-deadline:
			require.FailNowf(t, "timeout", "got %d of %d bytes", r.len(), n)
		}
	}
}

func waitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		require.FailNow(t, "timeout waiting for "+what)
	}
}

type fixture struct {
	a *arena.Arena
	e Engine
}

func newFixture(t *testing.T, s Suite, blocks, blockSize int, prepare ...func(*arena.Arena)) *fixture {
	t.Helper()
	fdsBefore := openFDs(t)
	a, err := arena.New(arena.Config{Blocks: blocks, BlockSize: blockSize})
	require.NoError(t, err)
	for _, p := range prepare {
		p(a)
	}
	e, err := s.New(a)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, e.Close())
		assert.Zero(t, a.InUse(), "blocks still in use after the engine closed")
		assert.NoError(t, a.Close())
		assert.Equal(t, fdsBefore, openFDs(t), "file descriptors leaked")
	})
	return &fixture{a: a, e: e}
}

func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// socketpair returns a non-blocking end for the engine and a blocking end
// for the test to write, both closed at the end of the test.
func socketpair(t *testing.T) (engineFD int, peer *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, syscall.SetNonblock(fds[0], true))
	peer = os.NewFile(uintptr(fds[1]), "peer")
	return fds[0], peer
}

func pattern(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func attach(t *testing.T, f *fixture, fd int, rec Sink) Handle {
	t.Helper()
	h, err := f.e.Attach(fd, rec)
	require.NoError(t, err)
	t.Cleanup(func() {
		f.e.Detach(h)
		waitClosed(t, detachedOf(rec), "Detached")
		assert.NoError(t, syscall.Close(fd))
	})
	return h
}

func testDeliversBytesInOrder(t *testing.T, s Suite) {
	f := newFixture(t, s, 16, 4096)
	fd, peer := socketpair(t)
	rec := newRecorder(f.a)
	attach(t, f, fd, rec)

	want := pattern(1<<20, 1)
	go func() {
		defer peer.Close()
		for rest := want; len(rest) > 0; {
			n := min(len(rest), 1+rand.IntN(9000))
			if _, err := peer.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
	}()
	waitClosed(t, rec.ended, "end of stream")
	assert.ErrorIs(t, rec.endErr, io.EOF)
	assert.False(t, rec.stale, "a segment reached past its block")
	assert.Equal(t, len(want), rec.len())
	assert.True(t, bytes.Equal(want, rec.bytes()), "bytes differ from what was sent")
	assert.Positive(t, rec.flushes)
}

func testSmallMessagesShareBlocks(t *testing.T, s Suite) {
	f := newFixture(t, s, 4, 4096)
	const conns, msg = 50, 60
	recs := make([]*recorder, conns)
	peers := make([]*os.File, conns)
	for i := range recs {
		fd, peer := socketpair(t)
		recs[i] = newRecorder(f.a)
		recs[i].hold = true // keep every segment: blocks must be shared for all to fit
		attach(t, f, fd, recs[i])
		peers[i] = peer
	}
	for i, p := range peers {
		_, err := p.Write(pattern(msg, uint64(i)))
		require.NoError(t, err)
	}
	for i, r := range recs {
		r.waitLen(t, msg, 10*time.Second)
		assert.Equal(t, pattern(msg, uint64(i)), r.bytes())
	}
	// 50 × 60 bytes fit in one 4 KiB block when reads share it.
	blocks := map[uint16]bool{}
	for _, r := range recs {
		for id := range r.blocks {
			blocks[id] = true
		}
	}
	assert.LessOrEqual(t, len(blocks), 2, "small messages must share blocks")
	for _, r := range recs {
		r.releaseHeld()
	}
	for _, p := range peers {
		p.Close()
	}
	for _, r := range recs {
		waitClosed(t, r.ended, "end of stream")
	}
}

func testPoisonedBlocksShowNoStaleBytes(t *testing.T, s Suite) {
	// Poison every block before the engine sees the arena.
	f := newFixture(t, s, 2, 4096, func(a *arena.Arena) {
		var refs []arena.Ref
		for r, ok := a.Take(); ok; r, ok = a.Take() {
			b := a.Bytes(r.ID())
			for i := range b {
				b[i] = 0xEE
			}
			refs = append(refs, r)
		}
		for _, r := range refs {
			a.Release(r)
		}
	})
	fd, peer := socketpair(t)
	rec := newRecorder(f.a)
	attach(t, f, fd, rec)
	var want []byte
	for i := 0; i < 20; i++ {
		m := bytes.Repeat([]byte{byte('a' + i)}, 1+i*7)
		want = append(want, m...)
		_, err := peer.Write(m)
		require.NoError(t, err)
		rec.waitLen(t, len(want), 5*time.Second)
	}
	peer.Close()
	waitClosed(t, rec.ended, "end of stream")
	assert.Equal(t, want, rec.bytes())
	assert.NotContains(t, string(rec.bytes()), "\xee", "a view showed a stale byte")
}

func testDryArenaBackPressureLosesNothing(t *testing.T, s Suite) {
	f := newFixture(t, s, 2, 4096)
	fd, peer := socketpair(t)
	rec := newRecorder(f.a)
	rec.hold = true
	attach(t, f, fd, rec)

	want := pattern(64<<10, 7) // far more than the arena holds
	writeDone := make(chan error, 1)
	go func() {
		_, err := peer.Write(want)
		peer.Close()
		writeDone <- err
	}()
	// The sink holds every block: the engine must stop at a dry arena.
	rec.waitLen(t, 2*4096-4096/4, 5*time.Second)
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, 2, f.a.InUse(), "the arena is dry")
	if s.TakesFromArena {
		assert.Positive(t, f.a.Stats().FailedTakes, "the engine met a dry arena")
	}
	stalled := rec.len()
	assert.Less(t, stalled, len(want))

	// Release as data comes: everything arrives, nothing is lost.
	deadline := time.Now().Add(10 * time.Second)
	for rec.len() < len(want) && time.Now().Before(deadline) {
		rec.mu.Lock()
		held := rec.held
		rec.held = nil
		rec.mu.Unlock()
		for _, r := range held {
			f.a.Release(r)
		}
		f.e.BlocksFreed()
		select {
		case <-rec.changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
	rec.releaseHeld()
	require.NoError(t, <-writeDone)
	waitClosed(t, rec.ended, "end of stream")
	assert.True(t, bytes.Equal(want, rec.bytes()), "bytes lost or corrupted under back-pressure")
}

// testDryArenaStillSeesEndOfStream: a peer that closes while the arena is
// dry (another connection holds every block) ends its connection at once:
// reading an end of stream needs no block, so it must not wait for one.
func testDryArenaStillSeesEndOfStream(t *testing.T, s Suite) {
	f := newFixture(t, s, 4, 4096)
	hogFD, hogPeer := socketpair(t)
	hog := newRecorder(f.a)
	hog.hold = true
	attach(t, f, hogFD, hog)
	go func() { _, _ = hogPeer.Write(make([]byte, 64<<10)) }()
	hog.waitLen(t, 4*4096-4096/4, 5*time.Second)
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, 4, f.a.InUse(), "the arena is dry")

	// The peer closes at once, or once the engine has had time to find no
	// block for the new connection (io_uring picks a buffer before it
	// looks at the socket, so that connection waits for blocks before any
	// byte or end arrives).
	for _, settle := range []time.Duration{0, 30 * time.Millisecond} {
		fd, peer := socketpair(t)
		rec := newRecorder(f.a)
		attach(t, f, fd, rec)
		time.Sleep(settle)
		require.NoError(t, peer.Close()) // an orderly end, nothing sent
		select {
		case <-rec.ended:
			rec.mu.Lock()
			assert.ErrorIs(t, rec.endErr, io.EOF)
			rec.mu.Unlock()
		case <-time.After(5 * time.Second):
			assert.Fail(t, "the end of stream waited for the arena", "peer closed %v after attach", settle)
		}
	}
	hog.releaseHeld()
	f.e.BlocksFreed()
	require.NoError(t, hogPeer.Close())
}

// testDryArenaAfterFullReadSeesEndOfStream: a connection whose last reads
// filled the arena exactly (its socket is empty, the sink holds every
// block) still hears its peer's end, orderly or a reset, at once: an end
// needs no block.
func testDryArenaAfterFullReadSeesEndOfStream(t *testing.T, s Suite) {
	const blocks, blockSize = 2, 4096
	for _, reset := range []bool{false, true} {
		f := newFixture(t, s, blocks, blockSize)
		var fd int
		var peer io.WriteCloser
		if reset {
			var client *net.TCPConn
			fd, client = tcpPair(t)
			require.NoError(t, client.SetLinger(0)) // close sends RST
			peer = client
		} else {
			fd, peer = socketpair(t)
		}
		rec := newRecorder(f.a)
		rec.hold = true
		attach(t, f, fd, rec)
		want := pattern(blocks*blockSize, 13)
		_, err := peer.Write(want) // one write, read in one event
		require.NoError(t, err)
		rec.waitLen(t, len(want), 5*time.Second)
		time.Sleep(30 * time.Millisecond)
		require.Equal(t, blocks, f.a.InUse(), "the sink holds the whole arena")

		require.NoError(t, peer.Close())
		select {
		case <-rec.ended:
			rec.mu.Lock()
			if reset {
				assert.ErrorIs(t, rec.endErr, syscall.ECONNRESET)
			} else {
				assert.ErrorIs(t, rec.endErr, io.EOF)
			}
			rec.mu.Unlock()
		case <-time.After(3 * time.Second):
			assert.Fail(t, "the end of stream waited for the arena", "reset: %v", reset)
		}
		assert.Equal(t, want, rec.bytes())
		rec.releaseHeld()
		f.e.BlocksFreed()
	}
}

// tcpPair returns the non-blocking fd of a loopback TCP connection's server
// side, for the engine, and its client side; the fd is the caller's.
func tcpPair(t *testing.T) (fd int, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	server, err := ln.Accept()
	require.NoError(t, err)
	file, err := server.(*net.TCPConn).File()
	require.NoError(t, err)
	server.Close()
	fd, err = syscall.Dup(int(file.Fd()))
	require.NoError(t, err)
	file.Close()
	require.NoError(t, syscall.SetNonblock(fd, true))
	return fd, c.(*net.TCPConn)
}

// testWorkingSetStaysSmall: messages consumed one at a time must cycle
// through a few blocks, not through the whole arena. Every block the kernel
// writes into becomes resident and stays so; an engine that spread light
// traffic over every block would make the whole arena resident (the idle
// server's memory would grow by the arena's size after one message each).
func testWorkingSetStaysSmall(t *testing.T, s Suite) {
	const blocks, blockSize, msgs = 256, 4096, 300
	f := newFixture(t, s, blocks, blockSize)
	fd, peer := socketpair(t)
	rec := newRecorder(f.a)
	attach(t, f, fd, rec)
	msg := pattern(blockSize, 11)
	for i := range msgs {
		_, err := peer.Write(msg)
		require.NoError(t, err)
		rec.waitLen(t, (i+1)*blockSize, 5*time.Second)
	}
	require.NoError(t, peer.Close())
	waitClosed(t, rec.ended, "end of stream")
	rec.mu.Lock()
	used := len(rec.blocks)
	rec.mu.Unlock()
	assert.LessOrEqual(t, used, blocks/4, "%d messages of one block each, consumed one by one, went through %d of %d blocks", msgs, used, blocks)
	t.Logf("%d messages went through %d distinct blocks of %d", msgs, used, blocks)
}

func testPauseAndResume(t *testing.T, s Suite) {
	f := newFixture(t, s, 8, 4096)
	fd, peer := socketpair(t)
	rec := newRecorder(f.a)
	rec.hold = true
	rec.pauseAt = 1000
	h := attach(t, f, fd, rec)

	want := pattern(3000, 3)
	_, err := peer.Write(want[:1500])
	require.NoError(t, err)
	rec.waitLen(t, 1000, 5*time.Second)
	_, err = peer.Write(want[1500:])
	require.NoError(t, err)
	time.Sleep(30 * time.Millisecond)
	paused := rec.len()
	assert.Less(t, paused, len(want), "a paused connection must not be read")

	rec.mu.Lock()
	rec.pauseAt = 0
	rec.mu.Unlock()
	f.e.Resume(h)
	rec.waitLen(t, len(want), 5*time.Second)
	assert.Equal(t, want, rec.bytes())
	rec.releaseHeld()
	peer.Close()
	waitClosed(t, rec.ended, "end of stream")
}

// One receive may be delivered as several segments (a block each). A sink
// may answer an early one with pause and a later one with go on: its queue
// found the consumer drained in between and lifted the pause itself, so it
// will not ask for a Resume. The engine must follow the latest answer; a
// connection left paused would never be read again.
func testLaterSegmentLiftsPause(t *testing.T, s Suite) {
	f := newFixture(t, s, 64, 4096)
	fd, peer := socketpair(t)
	// Queued before the engine sees the socket, so that its first receive
	// spans several blocks.
	want := pattern(40<<10, 11)
	_, err := peer.Write(want[:32<<10])
	require.NoError(t, err)
	rec := newRecorder(f.a)
	rec.pauseOnce = true
	attach(t, f, fd, rec)
	deadline := time.After(5 * time.Second)
	for {
		rec.mu.Lock()
		flushed, first := rec.flushes > 0, rec.firstBatch
		rec.mu.Unlock()
		if flushed {
			if first < 2 {
				t.Skip("the engine's first receive filled one block here: no later segment to lift the pause")
			}
			break
		}
		select {
		case <-rec.changed:
		case <-deadline:
			require.FailNow(t, "timeout waiting for the first batch")
		}
	}
	_, err = peer.Write(want[32<<10:])
	require.NoError(t, err)
	rec.waitLen(t, len(want), 5*time.Second)
	assert.Equal(t, want, rec.bytes())
	peer.Close()
	waitClosed(t, rec.ended, "end of stream")
}

func testResetIsAnError(t *testing.T, s Suite) {
	f := newFixture(t, s, 4, 4096)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server, err := ln.Accept()
	require.NoError(t, err)
	file, err := server.(*net.TCPConn).File()
	require.NoError(t, err)
	server.Close()
	fd, err := syscall.Dup(int(file.Fd()))
	require.NoError(t, err)
	file.Close()
	require.NoError(t, syscall.SetNonblock(fd, true))

	rec := newRecorder(f.a)
	attach(t, f, fd, rec)
	_, err = client.Write([]byte("partial frame"))
	require.NoError(t, err)
	rec.waitLen(t, len("partial frame"), 5*time.Second)
	require.NoError(t, client.(*net.TCPConn).SetLinger(0)) // close sends RST
	require.NoError(t, client.Close())
	waitClosed(t, rec.ended, "end of stream")
	assert.ErrorIs(t, rec.endErr, syscall.ECONNRESET)
	assert.Equal(t, "partial frame", string(rec.bytes()), "bytes that arrived stay delivered")
}

func testCloseEndsEveryConnection(t *testing.T, s Suite) {
	a, err := arena.New(arena.Config{Blocks: 4, BlockSize: 4096})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	e, err := s.New(a)
	require.NoError(t, err)
	var recs []*recorder
	for i := 0; i < 10; i++ {
		fd, peer := socketpair(t)
		defer peer.Close()
		defer syscall.Close(fd)
		rec := newRecorder(a)
		_, err := e.Attach(fd, rec)
		require.NoError(t, err)
		recs = append(recs, rec)
	}
	require.NoError(t, e.Close())
	for _, r := range recs {
		waitClosed(t, r.ended, "End")
		waitClosed(t, r.detached, "Detached")
		assert.ErrorIs(t, r.endErr, s.ErrClosed)
	}
	assert.ErrorIs(t, e.Close(), s.ErrClosed)
	fd, peer := socketpair(t)
	defer peer.Close()
	defer syscall.Close(fd)
	_, err = e.Attach(fd, newRecorder(a))
	assert.ErrorIs(t, err, s.ErrClosed)
	assert.Zero(t, a.InUse())
}

// An engine whose loop's wait fails (a kernel error it cannot recover
// from) ends every connection with an error wrapping s.ErrFailed and the
// kernel's error, after the bytes each received; detaches them; refuses
// Attach; reports the failure from Close; gives every block back and leaks
// no fd. Another engine goes on.
func testFailureEndsEveryConnection(t *testing.T, s Suite) {
	if s.Fail == nil {
		t.Skip("the engine has no failure seam")
	}
	fdsBefore := openFDs(t)
	newEngine := func() (Engine, *arena.Arena) {
		a, err := arena.New(arena.Config{Blocks: 16, BlockSize: 4096})
		require.NoError(t, err)
		e, err := s.New(a)
		require.NoError(t, err)
		return e, a
	}
	e, a := newEngine()
	other, otherArena := newEngine()
	before, after := pattern(3000, 5), pattern(200, 6)
	type peerConn struct {
		rec  *recorder
		peer *os.File
		fd   int
	}
	var conns []peerConn
	for range 3 {
		fd, peer := socketpair(t)
		rec := newRecorder(a)
		_, err := e.Attach(fd, rec)
		require.NoError(t, err)
		_, err = peer.Write(before)
		require.NoError(t, err)
		rec.waitLen(t, len(before), 5*time.Second)
		conns = append(conns, peerConn{rec, peer, fd})
	}

	s.Fail(e, syscall.EBADF)
	for _, c := range conns { // readiness or a completion ends the loop's wait
		_, err := c.peer.Write(after)
		require.NoError(t, err)
	}
	for i, c := range conns {
		waitClosed(t, c.rec.ended, "End")
		waitClosed(t, c.rec.detached, "Detached")
		assert.ErrorIs(t, c.rec.endErr, s.ErrFailed, "conn %d", i)
		assert.ErrorIs(t, c.rec.endErr, syscall.EBADF, "conn %d", i)
		got := c.rec.bytes()
		assert.GreaterOrEqual(t, len(got), len(before), "conn %d: bytes received before the failure were lost", i)
		assert.True(t, bytes.HasPrefix(append(bytes.Clone(before), after...), got), "conn %d: bytes differ from what was sent", i)
		assert.NoError(t, syscall.Close(c.fd))
		assert.NoError(t, c.peer.Close())
	}
	fd, peer := socketpair(t)
	_, err := e.Attach(fd, newRecorder(a))
	assert.ErrorIs(t, err, s.ErrFailed, "Attach after the failure")
	assert.NoError(t, syscall.Close(fd))
	assert.NoError(t, peer.Close())
	err = e.Close()
	assert.ErrorIs(t, err, s.ErrFailed, "Close after the failure")
	assert.ErrorIs(t, err, syscall.EBADF)
	assert.Zero(t, a.InUse(), "blocks not given back")
	assert.NoError(t, a.Close())

	// The other engine was not touched.
	fd, peer = socketpair(t)
	rec := newRecorder(otherArena)
	h, err := other.Attach(fd, rec)
	require.NoError(t, err)
	_, err = peer.Write(after)
	require.NoError(t, err)
	rec.waitLen(t, len(after), 5*time.Second)
	other.Detach(h)
	waitClosed(t, rec.detached, "Detached")
	assert.NoError(t, syscall.Close(fd))
	assert.NoError(t, peer.Close())
	assert.NoError(t, other.Close())
	assert.Zero(t, otherArena.InUse())
	assert.NoError(t, otherArena.Close())
	assert.Equal(t, fdsBefore, openFDs(t), "file descriptors leaked")
}

func testAttachRejectsBadFD(t *testing.T, s Suite) {
	f := newFixture(t, s, 2, 4096)
	_, err := f.e.Attach(-1, newRecorder(f.a))
	require.Error(t, err)
	assert.ErrorIs(t, err, syscall.EBADF)
	assert.Contains(t, err.Error(), "attach fd -1")
	// Where int has 64 bits: larger than an int32, so larger than any fd the
	// kernel hands out and than an SQE's fd field. (Where int has 32 bits no
	// int is: an engine may then find a closed fd only when it receives.)
	if strconv.IntSize == 64 {
		big := math.MaxInt32
		big++ // two statements, so that 32-bit builds compile
		_, err = f.e.Attach(big, newRecorder(f.a))
		assert.ErrorIs(t, err, syscall.EBADF)
	}
}

func testDetachFromCallback(t *testing.T, s Suite) {
	f := newFixture(t, s, 4, 4096)
	fd, peer := socketpair(t)
	defer peer.Close()
	rec := &detachOnData{recorder: newRecorder(f.a), e: f.e}
	h, err := f.e.Attach(fd, rec)
	require.NoError(t, err)
	rec.h.Store(&h)
	_, err = peer.Write([]byte("x"))
	require.NoError(t, err)
	waitClosed(t, rec.detached, "Detached")
	assert.True(t, rec.onLoop, "a sink callback runs on the loop")
	assert.False(t, f.e.OnLoop(), "the test goroutine is not the loop")
	require.NoError(t, syscall.Close(fd))
}

type detachOnData struct {
	*recorder
	e      Engine
	h      atomic.Pointer[Handle] // set after Attach, read on the loop
	onLoop bool
}

func (d *detachOnData) Flush() {
	d.onLoop = d.e.OnLoop()
	d.e.Detach(*d.h.Load())
	d.e.Detach(*d.h.Load()) // twice is harmless
}

// openRecorder is a recorder that is also an Opener: it notes whether Opened
// came first, and on which goroutine.
type openRecorder struct {
	*recorder
	e          Engine
	opened     atomic.Int32
	onLoop     atomic.Bool
	openedLate atomic.Bool // a Deliver came before Opened
}

func (o *openRecorder) Opened() {
	o.onLoop.Store(o.e.OnLoop())
	o.opened.Add(1)
}

func (o *openRecorder) Deliver(ref arena.Ref, off, n int) bool {
	if o.opened.Load() == 0 {
		o.openedLate.Store(true)
	}
	return o.recorder.Deliver(ref, off, n)
}

func testOpenedRunsOnLoopBeforeData(t *testing.T, s Suite) {
	f := newFixture(t, s, 8, 4096)
	fd, peer := socketpair(t)
	defer peer.Close()
	// Data waits in the socket before Attach: Opened must still come first.
	_, err := peer.Write([]byte("early bytes"))
	require.NoError(t, err)
	rec := &openRecorder{recorder: newRecorder(f.a), e: f.e}
	h, err := f.e.Attach(fd, rec)
	require.NoError(t, err)
	rec.waitLen(t, 11, 5*time.Second)
	assert.EqualValues(t, 1, rec.opened.Load())
	assert.True(t, rec.onLoop.Load(), "Opened ran off the loop")
	assert.False(t, rec.openedLate.Load(), "data delivered before Opened")
	f.e.Detach(h)
	waitClosed(t, rec.detached, "Detached")
	assert.NoError(t, syscall.Close(fd))
}

// detachedOf returns the Detached signal of the suite's sinks.
func detachedOf(s Sink) <-chan struct{} {
	switch r := s.(type) {
	case *recorder:
		return r.detached
	case *openRecorder:
		return r.detached
	case *detachOnData:
		return r.detached
	}
	panic("enginetest: unknown sink")
}

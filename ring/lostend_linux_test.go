//go:build linux

package ring

import (
	"bytes"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	linux "golang.org/x/sys/unix"

	"github.com/zcio/zcio/arena"
)

// newTestEngine starts an engine over an arena of blocks 4 KiB blocks, both
// closed when the test ends (Close checked).
func newTestEngine(t *testing.T, blocks int, cfg EngineConfig) (*Engine, *arena.Arena) {
	t.Helper()
	a, err := arena.New(arena.Config{Blocks: blocks, BlockSize: 4096})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, a.Close()) })
	cfg.Arena = a
	e, err := NewEngine(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, e.Close()) })
	return e, a
}

// lostEnd is a connection whose end of stream (or reset) the kernel did not
// report: its receive, armed on a decoy socket (armOnDecoy), posted msg and
// waits for good, while the end waits on the connection's own socket, as
// when Linux misses an end that came right behind data (checkQuiet).
type lostEnd struct {
	s     *copySink
	h     *EngineConn
	fd    int
	msg   []byte
	decoy int
	dpeer *os.File
}

func newLostEnd(t *testing.T, e *Engine, a *arena.Arena, reset bool, msg []byte) *lostEnd {
	t.Helper()
	return newLostEndWith(t, e, a, reset, msg, func(s *copySink) Sink { return s })
}

// newLostEndWith is newLostEnd with the sink wrapped.
func newLostEndWith(t *testing.T, e *Engine, a *arena.Arena, reset bool, msg []byte, wrap func(*copySink) Sink) *lostEnd {
	return newLostEndOn(t, e, a, testPair, reset, msg, wrap)
}

// newLostEndOn is newLostEndWith on the connections pair makes.
func newLostEndOn(t *testing.T, e *Engine, a *arena.Arena, pair func(*testing.T) (int, *os.File), reset bool, msg []byte, wrap func(*copySink) Sink) *lostEnd {
	t.Helper()
	l := &lostEnd{msg: msg}
	l.decoy, l.dpeer = pair(t)
	fd, peer := pair(t)
	l.fd = fd
	if reset {
		// Unread bytes in the peer's socket when it closes: a reset.
		_, err := syscall.Write(fd, []byte("unread"))
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			n, err := linux.IoctlGetInt(int(peer.Fd()), linux.SIOCINQ)
			return err == nil && n == len("unread")
		}, 5*time.Second, time.Millisecond, "the bytes reached the peer")
	}
	require.NoError(t, peer.Close())
	l.s = &copySink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
	armOnDecoy.Store(&struct{ fd, decoy int32 }{int32(fd), int32(l.decoy)})
	t.Cleanup(func() { armOnDecoy.Store(nil) })
	var err error
	l.h, err = e.Attach(fd, wrap(l.s))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return armOnDecoy.Load() == nil }, 5*time.Second, time.Millisecond, "armed on the decoy")
	_, err = l.dpeer.Write(msg)
	require.NoError(t, err)
	return l
}

// tcpFilePair is testPair over loopback TCP: the server side as a
// non-blocking fd for the engine and the client side as a file, neither
// closed at cleanup.
func tcpFilePair(t *testing.T) (int, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	srv, err := ln.Accept()
	require.NoError(t, err)
	defer srv.Close()
	sf, err := srv.(*net.TCPConn).File() // dups, which outlive the conns
	require.NoError(t, err)
	cf, err := client.(*net.TCPConn).File()
	require.NoError(t, err)
	fd, err := syscall.Dup(int(sf.Fd()))
	require.NoError(t, err)
	require.NoError(t, sf.Close())
	require.NoError(t, syscall.SetNonblock(fd, true))
	return fd, cf
}

// check waits for the end and checks it came after every byte.
func (l *lostEnd) check(t *testing.T, e *Engine, want error) {
	t.Helper()
	select {
	case <-l.s.ended:
	case <-time.After(5 * time.Second):
		assert.Fail(t, "no end", "%+v", e.Stats())
	}
	e.Detach(l.h)
	<-l.s.detached
	l.s.mu.Lock()
	assert.True(t, bytes.Equal(l.msg, l.s.got.Bytes()), "every byte: got %d of %d", l.s.got.Len(), len(l.msg))
	assert.Zero(t, l.s.late, "no byte after the end")
	assert.ErrorIs(t, l.s.err, want)
	l.s.mu.Unlock()
	assert.NoError(t, syscall.Close(l.fd))
	assert.NoError(t, syscall.Close(l.decoy))
	assert.NoError(t, l.dpeer.Close())
}

// An end of stream or a reset that the kernel leaves unreported on a
// multishot receive still ends the connection, after every byte, whether
// the engine is idle (looked at its idle trim, or every quietEvery when it
// never trims or trims rarely) or busy with another connection. The
// kernel's race is rare, so the test makes its state on purpose (lostEnd).
func TestEngineEndsAStreamWhoseEndTheKernelMissed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		idleTrim time.Duration
		every    time.Duration // how often the loop looks (quietEvery)
		busy     bool          // another connection receives throughout: the loop is never idle
		reset    bool          // the peer resets the connection instead of closing it cleanly
		tcp      bool          // loopback TCP instead of AF_UNIX
		want     error
	}{
		{name: "looked at the idle trim", idleTrim: 20 * time.Millisecond, every: time.Hour, want: io.EOF},
		{name: "idle engine that never trims", idleTrim: -1, every: 50 * time.Millisecond, want: io.EOF},
		{name: "idle engine with a long idle trim", idleTrim: time.Hour, every: 50 * time.Millisecond, want: io.EOF},
		{name: "busy engine", idleTrim: -1, every: 50 * time.Millisecond, busy: true, want: io.EOF},
		{name: "reset, looked at the idle trim", idleTrim: 20 * time.Millisecond, every: time.Hour, reset: true, want: syscall.ECONNRESET},
		{name: "reset on a busy engine", idleTrim: -1, every: 50 * time.Millisecond, busy: true, reset: true, want: syscall.ECONNRESET},
		{name: "TCP", idleTrim: 20 * time.Millisecond, every: time.Hour, tcp: true, want: io.EOF},
		{name: "TCP reset", idleTrim: 20 * time.Millisecond, every: time.Hour, tcp: true, reset: true, want: syscall.ECONNRESET},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			setQuietLooks(t, tc.every, maxQuietPeeks)
			e, a := newTestEngine(t, 64, EngineConfig{IdleTrim: tc.idleTrim})

			if tc.busy {
				bfd, bpeer := testPair(t)
				b := &countSink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
				bh, err := e.Attach(bfd, b)
				require.NoError(t, err)
				stop, stopped := make(chan struct{}), make(chan struct{})
				go func() {
					defer close(stopped)
					for i := 0; i < 2000; i++ { // at most 10 s
						select {
						case <-stop:
							return
						case <-time.After(5 * time.Millisecond):
						}
						if _, err := bpeer.Write([]byte{byte(i)}); err != nil {
							return
						}
					}
				}()
				defer func() {
					close(stop)
					<-stopped
					assert.NoError(t, bpeer.Close())
					e.Detach(bh)
					<-b.detached
					assert.NoError(t, syscall.Close(bfd))
				}()
			}

			pair := testPair
			if tc.tcp {
				pair = tcpFilePair
			}
			l := newLostEndOn(t, e, a, pair, tc.reset, bytes.Repeat([]byte("0123456789abcdef"), 200),
				func(s *copySink) Sink { return s })
			l.check(t, e, tc.want)
			assert.Equal(t, 1, e.Stats().LostEnds)
		})
	}
}

// Connections that go quiet together are looked at a few at a time
// (quietPeeks), and the looks go on at once until every one was looked at:
// not an interval (here an hour) later, nor at the next idle trims.
func TestQuietLooksAreBoundedAndGoOn(t *testing.T) {
	noLeaks(t)
	setQuietLooks(t, time.Hour, 1)
	var trims atomic.Int32
	e, a := newTestEngine(t, 64, EngineConfig{IdleTrim: 20 * time.Millisecond, OnIdleTrim: func() { trims.Add(1) }})
	var ls []*lostEnd
	for i := range 3 {
		ls = append(ls, newLostEnd(t, e, a, false, bytes.Repeat([]byte{byte('a' + i)}, 1000+i)))
	}
	before := trims.Load()
	for _, l := range ls {
		select {
		case <-l.s.ended:
		case <-time.After(5 * time.Second):
		}
	}
	assert.LessOrEqual(t, trims.Load()-before, int32(1), "found after one idle trim's look")
	for _, l := range ls {
		l.check(t, e, io.EOF)
	}
	assert.Equal(t, 3, e.Stats().LostEnds)
}

// A connection that receives now and then, with its socket open, is looked
// at without being disturbed: nothing counts as a lost end, and it still
// receives and ends normally afterwards.
func TestQuietCheckLeavesOpenConnectionsAlone(t *testing.T) {
	noLeaks(t)
	setQuietLooks(t, 20*time.Millisecond, maxQuietPeeks)
	e, a := newTestEngine(t, 64, EngineConfig{IdleTrim: 10 * time.Millisecond})
	fd, peer := testPair(t)
	s := &countSink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
	h, err := e.Attach(fd, s)
	require.NoError(t, err)
	for i := range 5 {
		_, err = peer.Write([]byte("ping"))
		require.NoError(t, err)
		require.Eventually(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.n == 4*(i+1) },
			5*time.Second, time.Millisecond)
		time.Sleep(60 * time.Millisecond) // idle trims and timed looks in between
	}
	select {
	case <-s.ended:
		assert.Fail(t, "ended", "%v", s.err)
	default:
	}
	assert.Zero(t, e.Stats().LostEnds)
	require.NoError(t, peer.Close())
	select {
	case <-s.ended:
	case <-time.After(5 * time.Second):
		assert.Fail(t, "no end")
	}
	assert.ErrorIs(t, s.err, io.EOF)
	e.Detach(h)
	<-s.detached
	assert.NoError(t, syscall.Close(fd))
}

// The steady-state read path allocates nothing, looks included: one message
// at a time, each found the socket empty (so the connection is listed), on
// a busy engine looking every millisecond, and on one idle long enough
// between messages for an idle trim and its look.
func TestQuietLooksAllocateNothing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		idleTrim time.Duration
		gap      time.Duration
	}{{"timed looks", -1, 0}, {"idle trim looks", time.Millisecond, 3 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			setQuietLooks(t, time.Millisecond, maxQuietPeeks)
			e, a := newTestEngine(t, 64, EngineConfig{IdleTrim: tc.idleTrim})
			fd, peer := testPair(t)
			s := &countSink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
			h, err := e.Attach(fd, s)
			require.NoError(t, err)
			msg, want := make([]byte, 100), 0
			message := func() {
				if _, err := syscall.Write(int(peer.Fd()), msg); err != nil {
					panic(err)
				}
				want += len(msg)
				for {
					s.mu.Lock()
					n := s.n
					s.mu.Unlock()
					if n == want {
						break
					}
					runtime.Gosched()
				}
				time.Sleep(tc.gap)
			}
			for range 100 {
				message() // warm up: slices grown, timers made
			}
			assert.Zero(t, testing.AllocsPerRun(100, message))
			assert.Zero(t, e.Stats().LostEnds)
			require.NoError(t, peer.Close())
			<-s.ended
			e.Detach(h)
			<-s.detached
			assert.NoError(t, syscall.Close(fd))
		})
	}
}

// An idle engine does not keep the room its quiet list took in a burst of
// many connections (8 bytes each): once every one was looked at, the list
// goes.
func TestQuietListIsDroppedWhenIdle(t *testing.T) {
	const n = 2 * maxQuietKept
	noLeaks(t)
	// Plain receives: a bundle, capped, that takes every published block
	// ends its multishot (the kernel finds the buffer ring empty), and an
	// ended receive is armed again, not listed.
	noBundles.Store(true)
	defer noBundles.Store(false)
	var e *Engine
	room := make(chan int, 1000)
	var a *arena.Arena
	e, a = newTestEngine(t, 256, EngineConfig{IdleTrim: 20 * time.Millisecond, OnIdleTrim: func() {
		select {
		case room <- cap(e.quiet): // on the loop
		default:
		}
	}})
	var err error
	type conn struct {
		fd   int
		peer *os.File
		s    *countSink
		h    *EngineConn
	}
	conns := make([]conn, n)
	for i := range conns {
		c := &conns[i]
		c.fd, c.peer = testPair(t)
		c.s = &countSink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
		c.h, err = e.Attach(c.fd, c.s)
		require.NoError(t, err)
	}
	for i := range conns {
		_, err = conns[i].peer.Write([]byte{1})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return e.Stats().Receives >= n }, 10*time.Second, time.Millisecond)
	// The first idle trim after that looks at 256 of them, the next
	// iterations at the rest.
	longest := 0
	deadline := time.After(5 * time.Second)
	for longest <= maxQuietKept {
		select {
		case got := <-room:
			longest = max(longest, got)
		case <-deadline:
			assert.Fail(t, "no idle trim with the list long")
		}
		if t.Failed() {
			break
		}
	}
	time.Sleep(100 * time.Millisecond) // the looks at the rest
	for len(room) > 0 {
		<-room
	}
	// One more message, and its idle trim: the list holds one connection.
	_, err = conns[0].peer.Write([]byte{1})
	require.NoError(t, err)
	select {
	case got := <-room:
		assert.LessOrEqual(t, got, maxQuietKept, "the room of the long list is kept")
	case <-time.After(5 * time.Second):
		assert.Fail(t, "no idle trim")
	}
	for i := range conns {
		c := &conns[i]
		assert.NoError(t, c.peer.Close())
		<-c.s.ended
		e.Detach(c.h)
		<-c.s.detached
		assert.NoError(t, syscall.Close(c.fd))
	}
}

// A look that goes on from one that ran out of peeks looks only at the
// connections that one left due: not at those that receive all the time,
// whose recent mark it had just cleared. The busy connections here are
// lostEnd ones fed through their decoys, so that a look at one ends it.
func TestContinuedLooksLeaveBusyConnectionsAlone(t *testing.T) {
	noLeaks(t)
	const every = 500 * time.Millisecond
	setQuietLooks(t, every, 1)
	defer SetNoBundles()() // a bundle taking every published block ends its multishot: not listed
	e, a := newTestEngine(t, 256, EngineConfig{IdleTrim: -1})

	// Three open connections that receive once and stay quiet: the looks
	// find three due, more than their one peek.
	type quiet struct {
		fd   int
		peer *os.File
		s    *countSink
		h    *EngineConn
	}
	var quiets []quiet
	for range 3 {
		fd, peer := testPair(t)
		s := &countSink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
		h, err := e.Attach(fd, s)
		require.NoError(t, err)
		_, err = peer.Write([]byte("x"))
		require.NoError(t, err)
		quiets = append(quiets, quiet{fd, peer, s, h})
	}
	var busy []*lostEnd
	for i := range 6 {
		busy = append(busy, newLostEnd(t, e, a, false, []byte{byte(i)}))
	}
	// A byte to each every 10 ms, staggered, so that some busy connection
	// has received nothing in any one iteration of the loop.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, l := range busy {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 10 * time.Millisecond / time.Duration(len(busy)))
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for range 500 { // at most 5 s
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := l.dpeer.Write([]byte{1}); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(2*every + every/2) // two looks and their continuations
	close(stop)
	wg.Wait()
	for i, l := range busy {
		select {
		case <-l.s.ended:
			assert.Fail(t, "a connection receiving every 10 ms was looked at", "busy %d", i)
		default:
		}
		e.Detach(l.h)
		<-l.s.detached
		assert.NoError(t, syscall.Close(l.fd))
		assert.NoError(t, syscall.Close(l.decoy))
		assert.NoError(t, l.dpeer.Close())
	}
	assert.Zero(t, e.Stats().LostEnds)
	for _, q := range quiets {
		e.Detach(q.h)
		<-q.s.detached
		assert.NoError(t, syscall.Close(q.fd))
		assert.NoError(t, q.peer.Close())
	}
}

// The idle trim still comes IdleTrim after the last work when the looks
// cut its wait (idleFor), not at the first cut.
func TestIdleTrimIsNotHastenedByLooks(t *testing.T) {
	setQuietLooks(t, 40*time.Millisecond, maxQuietPeeks)
	trims := make(chan time.Time, 16)
	const idleTrim = 400 * time.Millisecond
	e, a := newTestEngine(t, 64, EngineConfig{IdleTrim: idleTrim, OnIdleTrim: func() {
		select {
		case trims <- time.Now():
		default:
		}
	}})
	fd, peer := testPair(t)
	var last atomic.Int64 // when the loop last delivered bytes
	s := &countSink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
	h, err := e.Attach(fd, stampSink{s, &last})
	require.NoError(t, err)
	select {
	case <-trims: // the trim after the attach
	case <-time.After(5 * time.Second):
		require.FailNow(t, "no first trim")
	}
	_, err = peer.Write([]byte("ping"))
	require.NoError(t, err)
	select {
	case at := <-trims:
		assert.GreaterOrEqual(t, at.Sub(time.Unix(0, last.Load())), idleTrim, "trimmed early")
	case <-time.After(5 * time.Second):
		assert.Fail(t, "no trim")
	}
	assert.Zero(t, e.Stats().LostEnds)
	e.Detach(h)
	<-s.detached
	assert.NoError(t, syscall.Close(fd))
	assert.NoError(t, peer.Close())
}

// stampSink is a countSink that records when it was last given bytes.
type stampSink struct {
	*countSink
	last *atomic.Int64
}

func (s stampSink) Deliver(ref arena.Ref, off, n int) bool {
	s.last.Store(time.Now().UnixNano())
	return s.countSink.Deliver(ref, off, n)
}

// endOrder is a copySink that notes the engine's LostEnds when its End
// comes (on the loop).
type endOrder struct {
	*copySink
	e    *Engine
	seen *[]int
}

func (s endOrder) End(err error) {
	*s.seen = append(*s.seen, s.e.Stats().LostEnds)
	s.copySink.End(err)
}

// One look peeks at most quietPeeks connections: with one peek a look, the
// idle trim's look and the next iteration's are all that come before the
// first end is delivered, so at most two ends were found by then, not four.
func TestLooksPeekAtMostQuietPeeks(t *testing.T) {
	noLeaks(t)
	setQuietLooks(t, time.Hour, 1)
	e, a := newTestEngine(t, 64, EngineConfig{IdleTrim: 20 * time.Millisecond})
	var seen []int
	var ls []*lostEnd
	for i := range 4 {
		ls = append(ls, newLostEndWith(t, e, a, false, []byte{byte('a' + i)},
			func(s *copySink) Sink { return endOrder{s, e, &seen} }))
	}
	for _, l := range ls {
		l.check(t, e, io.EOF)
	}
	require.Len(t, seen, 4)
	assert.LessOrEqual(t, seen[0], 2, "more peeks than quietPeeks in a look")
}

// An end found while the connection's last bytes still wait in the
// completion queue, unreaped, comes after them: the look comes while a
// batch of commands, whose arms fill a small SQ, has the kernel run the
// receive's task work (sqe submits to make room).
func TestLostEndComesAfterBytesStillInTheCQ(t *testing.T) {
	noLeaks(t)
	const every = 300 * time.Millisecond
	setQuietLooks(t, every, maxQuietPeeks)
	e, a := newTestEngine(t, 64, EngineConfig{IdleTrim: -1, Entries: 4})

	gfd, gpeer := testPair(t)
	g := &gateSink{a: a, entered: make(chan struct{}), gate: make(chan struct{}), detached: make(chan struct{})}
	gh, err := e.Attach(gfd, g)
	require.NoError(t, err)
	fd, peer := testPair(t)
	s := &copySink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
	h, err := e.Attach(fd, s)
	require.NoError(t, err)
	_, err = peer.Write([]byte("first "))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(s.bytes()) == 6 }, 5*time.Second, 100*time.Microsecond)
	t0 := time.Now() // listed: kept at the look at t0+every, looked at the one after

	time.Sleep(every + every/3)
	_, err = gpeer.Write([]byte("g"))
	require.NoError(t, err)
	<-g.entered // the loop is held in g's Deliver
	_, err = peer.Write([]byte("second"))
	require.NoError(t, err)
	require.NoError(t, peer.Close())
	type extra struct {
		fd   int
		peer *os.File
		s    *countSink
		h    *EngineConn
	}
	var extras []extra
	for range 8 { // one batch of commands: their arms fill the SQ of 4
		xfd, xpeer := testPair(t)
		x := &countSink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
		xh, err := e.Attach(xfd, x)
		require.NoError(t, err)
		extras = append(extras, extra{xfd, xpeer, x, xh})
	}
	time.Sleep(time.Until(t0.Add(2*every + every/3)))
	close(g.gate)

	select {
	case <-s.ended:
	case <-time.After(5 * time.Second):
		assert.Fail(t, "no end")
	}
	e.Detach(h)
	<-s.detached
	assert.Equal(t, "first second", string(s.bytes()), "every byte before the end")
	s.mu.Lock()
	assert.ErrorIs(t, s.err, io.EOF)
	assert.Zero(t, s.late)
	s.mu.Unlock()
	assert.NoError(t, syscall.Close(fd))
	e.Detach(gh)
	<-g.detached
	assert.NoError(t, syscall.Close(gfd))
	assert.NoError(t, gpeer.Close())
	for _, x := range extras {
		e.Detach(x.h)
		<-x.s.detached
		assert.NoError(t, syscall.Close(x.fd))
		assert.NoError(t, x.peer.Close())
	}
	if e.Stats().LostEnds != 1 {
		t.Skip("the look did not come while the bytes waited (the test was held up): nothing more to check")
	}
}

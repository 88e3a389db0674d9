//go:build linux

package ring

import (
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// gateSink holds the loop in its first Deliver until the test opens the gate.
type gateSink struct {
	a        *arena.Arena
	once     sync.Once
	entered  chan struct{}
	gate     chan struct{}
	detached chan struct{}
}

func (s *gateSink) Deliver(ref arena.Ref, _, _ int) bool {
	s.a.Release(ref)
	s.once.Do(func() {
		close(s.entered)
		<-s.gate
	})
	return false
}
func (s *gateSink) Flush()    {}
func (s *gateSink) End(error) {}
func (s *gateSink) Detached() { close(s.detached) }

// countSink counts the bytes it is given and keeps the end's error.
type countSink struct {
	a        *arena.Arena
	mu       sync.Mutex
	n        int
	err      error
	ended    chan struct{}
	detached chan struct{}
}

func (s *countSink) Deliver(ref arena.Ref, _, n int) bool {
	s.mu.Lock()
	s.n += n
	s.mu.Unlock()
	s.a.Release(ref)
	return false
}
func (s *countSink) Flush() {}
func (s *countSink) End(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.ended)
}
func (s *countSink) Detached() { close(s.detached) }

// testPair is socketpair for engine tests: a non-blocking fd for the
// engine, and no cleanup, because the test closes the fd itself once the
// engine reported Detached (and the peer when it wants the end of stream).
func testPair(t *testing.T) (fd int, peer *os.File) {
	t.Helper()
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, syscall.SetNonblock(pair[0], true))
	return pair[0], os.NewFile(uintptr(pair[1]), "peer")
}

// Where the probe found the multishot cap (Linux 6.17) but the kernel then
// refuses a capped arming with EINVAL, that connection falls back to an
// uncapped receive, each on its own when several are in flight at once
// (connections attached in one batch of commands): none may be ended as if
// by a real receive error.
func TestEngineCapRefusedWithSeveralArmed(t *testing.T) {
	a, err := arena.New(arena.Config{Blocks: 64, BlockSize: 4096})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	e, err := NewEngine(EngineConfig{Arena: a})
	require.NoError(t, err)

	// Hold the loop inside a Deliver so that the attaches below reach it
	// as one batch of commands.
	gfd, gpeer := testPair(t)
	g := &gateSink{a: a, entered: make(chan struct{}), gate: make(chan struct{}), detached: make(chan struct{})}
	gh, err := e.Attach(gfd, g)
	require.NoError(t, err)
	_, err = gpeer.Write([]byte{1})
	require.NoError(t, err)
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		require.FailNow(t, "no delivery")
	}
	capRefused.Store(true) // from here on, the kernel refuses capped armings
	defer capRefused.Store(false)

	const conns, size = 8, 10 << 10
	sinks := make([]*countSink, conns)
	hs := make([]*EngineConn, conns)
	fds := make([]int, conns)
	for i := range conns {
		fd, peer := testPair(t)
		s := &countSink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
		h, err := e.Attach(fd, s)
		require.NoError(t, err)
		sinks[i], hs[i], fds[i] = s, h, fd
		_, err = peer.Write(make([]byte, size))
		require.NoError(t, err)
		require.NoError(t, peer.Close())
	}
	close(g.gate)

	for i, s := range sinks {
		select {
		case <-s.ended:
		case <-time.After(5 * time.Second):
			require.FailNow(t, "no end of stream", "conn %d", i)
		}
		s.mu.Lock()
		assert.ErrorIs(t, s.err, io.EOF, "conn %d ended with %v after %d of %d bytes", i, s.err, s.n, size)
		assert.Equal(t, size, s.n, "conn %d", i)
		s.mu.Unlock()
	}
	for i, h := range hs {
		h.Detach()
		<-sinks[i].detached
		require.NoError(t, syscall.Close(fds[i]))
	}
	gh.Detach()
	<-g.detached
	require.NoError(t, syscall.Close(gfd))
	require.NoError(t, gpeer.Close())
	require.NoError(t, e.Close())
	assert.Zero(t, a.InUse())
}

//go:build linux

package ring

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// copySink copies what it is given, in order, and counts the Deliver calls.
type copySink struct {
	a        *arena.Arena
	mu       sync.Mutex
	got      bytes.Buffer
	parts    int
	err      error
	late     int // Deliver calls after End
	ended    chan struct{}
	detached chan struct{}
}

func (s *copySink) Deliver(ref arena.Ref, off, n int) bool {
	s.mu.Lock()
	select {
	case <-s.ended:
		s.late++
	default:
	}
	s.got.Write(s.a.Bytes(ref.ID())[off : off+n])
	s.parts++
	s.mu.Unlock()
	s.a.Release(ref)
	return false
}
func (s *copySink) Flush() {}
func (s *copySink) End(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.ended)
}
func (s *copySink) Detached() { close(s.detached) }

func (s *copySink) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.got.Bytes())
}

// When the SQ is full and the kernel takes nothing, sqe reaps completions
// to make room (later). Reaped while arming outside a batch (here: attaches
// handled by commands), they are older than every completion still in the
// CQ: the loop must handle them first, or a connection's bytes arrive out of
// order.
func TestEngineLaterCompletionsKeepOrder(t *testing.T) {
	a, err := arena.New(arena.Config{Blocks: 512, BlockSize: 4096})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	e, err := NewEngine(EngineConfig{Arena: a, Entries: 2})
	require.NoError(t, err)

	xfd, xpeer := testPair(t)
	x := &copySink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
	xh, err := e.Attach(xfd, x)
	require.NoError(t, err)
	gfd, gpeer := testPair(t)
	g := &gateSink{a: a, entered: make(chan struct{}), gate: make(chan struct{}), detached: make(chan struct{})}
	gh, err := e.Attach(gfd, g)
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond) // both armed

	// Hold the loop in a Deliver; meanwhile three connections attach (their
	// arms overflow the 2-entry SQ) and x's data waits as task work.
	_, err = gpeer.Write([]byte{1})
	require.NoError(t, err)
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		require.FailNow(t, "no delivery")
	}
	var idle []*EngineConn
	var idleSinks []*copySink
	var idleFDs []int
	for range 3 {
		fd, peer := testPair(t)
		defer peer.Close()
		s := &copySink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
		h, err := e.Attach(fd, s)
		require.NoError(t, err)
		idle, idleSinks, idleFDs = append(idle, h), append(idleSinks, s), append(idleFDs, fd)
	}
	want := make([]byte, 100<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	_, err = xpeer.Write(want)
	require.NoError(t, err)
	submitRefused.Store(true)
	defer submitRefused.Store(false)
	close(g.gate)

	require.Eventually(t, func() bool { return len(x.bytes()) >= len(want) }, 5*time.Second, time.Millisecond)
	assert.False(t, submitRefused.Load(), "the seam was used")
	got := x.bytes()
	if !assert.True(t, bytes.Equal(want, got), "bytes out of order") {
		for i := range got {
			if got[i] != want[i] {
				t.Logf("first difference at byte %d of %d", i, len(want))
				break
			}
		}
	}

	for i, h := range idle {
		h.Detach()
		<-idleSinks[i].detached
		require.NoError(t, syscall.Close(idleFDs[i]))
	}
	xh.Detach()
	<-x.detached
	gh.Detach()
	<-g.detached
	require.NoError(t, syscall.Close(xfd))
	require.NoError(t, syscall.Close(gfd))
	require.NoError(t, xpeer.Close())
	require.NoError(t, gpeer.Close())
	require.NoError(t, e.Close())
	assert.Zero(t, a.InUse())
}

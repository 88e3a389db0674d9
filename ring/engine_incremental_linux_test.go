//go:build linux

package ring_test

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/ring"
)

// endSink gives back every block at once and reports the end of stream.
type endSink struct {
	a        *arena.Arena
	n        int
	ended    chan struct{}
	detached chan struct{}
}

func (s *endSink) Deliver(ref arena.Ref, _, n int) bool { s.n += n; s.a.Release(ref); return false }
func (s *endSink) Flush()                               {}
func (s *endSink) End(error)                            { close(s.ended) }
func (s *endSink) Detached()                            { close(s.detached) }

// Engine accounting in incremental mode: connections that each leave the
// shared block partly filled (BUF_MORE) and then end (a final completion
// with no buffer), around idle trims (Arena.Trim, DiscardUnfilled): the
// loop's count of blocks in the ring matches the buffer ring's, every block
// not in the ring is back in the arena, and Close gives every block back.
func TestEngineIncrementalAccountingAcrossEnds(t *testing.T) {
	if !ring.Probe().IncrementalBuffers.OK {
		t.Skip("incremental buffer rings (6.12)")
	}
	a, err := arena.New(arena.Config{Blocks: 32, BlockSize: 16 << 10})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	e, err := ring.NewEngine(ring.EngineConfig{Arena: a, IdleTrim: 5 * time.Millisecond})
	require.NoError(t, err)
	for i := range 12 {
		pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		require.NoError(t, syscall.SetNonblock(pair[0], true))
		peer := os.NewFile(uintptr(pair[1]), "peer")
		s := &endSink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
		h, err := e.Attach(pair[0], s)
		require.NoError(t, err)
		_, err = peer.Write(make([]byte, 100+i*1500))
		require.NoError(t, err)
		require.NoError(t, peer.Close())
		select {
		case <-s.ended:
		case <-time.After(5 * time.Second):
			require.Fail(t, "no end of stream")
		}
		h.Detach()
		<-s.detached
		require.NoError(t, syscall.Close(pair[0]))
		assert.Equal(t, 100+i*1500, s.n)
		if i%3 == 2 {
			time.Sleep(30 * time.Millisecond) // an idle trim or two
		}
		require.Eventually(t, func() bool {
			st := e.Stats()
			return st.InRing == st.Held && a.InUse() == st.Held
		}, 2*time.Second, time.Millisecond, "round %d: %+v, arena in use %d", i, e.Stats(), a.InUse())
	}
	assert.NotZero(t, a.Stats().Trimmed, "idle trims ran")
	require.NoError(t, e.Close())
	assert.Zero(t, a.InUse(), "Close gives every block back")
}

//go:build linux

package ring

import (
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// recvAllQueued attaches one connection whose peer queued size bytes of a
// pattern and then closed, and returns what its sink saw and the engine's
// stats once the stream ended.
func recvAllQueued(t *testing.T, size int) (*copySink, EngineStats) {
	t.Helper()
	a, err := arena.New(arena.Config{Blocks: 64, BlockSize: 4096})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	e, err := NewEngine(EngineConfig{Arena: a})
	require.NoError(t, err)

	fd, peer := testPair(t)
	require.NoError(t, syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4*size))
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7 + i>>12)
	}
	_, err = peer.Write(want)
	require.NoError(t, err)
	require.NoError(t, peer.Close())

	s := &copySink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
	h, err := e.Attach(fd, s)
	require.NoError(t, err)
	select {
	case <-s.ended:
	case <-time.After(5 * time.Second):
		require.FailNow(t, "no end of stream")
	}
	st := e.Stats()
	h.Detach()
	<-s.detached
	require.NoError(t, syscall.Close(fd))
	require.NoError(t, e.Close())
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.ErrorIs(t, s.err, io.EOF)
	assert.Equal(t, want, s.got.Bytes(), "every byte, in order, across block boundaries")
	assert.Zero(t, a.InUse(), "every block back once the engine closed")
	return s, st
}

// A bundled receive reports its first block only; the engine follows its
// bytes into the next blocks in ring order, one Deliver per block. With
// bundles, fewer receives than blocks; without (kernels before 6.10, or
// noBundles), one receive per block.
func TestEngineBundleSpansBlocks(t *testing.T) {
	const size = 40 << 10 // ten 4 KiB blocks, within the first window of 16
	t.Run("bundles", func(t *testing.T) {
		if !Probe().Bundle.OK {
			t.Skip("no receive bundles:", Probe().Bundle.Err)
		}
		s, st := recvAllQueued(t, size)
		assert.GreaterOrEqual(t, s.parts, size/4096, "a Deliver per block at least")
		assert.Less(t, st.Receives, s.parts, "some receive filled more than one block")
		assert.Positive(t, st.Receives)
	})
	t.Run("plain", func(t *testing.T) {
		noBundles.Store(true)
		defer noBundles.Store(false)
		s, st := recvAllQueued(t, size)
		assert.Equal(t, s.parts, st.Receives, "a plain receive fills one block")
	})
}

// Next follows the order blocks were published in, which is the order the
// kernel fills them, whatever their ids, also once the ring's index wraps.
func TestBufRingNextFollowsPublishOrder(t *testing.T) {
	r := newTestRing(t, Config{})
	a, err := arena.New(arena.Config{Blocks: 4, BlockSize: 4096})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	br, err := r.RegisterBufRing(3, a)
	require.NoError(t, err)
	defer func() { assert.NoError(t, br.Close()) }()

	order := func() []uint16 {
		var ids []uint16
		id := br.order[(br.tail-uint16(br.Held()))&br.mask]
		for {
			ids = append(ids, id)
			next, ok := br.Next(id)
			if !ok {
				return ids
			}
			id = next
		}
	}
	first := order()
	require.Len(t, first, 4)
	for turn := range 5 { // 20 publications: the 4-entry ring wraps
		// The kernel takes the head; it comes back at the tail.
		ref, _ := br.Claim(first[0], 10, false)
		a.Release(ref)
		require.Equal(t, 1, br.Refill())
		got := order()
		assert.Equal(t, append(append([]uint16{}, first[1:]...), first[0]), got, "turn %d", turn)
		first = got
	}
	assert.Equal(t, 4096, br.Room(first[0]))
	if br.Incremental() {
		ref, _ := br.Claim(first[0], 1000, true)
		a.Release(ref)
		assert.Equal(t, 3096, br.Room(first[0]), "the kernel goes on filling the block")
	}
}

//go:build linux

package fallback

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/unix"
)

func newTailArena(t *testing.T, blocks int) *arena.Arena {
	t.Helper()
	a, err := arena.New(arena.Config{Blocks: blocks, BlockSize: 4096})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, a.Close()) })
	return a
}

// One read may run past the tail block into blocks taken ahead: its bytes
// are claimed block by block, in order, the first block ahead becomes the
// tail, and the engine gives back what it took ahead before it sleeps.
func TestTailReadSpansBlocks(t *testing.T) {
	a := newTailArena(t, 1024)
	tb := tailBlock{a: a, minRoom: 1024}
	bufs := tb.rooms(make([][]byte, 0, unix.MaxReadv))
	require.Len(t, bufs, unix.MaxReadv, "4 KiB blocks: the tail and 32 ahead, short of readTarget")
	for _, b := range bufs {
		require.Len(t, b, 4096)
	}
	assert.Equal(t, unix.MaxReadv, a.InUse())

	// A read of 10 KiB: two whole blocks and half of a third.
	const n = 10 << 10
	k := 0
	for _, b := range bufs {
		for i := range b {
			if k == n {
				break
			}
			b[i] = byte(k)
			k++
		}
	}
	var segs []arena.Ref
	var got []byte
	for left := n; left > 0; {
		ref, off, m := tb.claim(left)
		require.Positive(t, m)
		segs = append(segs, ref)
		got = append(got, a.Bytes(ref.ID())[off:off+m]...)
		left -= m
	}
	require.Len(t, segs, 3, "one segment per block")
	for i := range got {
		if got[i] != byte(i) {
			t.Fatalf("byte %d: got %d, want %d", i, got[i], byte(i))
		}
	}
	assert.Equal(t, unix.MaxReadv-3, tb.nAhead, "two blocks ahead became the tail in turn")

	// The next read continues in the tail, then in the blocks still ahead.
	next := tb.rooms(make([][]byte, 0, unix.MaxReadv))
	require.NotEmpty(t, next)
	assert.Len(t, next[0], 2048, "the rest of the third block")

	// About to sleep, with readers still holding the tail block's bytes:
	// the blocks ahead go back, the shared tail stays.
	tb.retireIfUnshared()
	assert.Zero(t, tb.nAhead)
	assert.True(t, tb.have)
	assert.Equal(t, 3, a.InUse(), "the three segments' blocks")
	for _, r := range segs {
		a.Release(r)
	}
	tb.retireIfUnshared()
	assert.False(t, tb.have)
	assert.Zero(t, a.InUse(), "every block given back")
}

// Near a dry arena a read stays within the tail block: blocks ahead are
// taken only while more than the reserve plus a quarter of the arena are
// free, and at most one per 16 blocks of the arena.
func TestTailTakesNoBlocksAheadNearDry(t *testing.T) {
	a := newTailArena(t, 32)
	var held []arena.Ref
	for range 22 {
		r, ok := a.Take()
		require.True(t, ok)
		held = append(held, r)
	}
	tb := tailBlock{a: a, minRoom: 1024, reserve: 1}
	bufs := tb.rooms(make([][]byte, 0, unix.MaxReadv))
	assert.Len(t, bufs, 1, "10 free, 1 reserved, a quarter is 8: no block to spare")
	tb.retireAll()
	a.Release(held[0])
	bufs = tb.rooms(make([][]byte, 0, unix.MaxReadv))
	assert.Len(t, bufs, 2, "11 free: the tail, and one ahead while 10 stay free")
	tb.retireAll()
	for _, r := range held[1:] {
		a.Release(r)
	}
	bufs = tb.rooms(make([][]byte, 0, unix.MaxReadv))
	assert.Len(t, bufs, 3, "32 free: the tail and 2 ahead, one per 16 blocks")
	tb.retireAll()
	assert.Zero(t, a.InUse())

	small := newTailArena(t, 15)
	tb = tailBlock{a: small, minRoom: 1024}
	assert.Len(t, tb.rooms(make([][]byte, 0, unix.MaxReadv)), 1, "under 16 blocks: one block per read")
	tb.retireAll()
	assert.Zero(t, small.InUse())
}

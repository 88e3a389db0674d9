//go:build linux

package reader

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/segq"
)

// A message trickles in 100-byte pieces, each in a block of its own (as when
// other connections' bytes share the engine's blocks), with the engine's
// default ratios: Limit = blocks*bs/4, MaxBlocks = blocks/8. A non-blocking
// Reader peeks for the whole message after each piece. The blocks it pins
// stay within twice those its bytes fill (or the bound), and compaction
// copies a few times the message, not the message again at every piece
// (found by a review: 279x and 764x the message, spills re-copying what
// earlier ones had packed).
func TestCompactionKeepsPinsBoundedAndCopiesLinearly(t *testing.T) {
	t.Run("4KiBx64", func(t *testing.T) { compaction(t, arena.MinBlockSize, 64) })
	// The defaults of a 2-engine group: 16 MiB, 16 KiB blocks, 512 blocks
	// per engine, Limit 1 MiB, MaxBlocks 64.
	t.Run("16KiBx512", func(t *testing.T) { compaction(t, 16<<10, 512) })
}

func compaction(t *testing.T, bs, blocks int) {
	const piece = 100
	a, err := arena.New(arena.Config{BlockSize: bs, Blocks: blocks})
	require.NoError(t, err)
	sp := segq.NewSpiller(a)
	limit := min(1<<20, blocks*bs/4)
	sh := segq.NewShared(segq.Config{Arena: a, Spiller: sp, Limit: limit, MaxBlocks: max(2, blocks/8)})
	q := new(segq.Queue)
	q.Init(sh, nil)
	r := newQueueReader(q, &options{})
	r.nonBlocking = true
	msgLen := limit - bs
	msg := pattern(msgLen, 7)
	bound := max(2, blocks/8)
	var got []byte
	for sent := 0; sent < msgLen; sent += piece {
		b, ok := a.Take()
		require.True(t, ok)
		k := min(piece, msgLen-sent)
		copy(a.Bytes(b.ID()), msg[sent:sent+k])
		q.Push(segq.Segment{Ref: b, Len: uint32(k)})
		err := r.Peek(msgLen, func(v [][]byte) {
			got = got[:0]
			for _, x := range v {
				got = append(got, x...)
			}
		})
		fill := (r.n + bs - 1) / bs
		require.LessOrEqual(t, q.Runs(), max(bound, 2*fill+1)+1, "blocks pinned after %d bytes", sent+k)
		if sent+k < msgLen {
			require.ErrorIs(t, err, ErrWouldBlock)
		} else {
			require.NoError(t, err)
		}
	}
	require.True(t, bytes.Equal(msg, got))
	copied := int(sp.Copied())
	t.Logf("message %d bytes in %d-byte pieces: spills copied %d bytes (%.1fx the message)",
		msgLen, piece, copied, float64(copied)/float64(msgLen))
	require.NoError(t, r.Close())
	sp.Close()
	require.Zero(t, a.InUse())
	require.NoError(t, a.Close())
	assert.Less(t, copied, 8*msgLen, "compaction copies O(n^2)")
}

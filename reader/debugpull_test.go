package reader

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// A pull Reader reads a stream longer than its arena with io.ReadAll
// (Read, consuming everything each time), on a debug arena as on a plain
// one (found by a review: the debug arena's Reader, which gives consumed
// blocks back, needed one more free block and failed with ErrNoBlocks).
func TestDebugPullReaderNeedsNoExtraBlock(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	for _, blocks := range []int{1, 2} {
		for _, debug := range []bool{false, true} {
			r, err := NewReader(bytes.NewReader(data), WithArenaConfig(arena.Config{Blocks: blocks, BlockSize: arena.MinBlockSize, Debug: debug}))
			require.NoError(t, err)
			got, err := io.ReadAll(r)
			t.Logf("blocks %d debug %v: read %d of %d bytes, err %v", blocks, debug, len(got), len(data), err)
			require.NoError(t, err, "blocks %d debug %v", blocks, debug)
			require.Equal(t, data, got)
			require.NoError(t, r.Close())
		}
	}
}

// Two blocks (Limit one block): keep one block's worth retained, then read
// the rest of the stream.
func TestDebugPullReaderWithARetainedBlock(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	for _, debug := range []bool{false, true} {
		r, err := NewReader(bytes.NewReader(data), WithArenaConfig(arena.Config{Blocks: 2, BlockSize: arena.MinBlockSize, Debug: debug}))
		require.NoError(t, err)
		s, err := r.Retain(arena.MinBlockSize)
		require.NoError(t, err)
		rest, err := io.ReadAll(r)
		t.Logf("debug %v: read %d of %d bytes after the retained block, err %v", debug, len(rest), len(data)-arena.MinBlockSize, err)
		s.Release()
		require.NoError(t, err, "debug %v", debug)
		require.NoError(t, r.Close())
	}
}

package arena_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// TryRetain adds a reference while the block is held, and refuses a ref
// whose block was released since, even once the block is taken again.
func TestTryRetain(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 4096, Blocks: 1})
	r, ok := a.Take()
	require.True(t, ok)
	require.True(t, a.TryRetain(r))
	assert.Equal(t, 2, a.Refs(r.ID()))
	a.Release(r)
	a.Release(r)
	assert.False(t, a.TryRetain(r), "the block is free")
	r2, ok := a.Take()
	require.True(t, ok)
	require.Equal(t, r.ID(), r2.ID())
	assert.False(t, a.TryRetain(r), "the block is another lifetime's")
	assert.Equal(t, 1, a.Refs(r2.ID()))
	a.Release(r2)
	assert.Zero(t, a.InUse())
}

package segq_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/internal/segq"
)

// The spill block lives as long as spilled segments point into it, no
// longer: once every copy is given back the arena has no block in use,
// although the engine (and its Spiller) goes on. Two copies share the block
// while they are both held, and one given back does not free it.
func TestSpillerHoldsNoBlockOnceCopiesAreGivenBack(t *testing.T) {
	a := newArena(t, 4)
	sp := segq.NewSpiller(a)
	defer sp.Close()

	out, ok := sp.Copy(nil, [][]byte{[]byte("hel"), []byte("lo")}, 5)
	require.True(t, ok)
	out, ok = sp.Copy(out, [][]byte{[]byte("world")}, 5)
	require.True(t, ok)
	require.Len(t, out, 2)
	assert.Equal(t, out[0].Ref, out[1].Ref, "copies share the spill block")
	assert.Equal(t, "hello", string(out[0].Bytes(a)))
	assert.Equal(t, "world", string(out[1].Bytes(a)))

	a.Release(out[0].Ref)
	assert.Equal(t, "world", string(out[1].Bytes(a)), "the other copy still holds the block")
	a.Release(out[1].Ref)
	assert.Zero(t, a.InUse(), "the Spiller still holds a block with no copy in it")

	// The next spill takes a block again and copies intact.
	out, ok = sp.Copy(out[:0], [][]byte{[]byte("again")}, 5)
	require.True(t, ok)
	assert.Equal(t, "again", string(out[0].Bytes(a)))
	a.Release(out[0].Ref)
	assert.Zero(t, a.InUse())
}

// A spill that comes after the engine closed its Spiller (a blocking
// reader nudged just before its connection and the engine closed) holds
// nothing once its copy is given back: the arena can still be unmapped.
func TestSpillAfterSpillerCloseHoldsNothing(t *testing.T) {
	a := newArena(t, 4)
	sp := segq.NewSpiller(a)
	sp.Close()
	out, ok := sp.Copy(nil, [][]byte{[]byte("late")}, 4)
	require.True(t, ok)
	a.Release(out[0].Ref)
	assert.Zero(t, a.InUse(), "a block taken after Close is held for good")
	sp.Close()
}

package slots

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTableAddGetRemoveReuse(t *testing.T) {
	var tb Table[int]
	one := 1
	_, ok := tb.Add(&one)
	assert.False(t, ok, "a zero Table hands out no slot")

	tb.SetLimit(2)
	a, b := 10, 20
	sa, ok := tb.Add(&a)
	require.True(t, ok)
	sb, ok := tb.Add(&b)
	require.True(t, ok)
	assert.NotEqual(t, sa, sb)
	_, ok = tb.Add(&one)
	assert.False(t, ok, "limit reached")
	assert.Same(t, &a, tb.Get(sa))
	assert.Nil(t, tb.Get(Max), "out of range")
	assert.Nil(t, tb.Get(5), "never used")

	tb.Remove(sa)
	assert.Nil(t, tb.Get(sa))
	sc, ok := tb.Add(&one)
	require.True(t, ok)
	assert.Equal(t, sa, sc, "freed slots are reused first")

	seen := 0
	tb.Each(func(p *int) { seen += *p })
	assert.Equal(t, 21, seen)
}

// Reserve takes a slot without publishing anything; Put publishes. The
// engines record the slot in a connection between the two.
func TestTableReservePut(t *testing.T) {
	var tb Table[int]
	tb.SetLimit(2)
	s, ok := tb.Reserve()
	require.True(t, ok)
	assert.Nil(t, tb.Get(s), "a reserved slot is empty until Put")
	seen := 0
	tb.Each(func(*int) { seen++ })
	assert.Zero(t, seen, "Each skips a reserved slot")
	v := 7
	tb.Put(s, &v)
	assert.Same(t, &v, tb.Get(s))
	s2, ok := tb.Reserve()
	require.True(t, ok)
	assert.NotEqual(t, s, s2)
	_, ok = tb.Reserve()
	assert.False(t, ok, "reserved slots count against the limit")
	tb.Remove(s2)
	s3, ok := tb.Reserve()
	require.True(t, ok)
	assert.Equal(t, s2, s3, "a removed reserved slot is reused")
}

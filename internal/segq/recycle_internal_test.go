package segq

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// A queue that recycles holds no segment array once drained, and the next
// Push, on this queue or another of the same Shared, reuses the array.
func TestRecycleHandsTheArrayOn(t *testing.T) {
	a, err := arena.New(arena.Config{BlockSize: arena.MinBlockSize, Blocks: 8})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	sh := NewShared(Config{Arena: a})
	q1, q2, plain := new(Queue), new(Queue), new(Queue)
	q1.Init(sh, nil)
	q2.Init(sh, nil)
	plain.Init(sh, nil)
	q1.Recycle()
	q2.Recycle()

	push := func(q *Queue, n int) {
		t.Helper()
		for range n {
			ref, ok := a.Take()
			require.True(t, ok)
			q.Push(Segment{Ref: ref, Len: 10})
		}
	}
	buf := make([]Segment, 0, 8) // the consumer's own array, as a Reader has
	drain := func(q *Queue, poll bool) int {
		t.Helper()
		var got []Segment
		if poll {
			got = q.Poll(buf[:0])
		} else {
			var err error
			got, err = q.Take(nil, buf[:0], true)
			require.NoError(t, err)
		}
		for _, s := range got {
			q.Done(s)
		}
		return len(got)
	}

	push(q1, 3)
	first := &q1.segs[0]
	assert.Equal(t, 3, drain(q1, true))
	assert.Nil(t, q1.segs, "a drained recycling queue holds no array")
	require.Len(t, sh.spare, 1)

	push(q2, 2)
	assert.Same(t, first, &q2.segs[0], "the other queue reuses the array")
	assert.Empty(t, sh.spare)
	assert.Equal(t, 2, drain(q2, false))
	assert.Nil(t, q2.segs)

	push(plain, 1)
	assert.Equal(t, 1, drain(plain, true))
	assert.NotNil(t, plain.segs, "a queue that does not recycle keeps its array")
	assert.Len(t, sh.spare, 1, "and takes none from the spares")

	// Steady state: no allocation per message.
	allocs := testing.AllocsPerRun(100, func() {
		push(q1, 1)
		drain(q1, true)
		push(q2, 1)
		drain(q2, false)
	})
	assert.Zero(t, allocs)

	// After a burst, the idle trim keeps a few spares.
	for range 5 {
		sh.spare = append(sh.spare, make([]Segment, 0, 1))
	}
	n := len(sh.spare)
	sh.TrimSpare(2)
	assert.Len(t, sh.spare, 2)
	assert.LessOrEqual(t, cap(sh.spare), n, "the spare list shrinks too")
	sh.TrimSpare(0)
	assert.Nil(t, sh.spare)

	push(q1, 2)
	q1.Close() // gives the queued segments back; the array goes to the GC
	assert.Nil(t, q1.segs)
	assert.Zero(t, a.InUse())
}

// Every idle connection holds a Queue: its fields are laid out to fit the
// 96-byte size class, and a handler-mode queue makes nothing more until its
// end (a waiting consumer makes its waits; Finish its rare part).
func TestQueueIsSmall(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(Queue{}), uintptr(96))
	assert.LessOrEqual(t, unsafe.Sizeof(waits{}), uintptr(64), "a blocking consumer's waits: one 64-byte object, like the sync.Cond it replaces")
}

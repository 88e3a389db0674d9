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
	assert.Empty(t, sh.spare, "a queue that holds no array takes a spare one")
	assert.Same(t, first, &plain.segs[0])
	own := make([]Segment, 0, 2) // this consumer's array: traded, not appended to
	got := plain.Poll(own)
	require.Len(t, got, 1)
	assert.Same(t, first, &got[0], "an empty dst gets the queue's array itself")
	plain.Done(got[0])
	assert.Same(t, unsafe.SliceData(own), unsafe.SliceData(plain.segs), "and the queue keeps dst's")
	// The queue's array is the consumer's now: give it back to the spares
	// for the steady-state check below.
	sh.putSpare(got[:0])

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

// A consumer about to wait gives its empty array, and the empty queue's, to
// the spares (Spare): a waiting connection holds none. Take with an empty dst
// hands over the queue's array instead of copying out of it, and a busy
// queue-consumer pair then allocates nothing per message.
func TestSpareLeavesAWaitingConnectionNoArray(t *testing.T) {
	a, err := arena.New(arena.Config{BlockSize: arena.MinBlockSize, Blocks: 8})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	sh := NewShared(Config{Arena: a})
	q := new(Queue)
	q.Init(sh, nil)
	push := func(n int) {
		t.Helper()
		for range n {
			ref, ok := a.Take()
			require.True(t, ok)
			q.Push(Segment{Ref: ref, Len: 10})
		}
	}

	push(2)
	queued := unsafe.SliceData(q.segs)
	var mine []Segment
	mine, err = q.Take(nil, mine, true)
	require.NoError(t, err)
	require.Len(t, mine, 2)
	assert.Same(t, queued, unsafe.SliceData(mine), "an empty dst takes the queue's array itself")
	assert.Nil(t, q.segs, "and the queue keeps dst's (none here)")
	for i, sg := range mine {
		q.Done(sg)
		mine[i] = Segment{} // as a Reader clears what it consumed
	}
	mine = mine[:0]

	// The consumer finds nothing more and is about to wait.
	_, err = q.TakeOrPark(nil, mine, false)
	require.ErrorIs(t, err, ErrPark)
	views := [][]byte{make([]byte, 1), nil}
	q.Spare(mine, views)
	assert.Nil(t, q.segs)
	assert.Empty(t, sh.spare, "no room yet, and a consumer never grows the lists: dropped")
	assert.Empty(t, sh.views)
	assert.Nil(t, views[0], "cleared all the same")

	push(1)
	assert.Positive(t, cap(sh.spare), "the producer made room")
	assert.Positive(t, cap(sh.views))
	mine, err = q.Take(nil, nil, true)
	require.NoError(t, err)
	q.Done(mine[0])
	mine[0] = Segment{}
	q.Spare(mine[:0], views)
	require.Len(t, sh.spare, 1, "the next wait keeps the consumer's array")
	require.Len(t, sh.views, 1, "and its views")
	push(1)
	assert.Same(t, unsafe.SliceData(mine), unsafe.SliceData(q.segs), "the next push takes it")
	assert.Empty(t, sh.spare)

	// An empty queue that still has an array gives it up too.
	got, err := q.Take(nil, make([]Segment, 0, 4), true)
	require.NoError(t, err)
	q.Done(got[0])
	got[0] = Segment{}
	require.NotNil(t, q.segs, "the queue kept the consumer's array")
	q.Spare(got[:0], nil)
	assert.Nil(t, q.segs)
	assert.Len(t, sh.spare, 2, "both arrays are spare")
	v := q.Views()
	assert.Same(t, unsafe.SliceData(views), unsafe.SliceData(v))
	assert.Zero(t, len(v))
	assert.Nil(t, q.Views(), "no spare views left")

	// Steady state: push, take, give back, wait: no allocation.
	var cons []Segment
	q.Spare(nil, v)
	allocs := testing.AllocsPerRun(100, func() {
		push(1)
		var err error
		cons, err = q.Take(nil, cons, true)
		if err != nil || len(cons) != 1 {
			panic("take")
		}
		q.Done(cons[0])
		cons[0] = Segment{}
		cons = cons[:0]
		v := append(q.Views(), nil) // a callback's views
		q.Spare(cons, v)
		cons = nil
	})
	assert.Zero(t, allocs)
	assert.Zero(t, a.InUse())

	sh.TrimSpare(0)
	assert.Nil(t, sh.spare)
	assert.Nil(t, sh.views)
}

// An idle trim gives back the room getSpare made in the lists, not only
// their entries.
func TestTrimSpareShrinksTheLists(t *testing.T) {
	a, err := arena.New(arena.Config{BlockSize: arena.MinBlockSize, Blocks: 8})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	sh := NewShared(Config{Arena: a})
	sh.spare = make([][]Segment, 1, maxSpare)
	sh.spare[0] = make([]Segment, 0, 1)
	sh.views = make([][][]byte, 0, maxSpare)
	sh.TrimSpare(4)
	assert.Len(t, sh.spare, 1)
	assert.LessOrEqual(t, cap(sh.spare), 4)
	assert.Nil(t, sh.views)
}

// Every idle connection holds a Queue: its fields are laid out to fit the
// 96-byte size class, and a handler-mode queue makes nothing more until its
// end (a waiting consumer makes its waits; Finish its rare part).
func TestQueueIsSmall(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(Queue{}), uintptr(96))
	assert.LessOrEqual(t, unsafe.Sizeof(waits{}), uintptr(64), "a blocking consumer's waits: one 64-byte object, like the sync.Cond it replaces")
}

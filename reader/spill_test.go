package reader

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/segq"
)

// TestSpillFreesSharedBlocks: a Reader waiting for the rest of a message,
// nudged because its engine ran out of blocks, copies the part it holds into
// the spill block and lets go of the shared blocks; the message then
// completes from the copy and what comes next.
func TestSpillFreesSharedBlocks(t *testing.T) {
	a, err := arena.New(arena.Config{Blocks: 4, BlockSize: 4096})
	require.NoError(t, err)
	sp := segq.NewSpiller(a)
	q := segq.New(segq.Config{Arena: a, Spiller: sp})
	r := newQueueReader(q, &options{})
	r.guarded = true

	// Two blocks that other connections also hold (one extra reference each).
	b1, _ := a.Take()
	b2, _ := a.Take()
	copy(a.Bytes(b1.ID())[100:], "hello ")
	copy(a.Bytes(b2.ID()), "world")
	a.Retain(b1)
	a.Retain(b2)
	q.Push(segq.Segment{Ref: b1, Off: 100, Len: 6})
	q.Push(segq.Segment{Ref: b2, Off: 0, Len: 5})

	got := make(chan string, 1)
	go func() {
		var s []byte
		err := r.ReadRange(20, func(b []byte) { s = append(s, b...) })
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(s)
	}()
	require.Eventually(t, func() bool { return q.Pending() == 11 && a.Refs(b1.ID()) == 2 }, 5*time.Second, time.Millisecond)
	time.Sleep(10 * time.Millisecond) // let the reader take the segments and wait
	q.Nudge()
	assert.Eventually(t, func() bool { return a.Refs(b1.ID()) == 1 && a.Refs(b2.ID()) == 1 },
		5*time.Second, time.Millisecond, "the reader let go of the shared blocks")
	assert.Equal(t, 11, q.Pending(), "the spilled copy is still pending")

	b3, _ := a.Take()
	copy(a.Bytes(b3.ID()), "!!!!!!!!!")
	q.Push(segq.Segment{Ref: b3, Off: 0, Len: 9})
	select {
	case s := <-got:
		assert.Equal(t, "hello world!!!!!!!!!", s)
	case <-time.After(5 * time.Second):
		t.Fatal("the read did not complete")
	}
	a.Release(b1)
	a.Release(b2)
	require.NoError(t, r.Close())
	sp.Close()
	assert.Zero(t, a.InUse())
	assert.Zero(t, q.Pending())
	require.NoError(t, a.Close())
}

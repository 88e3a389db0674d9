package segq_test

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/internal/segq"
)

// Close gives the queued segments back before the consumer gives back the
// ones it holds (Conn.close closes the queue, then shuts the Reader down),
// so the run count may end below zero. That must not touch the pause: a
// producer never told to pause is never told to resume.
func TestCloseBeforeHeldGiveBackLeavesPauseAlone(t *testing.T) {
	a := newArena(t, 4)
	var resumes atomic.Int32
	q := segq.New(segq.Config{Arena: a, OnResume: func() { resumes.Add(1) }})
	blockA, blockB := seg(t, a, 0, 10), seg(t, a, 0, 10)
	a.Retain(blockB.Ref) // a second segment in block B
	require.False(t, q.Push(blockA))
	require.False(t, q.Push(blockB))
	held, err := q.Take(nil, nil, true) // the consumer holds A, B
	require.NoError(t, err)
	require.Len(t, held, 2)
	require.False(t, q.Push(segq.Segment{Ref: blockB.Ref, Off: 10, Len: 10}), "more of block B, queued")

	q.Close() // gives back the queued B first
	for _, s := range held {
		q.Done(s)
	}
	assert.Zero(t, resumes.Load(), "OnResume called though Push never asked to pause")
	assert.Zero(t, q.Pending())
	assert.Zero(t, a.InUse())
}

//go:build linux

package reader

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/segq"
)

// TestSpillWithReserveUsedUp: every block of an engine's arena is in use
// and the spill reserve is used up (the spill block is full of another
// connection's copy), yet the partial messages the waiting readers hold
// would fit in fewer blocks. One reader holds a block alone, consumed but
// for its last 100 bytes; two others share a block. Nudged, they must free
// a block for the engine (else all wait for each other for good): the
// reader alone in its block can spill within it, and the others into the
// room that leaves.
func TestSpillWithReserveUsedUp(t *testing.T) {
	const bs = arena.MinBlockSize
	a, err := arena.New(arena.Config{Blocks: 3, BlockSize: bs})
	require.NoError(t, err)
	sp := segq.NewSpiller(a)
	sh := segq.NewShared(segq.Config{Arena: a, Spiller: sp, MaxBlocks: 8})
	newQ := func() *segq.Queue {
		q := new(segq.Queue)
		q.Init(sh, nil)
		return q
	}

	// The reserve: a spill block all but full with a copy another waiting
	// connection holds.
	other, ok := sp.Copy(nil, [][]byte{bytes.Repeat([]byte{'x'}, bs-50)}, bs-50)
	require.True(t, ok)

	// Reader 1: one block, its own; a message of bs-100 bytes read, then
	// the first 100 bytes of a 200-byte one.
	b1, ok := a.Take()
	require.True(t, ok)
	msg1 := pattern(bs, 1)
	copy(a.Bytes(b1.ID()), msg1)
	q1 := newQ()
	r1 := newQueueReader(q1, &options{})
	r1.guarded = true
	q1.Push(segq.Segment{Ref: b1, Len: bs})
	_, err = r1.Discard(bs - 100)
	require.NoError(t, err)

	// Readers 2 and 3 share a block: 1000 bytes each of 2000-byte messages.
	b2, ok := a.Take()
	require.True(t, ok)
	msg2, msg3 := pattern(2000, 2), pattern(2000, 3)
	copy(a.Bytes(b2.ID()), msg2[:1000])
	copy(a.Bytes(b2.ID())[1000:], msg3[:1000])
	a.Retain(b2)
	q2, q3 := newQ(), newQ()
	r2, r3 := newQueueReader(q2, &options{}), newQueueReader(q3, &options{})
	r2.guarded, r3.guarded = true, true
	q2.Push(segq.Segment{Ref: b2, Len: 1000})
	q3.Push(segq.Segment{Ref: b2, Off: 1000, Len: 1000})
	require.Equal(t, 3, a.InUse(), "the arena is dry")

	// Each reader waits for the rest of its message.
	type result struct {
		i   int
		got []byte
		err error
	}
	done := make(chan result, 3)
	wait := func(i int, r *Reader, n int) {
		var got []byte
		err := r.ReadRange(n, func(b []byte) { got = append(got, b...) })
		done <- result{i, got, err}
	}
	go wait(1, r1, 200)
	go wait(2, r2, 2000)
	go wait(3, r3, 2000)
	time.Sleep(20 * time.Millisecond) // they take what is queued and wait

	// The engine, dry, nudges every connection, again and again.
	freed := false
	for range 10 {
		q1.Nudge()
		q2.Nudge()
		q3.Nudge()
		time.Sleep(10 * time.Millisecond)
		if a.InUse() < 3 {
			freed = true
			break
		}
	}
	assert.True(t, freed, "no block came free: the waiting readers hold %d bytes of partial messages, yet fill %d blocks",
		100+1000+1000, a.InUse())

	// Whatever happened, the rest arrives, in one block once one is free,
	// and every message is whole.
	rests := [][]byte{pattern(100, 4), msg2[1000:], msg3[1000:]}
	qs := []*segq.Queue{q1, q2, q3}
	if r, ok := a.Take(); ok {
		off := 0
		for i, q := range qs {
			copy(a.Bytes(r.ID())[off:], rests[i])
			a.Retain(r)
			q.Push(segq.Segment{Ref: r, Off: uint32(off), Len: uint32(len(rests[i]))})
			off += len(rests[i])
		}
		a.Release(r)
	} else {
		for _, q := range qs {
			q.Finish(nil) // still dry: end the streams so that the test ends
		}
	}
	for range 3 {
		res := <-done
		if !freed {
			continue
		}
		require.NoError(t, res.err, "reader %d", res.i)
		switch res.i {
		case 1:
			assert.Equal(t, append(append([]byte(nil), msg1[bs-100:]...), rests[0]...), res.got)
		case 2:
			assert.Equal(t, msg2, res.got)
		case 3:
			assert.Equal(t, msg3, res.got)
		}
	}
	for _, r := range []*Reader{r1, r2, r3} {
		_ = r.Close()
	}
	a.Release(other[0].Ref)
	sp.Close()
	assert.Zero(t, a.InUse())
	require.NoError(t, a.Close())
}

package segq

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// expectedRuns counts the runs the Done calls still to come will take off:
// the consumer's held segments, then the queued ones, in order, starting
// from the block given back last.
func expectedRuns(q *Queue, held []Segment) int32 {
	q.mu.Lock()
	seq := append(append([]Segment(nil), held...), q.segs...)
	q.mu.Unlock()
	prev := q.lastDone.Load()
	var n int32
	for _, s := range seq {
		if k := packRef(s.Ref); k != prev {
			n++
			prev = k
		}
	}
	return n
}

// The queue's run count (what MaxBlocks bounds) matches a model of it
// through random pushes (new blocks, or more of the producer's current one),
// takes, give-backs and spills (the held segments copied out, given back,
// and the copy adopted), and ends at 0 once everything is given back. A
// count that drifted down would let a connection pin more blocks than
// MaxBlocks; one that drifted up would pause it for good.
func TestRunsMatchAModelThroughSpills(t *testing.T) {
	// Small pushes make spills of a few bytes into the shared spill block;
	// large ones make spills that fill several blocks (Spiller.copyBlocks).
	for _, maxPush := range []int{7, 3000} {
		t.Run(fmt.Sprintf("push<=%d", maxPush), func(t *testing.T) { runsModel(t, maxPush) })
	}
}

func runsModel(t *testing.T, maxPush int) {
	multi := 0 // spills into several blocks
	for seed := range uint64(300) {
		a, err := arena.New(arena.Config{BlockSize: arena.MinBlockSize, Blocks: 64})
		require.NoError(t, err)
		sp := NewSpiller(a)
		q := New(Config{Arena: a, MaxBlocks: 1000, Limit: 1 << 30, Spiller: sp})
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		var cur arena.Ref
		have, off := false, 0
		var held []Segment
		var ops []string
		for step := range 400 {
			switch rng.IntN(5) {
			case 0, 1: // push, into the producer's block or a new one
				n := 1 + rng.IntN(maxPush)
				if !have || off+n > arena.MinBlockSize || rng.IntN(3) == 0 {
					if have {
						a.Release(cur)
					}
					r, ok := a.Take()
					if !ok {
						continue
					}
					cur, have, off = r, true, 0
				}
				a.Retain(cur)
				q.Push(Segment{Ref: cur, Off: uint32(off), Len: uint32(n)})
				off += n
				ops = append(ops, "push")
			case 2:
				held, err = q.Take(nil, held, true)
				if err != nil {
					require.ErrorIs(t, err, ErrWouldBlock, "a non-blocking take of an open queue")
				}
				ops = append(ops, "take")
			case 3:
				if len(held) > 0 {
					q.Done(held[0])
					held = held[1:]
					ops = append(ops, "done")
				}
			case 4: // spill what is held, as reader.spill does
				if len(held) == 0 {
					continue
				}
				var views [][]byte
				total := 0
				for _, s := range held {
					views = append(views, s.Bytes(a))
					total += int(s.Len)
				}
				out, ok := sp.Copy(nil, views, total)
				if !ok {
					continue
				}
				for _, s := range held {
					q.Done(s)
				}
				if total > arena.MinBlockSize {
					require.Len(t, out, (total+arena.MinBlockSize-1)/arena.MinBlockSize)
					multi++
				}
				var want, got []byte
				for _, v := range views {
					want = append(want, v...)
				}
				for _, s := range out {
					got = append(got, s.Bytes(a)...)
				}
				require.Equal(t, want, got, "seed %d step %d: the spilled copy", seed, step)
				q.Adopt(out...)
				held = append(held[:0], out...)
				ops = append(ops, "spill")
			}
			require.Equal(t, expectedRuns(q, held), q.rs.runs(), "seed %d step %d, last ops %v", seed, step, ops[max(0, len(ops)-8):])
		}
		held, _ = q.Take(nil, held, true)
		for _, s := range held {
			q.Done(s)
		}
		assert.Zero(t, q.rs.runs(), "seed %d: runs left once everything was given back", seed)
		q.Close()
		sp.Close()
		if have {
			a.Release(cur)
		}
		assert.Zero(t, a.InUse())
		require.NoError(t, a.Close())
	}
	if maxPush > arena.MinBlockSize/2 {
		assert.Positive(t, multi, "no spill filled several blocks")
	}
	t.Logf("%d spills into several blocks", multi)
}

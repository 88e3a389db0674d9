package segq

import (
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
				if !have || off >= arena.MinBlockSize-8 || rng.IntN(3) == 0 {
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
				n := 1 + rng.IntN(7)
				q.Push(Segment{Ref: cur, Off: uint32(off), Len: uint32(n)})
				off += n
				ops = append(ops, "push")
			case 2:
				held, err = q.Take(nil, held, true)
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
				q.Adopt(out[0])
				held = append(held[:0], out[0])
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
}

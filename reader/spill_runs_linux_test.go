//go:build linux

package reader

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/segq"
)

// Random pushes (in the producer's shared block or a new one, another
// connection holding the rest), peeks (which compact a crowded Reader),
// discards, ReadBytes, Retains and nudge spills on a non-blocking Reader:
// the bytes read are the bytes pushed, and whenever the Reader holds nothing
// the queue's runs and pending are 0.
func TestReaderRunsThroughCompaction(t *testing.T) {
	const bs = arena.MinBlockSize
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		a, err := arena.New(arena.Config{BlockSize: bs, Blocks: 64})
		require.NoError(t, err)
		sp := segq.NewSpiller(a)
		sh := segq.NewShared(segq.Config{Arena: a, Spiller: sp, Limit: 16 * bs, MaxBlocks: 8})
		q := new(segq.Queue)
		q.Init(sh, nil)
		r := newQueueReader(q, &options{})
		r.nonBlocking = true
		var cur arena.Ref
		have, off := false, 0
		var sent, got []byte
		var slices []*Slice
		val := byte(0)
		compactions := 0
		_ = compactions
		for step := range 600 {
			switch rng.IntN(6) {
			case 0, 1, 2:
				n := 1 + rng.IntN(300)
				if rng.IntN(4) == 0 {
					n = 1 + rng.IntN(3*bs)
				}
				for n > 0 {
					if !have || off == bs || rng.IntN(3) == 0 {
						if have {
							a.Release(cur) // the producer's own reference
						}
						var ok bool
						cur, ok = a.Take()
						if !ok {
							have = false
							n = 0
							break
						}
						have, off = true, rng.IntN(100) // another connection's bytes first
					}
					k := min(n, bs-off)
					b := a.Bytes(cur.ID())[off : off+k]
					for i := range b {
						b[i] = val
						val++
					}
					sent = append(sent, b...)
					a.Retain(cur)
					q.Push(segq.Segment{Ref: cur, Off: uint32(off), Len: uint32(k)})
					off += k
					n -= k
				}
			case 3:
				want := 1 + rng.IntN(r.Limit())
				_ = r.Peek(want, func([][]byte) {})
			case 4:
				k := rng.IntN(min(r.Buffered(), r.Limit()) + 1)
				if rng.IntN(3) == 0 && k > 0 {
					s, err := r.Retain(k)
					require.NoError(t, err)
					got = s.AppendTo(got)
					if rng.IntN(2) == 0 {
						slices = append(slices, s)
					} else {
						s.Release()
					}
				} else {
					require.NoError(t, r.ReadRange(k, func(b []byte) { got = append(got, b...) }))
				}
			case 5:
				if rng.IntN(2) == 0 {
					if b, err := r.ReadByte(); err == nil {
						got = append(got, b)
					}
				} else {
					r.spill()
				}
			}
			require.True(t, string(sent[:len(got)]) == string(got), "seed %d step %d: bytes differ", seed, step)
			if r.Buffered() == 0 && !r.lag {
				require.Zero(t, q.Runs(), "seed %d step %d: runs with nothing held", seed, step)
				require.Zero(t, q.Pending(), "seed %d step %d", seed, step)
			}
			r.Buffered() // takes every queued segment
			c, prev := 0, arena.Ref{}
			for i, sg := range r.segs[r.h:] {
				if i == 0 || sg.Ref != prev {
					c++
				}
				prev = sg.Ref
			}
			if got := q.Runs(); got != c && got != c-1 {
				t.Fatalf("seed %d step %d: runs %d, the Reader's segments make %d", seed, step, got, c)
			}
			compactions += 0
		}
		for r.Buffered() > 0 {
			require.NoError(t, r.ReadRange(r.Buffered(), func(b []byte) { got = append(got, b...) }))
		}
		require.Equal(t, sent, got, "seed %d", seed)
		require.Zero(t, q.Runs(), "seed %d", seed)
		require.Zero(t, q.Pending(), "seed %d", seed)
		require.NoError(t, r.Close())
		for _, s := range slices {
			s.Release()
		}
		if have {
			a.Release(cur)
		}
		sp.Close()
		require.Zero(t, a.InUse(), "seed %d", seed)
		require.NoError(t, a.Close())
	}
}

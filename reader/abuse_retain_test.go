package reader_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/reader"
)

// Random ops with retained Slices kept across later reads: a Slice's bytes
// must never change, the stream must read back in order, ErrNoBlocks must
// consume nothing, and every block must come back.
func TestRetainAndReadsAtRandomOnDebugArenas(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		data := make([]byte, 60000)
		for i := range data {
			data[i] = byte(rng.IntN(256))
		}
		var chunks []int
		for left := len(data); left > 0; {
			c := min(left, 1+rng.IntN(6000))
			chunks = append(chunks, c)
			left -= c
		}
		a, err := arena.New(arena.Config{BlockSize: arena.MinBlockSize, Blocks: 2 + rng.IntN(8), Debug: true})
		require.NoError(t, err)
		r, err := reader.NewReader(&chunkReader{data: data, chunks: chunks, end: io.EOF}, reader.WithArena(a))
		require.NoError(t, err)
		pos := 0
		type kept struct {
			s    *reader.Slice
			want []byte
		}
		var held []kept
		check := func() {
			for _, k := range held {
				require.True(t, bytes.Equal(k.want, k.s.AppendTo(nil)), "seed %d: retained bytes changed", seed)
			}
		}
		for step := 0; step < 400 && pos < len(data); step++ {
			lim := r.Limit()
			switch rng.IntN(6) {
			case 0:
				n := rng.IntN(lim + 1)
				s, err := r.Retain(n)
				if err != nil {
					require.Truef(t, errors.Is(err, reader.ErrNoBlocks) || errors.Is(err, io.ErrUnexpectedEOF), "seed %d: %v", seed, err)
					continue
				}
				want := data[pos : pos+n]
				require.True(t, bytes.Equal(want, s.AppendTo(nil)))
				held = append(held, kept{s, want})
				pos += n
			case 1:
				if len(held) > 0 {
					i := rng.IntN(len(held))
					held[i].s.Release()
					held = append(held[:i], held[i+1:]...)
				}
			case 2:
				n := rng.IntN(lim + 1)
				err := r.Peek(n, func(v [][]byte) {
					require.True(t, bytes.Equal(data[pos:pos+n], bytes.Join(v, nil)))
				})
				if err != nil {
					require.Truef(t, errors.Is(err, reader.ErrNoBlocks) || errors.Is(err, io.ErrUnexpectedEOF), "seed %d: %v", seed, err)
				}
			case 3:
				n := rng.IntN(2 * lim)
				var got []byte
				err := r.ReadRange(n, func(b []byte) { got = append(got, b...) })
				require.True(t, bytes.Equal(data[pos:pos+len(got)], got), "seed %d", seed)
				pos += len(got)
				if err != nil {
					require.Truef(t, errors.Is(err, reader.ErrNoBlocks) || errors.Is(err, io.ErrUnexpectedEOF), "seed %d: %v", seed, err)
				}
			case 4:
				b, err := r.ReadByte()
				if err == nil {
					require.Equal(t, data[pos], b)
					pos++
					if rng.IntN(2) == 0 {
						require.NoError(t, r.UnreadByte())
						pos--
					}
				}
			case 5:
				v, err := r.ReadUint32BE()
				if err == nil {
					require.Equal(t, uint32(data[pos])<<24|uint32(data[pos+1])<<16|uint32(data[pos+2])<<8|uint32(data[pos+3]), v)
					pos += 4
				}
			}
			check()
		}
		check()
		for _, k := range held {
			k.s.Release()
		}
		require.NoError(t, r.Close())
		require.Zero(t, a.InUse(), "seed %d", seed)
		require.NoError(t, a.Close())
	}
}

//go:build linux

package arena_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/unix"
)

// residentBlocks counts the blocks of a with at least one page resident.
func residentBlocks(t *testing.T, a *arena.Arena) int {
	t.Helper()
	n := 0
	for id := range a.Len() {
		// Bytes does not check ownership; mincore only reads page tables.
		pages, err := unix.ResidentPages(a.Bytes(uint16(id)))
		require.NoError(t, err)
		if pages > 0 {
			n++
		}
	}
	return n
}

func TestTrimGivesBackColdFreeBlocks(t *testing.T) {
	for _, debug := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "debug"}[debug], func(t *testing.T) {
			a, err := arena.New(arena.Config{BlockSize: 16 << 10, Blocks: 32, Debug: debug})
			require.NoError(t, err)
			defer func() { assert.NoError(t, a.Close()) }()
			require.Zero(t, residentBlocks(t, a), "a fresh mapping has no pages")

			refs := takeAllDirty(t, a, 0xAA)
			// One block stays in use: Trim must leave it alone.
			busy := refs[0]
			for _, r := range refs[1:] {
				a.Release(r)
			}
			require.Equal(t, a.Len(), residentBlocks(t, a))
			takes := a.Stats().Takes

			const keep = 4
			assert.Equal(t, a.Len()-1-keep, a.Trim(keep))
			assert.Equal(t, 1+keep, residentBlocks(t, a), "the busy block and the kept ones stay resident")
			assert.Equal(t, byte(0xAA), a.Bytes(busy.ID())[0], "the busy block keeps its bytes")
			assert.Zero(t, a.Trim(keep), "nothing was used since the last trim")
			st := a.Stats()
			assert.EqualValues(t, a.Len()-1-keep, st.Trimmed)
			assert.Equal(t, takes, st.Takes, "Trim counts no takes")
			assert.Equal(t, 1, st.InUse)

			// The kept blocks are the ones handed out next, bytes intact;
			// the trimmed ones come back zeroed.
			for range keep {
				r, ok := a.Take()
				require.True(t, ok)
				assert.Equal(t, byte(0xAA), a.Bytes(r.ID())[0], "a kept block was trimmed")
				a.Release(r)
			}
			var got []arena.Ref
			for {
				r, ok := a.Take()
				if !ok {
					break
				}
				got = append(got, r)
			}
			require.Len(t, got, a.Len()-1)
			zeroed := 0
			for _, r := range got {
				if a.Bytes(r.ID())[0] == 0 {
					zeroed++
				}
				a.Release(r)
			}
			assert.Equal(t, a.Len()-1-keep, zeroed)
			a.Release(busy)
			assert.Zero(t, a.InUse())
		})
	}
}

// Trim racing takers and releasers loses no block and hands none out twice:
// a taken block is written with its taker's mark and checked before release.
func TestTrimRacesTakeAndRelease(t *testing.T) {
	a, err := arena.New(arena.Config{BlockSize: arena.MinBlockSize, Blocks: 64})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	const workers, rounds = 4, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				a.Trim(2)
			}
		}
	}()
	var bad atomic.Int64
	var takers sync.WaitGroup
	for w := range workers {
		takers.Add(1)
		go func() {
			defer takers.Done()
			mark := byte(w + 1)
			for range rounds {
				r, ok := a.Take()
				if !ok {
					continue // every block out, or off the list while Trim runs
				}
				b := a.Bytes(r.ID())
				b[0], b[len(b)-1] = mark, mark
				runtime.Gosched()
				if b[0] != mark || b[len(b)-1] != mark {
					bad.Add(1)
				}
				a.Release(r)
			}
		}()
	}
	takers.Wait()
	close(stop)
	wg.Wait()
	assert.Zero(t, bad.Load(), "a block was written by two owners, or trimmed while in use")
	assert.Zero(t, a.InUse())
	// Every block is back on the free list.
	var refs []arena.Ref
	for {
		r, ok := a.Take()
		if !ok {
			break
		}
		refs = append(refs, r)
	}
	assert.Len(t, refs, a.Len())
	for _, r := range refs {
		a.Release(r)
	}
}

// Discard gives back the whole pages of a held block from an offset on:
// the bytes before stay, the pages after read as zeros and are no longer
// resident.
func TestDiscardGivesBackTheTailOfAHeldBlock(t *testing.T) {
	a, err := arena.New(arena.Config{BlockSize: 16 << 10, Blocks: 4})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	r, ok := a.Take()
	require.True(t, ok)
	b := a.Bytes(r.ID())
	for i := range b {
		b[i] = 0xA5
	}
	page := unix.Getpagesize()
	before, err := unix.ResidentPages(b)
	require.NoError(t, err)
	require.Equal(t, len(b)/page, before)

	// From 100: rounded up to the next page, the first page stays.
	assert.Equal(t, len(b)-page, a.Discard(r, 100))
	after, err := unix.ResidentPages(b)
	require.NoError(t, err)
	assert.Equal(t, 1, after)
	assert.Equal(t, byte(0xA5), b[page-1], "bytes before the discarded pages stay")
	assert.Zero(t, b[page], "discarded pages read as zeros")
	assert.Zero(t, a.Stats().Trimmed, "a partial discard trims no block")

	assert.Zero(t, a.Discard(r, len(b)), "nothing past the end")
	assert.Equal(t, len(b), a.Discard(r, 0))
	after, err = unix.ResidentPages(b)
	require.NoError(t, err)
	assert.Zero(t, after, "a whole discard leaves no page resident")
	assert.EqualValues(t, 1, a.Stats().Trimmed)
	assert.Equal(t, 1, a.Refs(r.ID()), "the block stays held")

	a.Release(r)
	assert.Panics(t, func() { a.Discard(r, 0) }, "a stale reference")
}

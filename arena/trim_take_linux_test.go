//go:build linux

package arena_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// takeAllDirty takes every block of a and writes one byte per page of
// each, so that every block is resident; it returns the references.
func takeAllDirty(t *testing.T, a *arena.Arena, v byte) []arena.Ref {
	t.Helper()
	refs := make([]arena.Ref, 0, a.Len())
	for range a.Len() {
		r, ok := a.Take()
		require.True(t, ok)
		b := a.Bytes(r.ID())
		for i := 0; i < len(b); i += 4096 {
			b[i] = v
		}
		refs = append(refs, r)
	}
	return refs
}

// dirtyAll makes every block of a resident and free, so that Trim has work.
func dirtyAll(t *testing.T, a *arena.Arena) {
	t.Helper()
	for _, r := range takeAllDirty(t, a, 1) {
		a.Release(r)
	}
}

// Take's contract: ok == false only when every block is in use. A Trim
// running on another goroutine (the engine's loop trims while consumers
// take spill blocks) must not make it fail while blocks are free.
func TestTakeDoesNotFailWhileTrimRuns(t *testing.T) {
	for _, debug := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "debug"}[debug], func(t *testing.T) {
			a := newArena(t, arena.Config{BlockSize: 16 << 10, Blocks: 512, Debug: debug})
			var failed, tried atomic.Int64
			deadline := time.Now().Add(3 * time.Second)
			for round := 0; round < 20 && failed.Load() == 0 && time.Now().Before(deadline); round++ {
				dirtyAll(t, a) // the taker is not running: it does not count these
				var wg sync.WaitGroup
				stop := make(chan struct{})
				started := make(chan struct{})
				wg.Add(1)
				go func() {
					defer wg.Done()
					close(started)
					for {
						select {
						case <-stop:
							return
						default:
						}
						// One block held at most, out of 512: the arena is never dry.
						r, ok := a.Take()
						tried.Add(1)
						if !ok {
							failed.Add(1)
							continue
						}
						a.Bytes(r.ID())[0] = 2
						a.Release(r)
					}
				}()
				<-started
				a.Trim(0)
				close(stop)
				wg.Wait()
			}
			t.Logf("%d takes, %d failed", tried.Load(), failed.Load())
			assert.Zero(t, failed.Load(), "Take found the arena dry while at most one of %d blocks was in use", a.Len())
			assert.Zero(t, a.Stats().FailedTakes)
		})
	}
}

// Stats.Trimmed counts blocks whose pages were given back to the kernel. A
// block's pages given back once, and not touched since, must not count
// again when a later Trim or whole-block Discard finds them already gone.
func TestTrimmedCountsEachGiveBackOnce(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 16 << 10, Blocks: 4})
	write := func(r arena.Ref) {
		b := a.Bytes(r.ID())
		for i := range b {
			b[i] = 0xAA
		}
	}

	// A whole-block Discard, then Trim once the block is free again.
	r, ok := a.Take()
	require.True(t, ok)
	write(r)
	require.Equal(t, a.BlockSize(), a.Discard(r, 0))
	require.EqualValues(t, 1, a.Stats().Trimmed)
	require.Zero(t, residentBlocks(t, a))
	a.Release(r) // nothing wrote into it since the Discard
	assert.Zero(t, a.Trim(0), "no page of the block was resident")
	assert.EqualValues(t, 1, a.Stats().Trimmed, "the block's pages were given back once")

	// A Trim, then a whole-block Discard by the next holder, which has
	// not written into it (a buffer ring's unfilled block at an idle trim).
	r, ok = a.Take()
	require.True(t, ok)
	write(r)
	a.Release(r)
	require.Equal(t, 1, a.Trim(0))
	before := a.Stats().Trimmed
	r, ok = a.Take()
	require.True(t, ok)
	require.Zero(t, residentBlocks(t, a))
	a.Discard(r, 0)
	assert.Equal(t, before, a.Stats().Trimmed, "Discard gave back no page: the Trim before did")
	a.Release(r)
}

// Trim never gives back the pages of a taken block, however it interleaves
// with Take: a taker writes its mark over every page and finds it intact.
// (Safety net for Trim leaving the blocks on the free list.)
func TestTrimNeverZeroesATakenBlock(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 16 << 10, Blocks: 16})
	stop := make(chan struct{})
	var trims sync.WaitGroup
	trims.Add(1)
	go func() {
		defer trims.Done()
		for {
			select {
			case <-stop:
				return
			default:
				a.Trim(0)
			}
		}
	}()
	var bad, took atomic.Int64
	var takers sync.WaitGroup
	deadline := time.Now().Add(time.Second)
	for w := range 2 {
		takers.Add(1)
		go func() {
			defer takers.Done()
			mark := byte(w + 1)
			for time.Now().Before(deadline) {
				r, ok := a.Take()
				if !ok {
					continue
				}
				took.Add(1)
				b := a.Bytes(r.ID())
				for i := 0; i < len(b); i += 4096 {
					b[i] = mark
				}
				runtime.Gosched() // let a Trim in between
				for i := 0; i < len(b); i += 4096 {
					if b[i] != mark {
						bad.Add(1)
						break
					}
				}
				a.Release(r)
			}
		}()
	}
	takers.Wait()
	close(stop)
	trims.Wait()
	t.Logf("%d takes, %d blocks trimmed", took.Load(), a.Stats().Trimmed)
	assert.Zero(t, bad.Load(), "a taken block's pages were given back under its owner")
}

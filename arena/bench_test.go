package arena_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

const benchBlockSize = 16 << 10

// BenchmarkTakeRelease compares one take + give back of a 16 KiB block from
// the arena with a sync.Pool of *[]byte of the same size, on one goroutine and
// under RunParallel.
func BenchmarkTakeRelease(b *testing.B) {
	a, err := arena.New(arena.Config{BlockSize: benchBlockSize, Blocks: 1024})
	require.NoError(b, err)
	defer a.Close()
	pool := sync.Pool{New: func() any { s := make([]byte, benchBlockSize); return &s }}

	b.Run("impl=arena/mode=serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, _ := a.Take()
			a.Release(r)
		}
	})
	b.Run("impl=syncpool/mode=serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p := pool.Get().(*[]byte)
			pool.Put(p)
		}
	})
	b.Run("impl=arena/mode=parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r, ok := a.Take()
				if ok {
					a.Release(r)
				}
			}
		})
	})
	b.Run("impl=syncpool/mode=parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p := pool.Get().(*[]byte)
				pool.Put(p)
			}
		})
	})
	assert.Zero(b, a.InUse())
}

func TestTakeRetainReleaseDoNotAllocate(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 4096, Blocks: 4})
	allocs := testing.AllocsPerRun(1000, func() {
		r, ok := a.Take()
		if !ok {
			panic("arena dry")
		}
		a.Retain(r)
		a.Release(r)
		a.Release(r)
	})
	assert.Zero(t, allocs)
	assert.Zero(t, a.InUse())

	var held []arena.Ref
	for r, ok := a.Take(); ok; r, ok = a.Take() {
		held = append(held, r)
	}
	dry := testing.AllocsPerRun(100, func() { _, _ = a.Take() })
	assert.Zero(t, dry, "a take from a dry arena must not allocate")
	for _, r := range held {
		a.Release(r)
	}
}

package arena

import (
	"sync/atomic"
)

// maxShards bounds how many independent stacks the free list is split into.
const maxShards = 8

// freeList holds the free block ids in up to maxShards lock-free LIFO stacks
// (Treiber stacks). Block id lives in shard id % len(shards) and always goes
// back there, so goroutines giving back different blocks rarely touch the same
// cache line; Take starts at a random shard and moves on when one is empty, so
// it finds a free block whenever any shard has one.
type freeList struct {
	shards []shard
	mask   uint32
	// last is the shard the latest push went to: pop starts there, so the
	// block given back last is taken first and a lightly used arena keeps
	// reusing the same few blocks (the rest is never touched, so never
	// resident), like one LIFO stack would.
	last atomic.Uint32
	next []atomic.Uint32 // next[id] = id+1 of the entry below id in its shard, 0 at the bottom
}

// shard is one stack plus its share of the counters, alone on its cache lines.
// The head packs a tag in its high 32 bits and id+1 in its low 32 bits (0 =
// empty); the tag changes on every push and pop so a CAS cannot succeed on a
// head that was popped and pushed back in between (the ABA problem).
type shard struct {
	head  atomic.Uint64
	takes atomic.Uint64
	gives atomic.Uint64
	_     [40]byte
}

func (f *freeList) init(n int) {
	ns := 1
	for ns*2 <= n && ns < maxShards {
		ns *= 2
	}
	f.shards = make([]shard, ns)
	f.mask = uint32(ns - 1)
	f.next = make([]atomic.Uint32, n)
	// Push in descending order so each shard hands out its lowest id first.
	for id := n - 1; id >= 0; id-- {
		f.push(uint16(id))
	}
	for i := range f.shards {
		f.shards[i].gives.Store(0)
	}
}

// pop takes a free id, trying every shard once, from the shard of the
// latest push.
func (f *freeList) pop() (uint16, bool) {
	start := f.last.Load()
	for i := uint32(0); i <= f.mask; i++ {
		s := &f.shards[(start+i)&f.mask]
		if id, ok := s.pop(f.next); ok {
			s.takes.Add(1)
			return id, true
		}
	}
	return 0, false
}

// walk appends to dst the free ids in the order pop would hand them out,
// without taking any: for Trim, so that a concurrent Take still finds every
// free block. Under concurrent use the result is a hint (an id may have been
// taken since, or appear twice); it stops after len(f.next) ids.
func (f *freeList) walk(dst []uint16) []uint16 {
	start, limit := f.last.Load(), len(dst)+len(f.next)
	for i := uint32(0); i <= f.mask; i++ {
		top := uint32(f.shards[(start+i)&f.mask].head.Load())
		for ; top != 0 && len(dst) < limit; top = f.next[top-1].Load() {
			dst = append(dst, uint16(top-1))
		}
	}
	return dst
}

// push gives id back to its home shard.
func (f *freeList) push(id uint16) {
	i := uint32(id) & f.mask
	s := &f.shards[i]
	s.push(id, f.next)
	s.gives.Add(1)
	if f.last.Load() != i { // a write only when the shard changes
		f.last.Store(i)
	}
}

// counts sums the per-shard counters. Gives are read first so that, under
// concurrent use, takes - gives never goes negative.
func (f *freeList) counts() (takes, gives uint64) {
	for i := range f.shards {
		gives += f.shards[i].gives.Load()
	}
	for i := range f.shards {
		takes += f.shards[i].takes.Load()
	}
	return takes, gives
}

func (s *shard) pop(next []atomic.Uint32) (uint16, bool) {
	for {
		h := s.head.Load()
		top := uint32(h)
		if top == 0 {
			return 0, false
		}
		below := next[top-1].Load()
		if s.head.CompareAndSwap(h, nextTag(h)|uint64(below)) {
			return uint16(top - 1), true
		}
	}
}

func (s *shard) push(id uint16, next []atomic.Uint32) {
	for {
		h := s.head.Load()
		next[id].Store(uint32(h))
		if s.head.CompareAndSwap(h, nextTag(h)|(uint64(id)+1)) {
			return
		}
	}
}

// nextTag returns h's tag plus one, in the high half, with the low half zero.
func nextTag(h uint64) uint64 { return (h>>32 + 1) << 32 }

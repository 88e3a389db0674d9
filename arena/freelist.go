package arena

import (
	"sync/atomic"
)

// maxShards bounds how many independent stacks the free list is split into.
const maxShards = 8

// freeList holds the free block ids in up to maxShards lock-free LIFO stacks
// (Treiber stacks). Block id lives in shard id % len(shards) and always goes
// back there, so goroutines giving back different blocks rarely touch the same
// stack. Every push stamps its id with a global sequence number, and pop takes
// from the shard whose top has the newest stamp: across shards, as within
// one, the block given back last is taken first. A user that needs only a
// few blocks at a time (or a batch of them, as a buffer ring refilling) keeps
// reusing the same ones, and the rest of the arena is never touched, so never
// resident. (Per-shard order alone is not enough: a batch of takes drains
// each shard down to blocks that have been free for a long time.)
type freeList struct {
	shards []shard
	mask   uint32
	next   []atomic.Uint32 // next[id] = id+1 of the entry below id in its shard, 0 at the bottom
	stamp  []atomic.Uint64 // stamp[id] = seq at id's latest push
	_      [64]byte
	seq    atomic.Uint64 // written by every push: alone on its cache line
	_      [56]byte
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
	f.stamp = make([]atomic.Uint64, n)
	// Push in descending order so the lowest ids are handed out first.
	for id := n - 1; id >= 0; id-- {
		f.push(uint16(id))
	}
	for i := range f.shards {
		f.shards[i].gives.Store(0)
	}
}

// pop takes a free id: the top of the shard with the newest stamp, or, if
// that shard was emptied meanwhile, the first free id found in any shard.
func (f *freeList) pop() (uint16, bool) {
	var tops [maxShards]uint32
	for i := range f.shards {
		tops[i] = uint32(f.shards[i].head.Load())
	}
	best := f.newest(&tops)
	if best < 0 {
		return 0, false // every shard was empty as it was looked at
	}
	for i := range f.shards {
		s := &f.shards[(best+i)&int(f.mask)]
		if id, ok := s.pop(f.next); ok {
			s.takes.Add(1)
			return id, true
		}
	}
	return 0, false
}

// newest returns the index of the shard whose entry in tops (id+1 of an
// entry of that shard, 0 for none) has the newest stamp, or -1 if all are 0.
func (f *freeList) newest(tops *[maxShards]uint32) int {
	best, newest := -1, uint64(0)
	for i, top := range tops[:len(f.shards)] {
		if top != 0 {
			if st := f.stamp[top-1].Load(); best < 0 || st > newest {
				best, newest = i, st
			}
		}
	}
	return best
}

// walk appends to dst the free ids in the order pop would hand them out
// (newest stamp first), without taking any: for Trim, so that a concurrent
// Take still finds every free block. Under concurrent use the result is a
// hint (an id may have been taken since, or appear twice); it stops after
// len(f.next) ids.
func (f *freeList) walk(dst []uint16) []uint16 {
	var cur [maxShards]uint32 // id+1 of each shard's next entry, 0 when done
	for i := range f.shards {
		cur[i] = uint32(f.shards[i].head.Load())
	}
	for limit := len(dst) + len(f.next); len(dst) < limit; {
		best := f.newest(&cur)
		if best < 0 {
			break
		}
		top := cur[best]
		dst = append(dst, uint16(top-1))
		cur[best] = f.next[top-1].Load()
	}
	return dst
}

// push gives id back to its home shard, stamped as the newest free id.
func (f *freeList) push(id uint16) {
	s := &f.shards[uint32(id)&f.mask]
	f.stamp[id].Store(f.seq.Add(1))
	s.push(id, f.next)
	s.gives.Add(1)
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

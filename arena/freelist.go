package arena

import "sync/atomic"

// freeList is a lock-free LIFO stack of block ids (a Treiber stack). The head
// packs a tag in its high 32 bits and id+1 in its low 32 bits (0 = empty); the
// tag changes on every push and pop so a CAS cannot succeed on a head that was
// popped and pushed back in between (the ABA problem). LIFO order hands out
// the block most recently given back, whose lines are likeliest still cached.
type freeList struct {
	head atomic.Uint64
	next []atomic.Uint32 // next[id] = id+1 of the entry below id, 0 at the bottom
}

func (f *freeList) init(n int) {
	f.next = make([]atomic.Uint32, n)
	for i := 0; i < n-1; i++ {
		f.next[i].Store(uint32(i + 2))
	}
	f.head.Store(1) // block 0 on top: ids go out in ascending order at first
}

func (f *freeList) pop() (uint16, bool) {
	for {
		h := f.head.Load()
		top := uint32(h)
		if top == 0 {
			return 0, false
		}
		below := f.next[top-1].Load()
		if f.head.CompareAndSwap(h, nextTag(h)|uint64(below)) {
			return uint16(top - 1), true
		}
	}
}

func (f *freeList) push(id uint16) {
	for {
		h := f.head.Load()
		f.next[id].Store(uint32(h))
		if f.head.CompareAndSwap(h, nextTag(h)|(uint64(id)+1)) {
			return
		}
	}
}

// nextTag returns h's tag plus one, in the high half, with the low half zero.
func nextTag(h uint64) uint64 { return (h>>32 + 1) << 32 }

// Package slots maps small integers (the user data of epoll events and
// io_uring requests) to connections, for the engines' loops.
package slots

import (
	"sync"
	"sync/atomic"
)

const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
	maxChunks = 1 << 10
	// Max is the most slots a Table can hand out.
	Max = chunkSize * maxChunks
)

// Table maps slots, small integers stored in kernel events, to connections
// (any *T). The zero value is empty and hands out no slot until SetLimit.
// Entries live in fixed chunks that never move, so the loop reads them with
// one atomic load and no lock while other goroutines add connections.
// Only adding and freeing take the mutex.
type Table[T any] struct {
	chunks [maxChunks]atomic.Pointer[[chunkSize]atomic.Pointer[T]]

	mu    sync.Mutex
	free  []uint32 // freed slots, reused first
	next  uint32   // slots below next have been used at least once
	limit uint32
}

// SetLimit bounds the slots in use at once (at most Max).
func (t *Table[T]) SetLimit(n int) {
	t.mu.Lock()
	t.limit = uint32(min(max(n, 0), Max))
	t.mu.Unlock()
}

// Add stores c in a free slot and returns it; false when Limit slots are in
// use.
func (t *Table[T]) Add(c *T) (uint32, bool) {
	s, ok := t.Reserve()
	if ok {
		t.Put(s, c)
	}
	return s, ok
}

// Reserve takes a free slot, still empty (Get returns nil for it), so that
// the caller can record the slot in c before Put publishes c: the loop's
// Get then sees c complete. False when Limit slots are in use.
func (t *Table[T]) Reserve() (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s uint32
	switch {
	case len(t.free) > 0:
		s = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
	case t.next < t.limit:
		s = t.next
		t.next++
	default:
		return 0, false
	}
	if t.chunks[s>>chunkBits].Load() == nil {
		t.chunks[s>>chunkBits].Store(new([chunkSize]atomic.Pointer[T]))
	}
	return s, true
}

// Put stores c in slot s, taken by Reserve: from then on the loop's Get
// finds it.
func (t *Table[T]) Put(s uint32, c *T) {
	t.chunks[s>>chunkBits].Load()[s&(chunkSize-1)].Store(c)
}

// Get returns the connection in slot s, nil if none. It takes no lock.
func (t *Table[T]) Get(s uint32) *T {
	if s >= Max {
		return nil
	}
	ch := t.chunks[s>>chunkBits].Load()
	if ch == nil {
		return nil
	}
	return ch[s&(chunkSize-1)].Load()
}

// Remove frees slot s for reuse.
func (t *Table[T]) Remove(s uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.chunks[s>>chunkBits].Load()[s&(chunkSize-1)].Store(nil)
	t.free = append(t.free, s)
}

// Each calls fn for every connection in the table.
func (t *Table[T]) Each(fn func(*T)) {
	t.mu.Lock()
	n := t.next
	t.mu.Unlock()
	for s := uint32(0); s < n; s++ {
		if c := t.Get(s); c != nil {
			fn(c)
		}
	}
}

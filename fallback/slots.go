package fallback

import (
	"sync"
	"sync/atomic"
)

const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
	maxChunks = 1 << 10
	maxSlots  = chunkSize * maxChunks
)

// slotTable maps the small integers stored in epoll events to connections
// (any *T).
// Entries live in fixed chunks that never move, so the loop reads them with
// one atomic load and no lock while other goroutines add connections.
// Only adding and freeing take the mutex.
type slotTable[T any] struct {
	chunks [maxChunks]atomic.Pointer[[chunkSize]atomic.Pointer[T]]

	mu    sync.Mutex
	free  []uint32 // freed slots, reused first
	next  uint32   // slots below next have been used at least once
	limit uint32
}

func (t *slotTable[T]) add(c *T) (uint32, bool) {
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
	ch := t.chunks[s>>chunkBits].Load()
	if ch == nil {
		ch = new([chunkSize]atomic.Pointer[T])
		t.chunks[s>>chunkBits].Store(ch)
	}
	ch[s&(chunkSize-1)].Store(c)
	return s, true
}

func (t *slotTable[T]) get(s uint32) *T {
	if s >= maxSlots {
		return nil
	}
	ch := t.chunks[s>>chunkBits].Load()
	if ch == nil {
		return nil
	}
	return ch[s&(chunkSize-1)].Load()
}

func (t *slotTable[T]) remove(s uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.chunks[s>>chunkBits].Load()[s&(chunkSize-1)].Store(nil)
	t.free = append(t.free, s)
}

// each calls fn for every connection in the table.
func (t *slotTable[T]) each(fn func(*T)) {
	t.mu.Lock()
	n := t.next
	t.mu.Unlock()
	for s := uint32(0); s < n; s++ {
		if c := t.get(s); c != nil {
			fn(c)
		}
	}
}

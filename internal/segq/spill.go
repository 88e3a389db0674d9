package segq

import (
	"errors"
	"sync"

	"github.com/zcio/zcio/arena"
)

// ErrNudged is returned by a waiting Take after Nudge: the engine ran out
// of blocks, and a consumer that holds part of a message should spill it
// (see Spiller) so that the blocks it shares with other connections go back.
// Nothing was taken; the consumer takes again.
var ErrNudged = errors.New("zcio/segq: engine out of blocks")

// Nudge wakes a consumer waiting in Take with ErrNudged, once. A consumer
// not waiting sees it at its next blocking Take. Safe for concurrent use.
func (q *Queue) Nudge() {
	q.mu.Lock()
	q.flags |= qNudged
	q.wakeLocked()
	q.mu.Unlock()
}

// Adopt counts the bytes of s, a spilled segment that replaces segments the
// consumer gave back with Done, as pending again, and the runs the Done
// calls to come will take off: s's own (the next segment the consumer gives
// back is s), and that of the rest of the block the consumer gave back last
// when the producer goes on in it (its run was taken off with the given-back
// part, and after s it is a run again). Consumer only.
func (q *Queue) Adopt(s Segment) {
	q.pending.Add(int64(s.Len))
	last, k := q.lastDone.Load(), packRef(s.Ref)
	if k != last {
		q.rs.add(1)
	}
	q.mu.Lock()
	switch {
	case len(q.segs) > 0:
		if packRef(q.segs[0].Ref) == last && last != k {
			q.rs.add(1) // the queued rest of that block
		}
	case q.last == last:
		q.last = 0 // the producer's next segment there starts a run
	}
	q.mu.Unlock()
}

// Spiller returns the queue's spiller, nil if none.
func (q *Queue) Spiller() *Spiller { return q.sh.spill }

// Spiller copies the partial messages of waiting consumers out of the
// blocks they share with other connections, into reserve blocks of the same
// arena that the engine never hands to the kernel, one after the other in
// the current spill block. It is the way out when every block of an engine
// holds a piece of some connection's unfinished message: without it those
// connections would wait for each other forever. It holds no reference of
// its own: the spill block lives as long as a copy in it is held, so that
// once the consumers are done with their copies the block goes back to
// the arena (and the engine's reserve is whole again). Safe for concurrent
// use.
type Spiller struct {
	a    *arena.Arena
	mu   sync.Mutex
	tail arena.Ref // the current spill block, while a copy in it is held
	off  int
	have bool
}

// NewSpiller returns a spiller over a.
func NewSpiller(a *arena.Arena) *Spiller { return &Spiller{a: a} }

// Copy copies the total bytes of views into one spill block and appends to
// dst a segment for them, holding its own reference. It returns false, with
// nothing appended or held, when total exceeds a block or no block is free.
func (s *Spiller) Copy(dst []Segment, views [][]byte, total int) ([]Segment, bool) {
	bs := s.a.BlockSize()
	if total <= 0 || total > bs {
		return dst, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Append to the current block if it has room and still holds a copy
	// (the reference TryRetain adds is the new segment's); once its last
	// copy went back it is free, perhaps another's already.
	if s.have && (bs-s.off < total || !s.a.TryRetain(s.tail)) {
		s.have = false
	}
	if !s.have {
		r, ok := s.a.Take() // its reference is the new segment's
		if !ok {
			return dst, false
		}
		s.tail, s.off, s.have = r, 0, true
	}
	b := s.a.Bytes(s.tail.ID())[s.off:]
	n := 0
	for _, v := range views {
		n += copy(b[n:total], v)
	}
	dst = append(dst, Segment{Ref: s.tail, Off: uint32(s.off), Len: uint32(total)})
	s.off += total
	return dst, true
}

// Offer makes block r, which the caller holds alone but for its own
// segment [0, used), the current spill block when it has more room than
// the current one: a consumer that spilled within a block of its own hands
// on the rest, for spills that would otherwise need a block of the
// reserve (which earlier spills may have used up). Like every spill block,
// r lives as long as a copy in it is held.
func (s *Spiller) Offer(r arena.Ref, used int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.have {
		if cur, ok := s.a.Lookup(s.tail.ID()); ok && cur == s.tail && s.off <= used {
			return // the current block is alive, with as much room
		}
	}
	s.tail, s.off, s.have = r, used, true
}

// Close forgets the current spill block. The spiller holds no reference, so
// there is nothing to give back; copies made later are still given back by
// whoever holds them.
func (s *Spiller) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.have = false
}

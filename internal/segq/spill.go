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

// Adopt counts the bytes of segs, spilled segments (in order, as Spiller.Copy
// made them) that replace segments the consumer gave back with Done, as
// pending again, and the runs the Done calls to come will take off: one per
// block of segs (the next segments the consumer gives back are segs), and
// that of the rest of the block the consumer gave back last when the
// producer goes on in it (its run was taken off with the given-back part,
// and after segs it is a run again). Consumer only.
func (q *Queue) Adopt(segs ...Segment) {
	if len(segs) == 0 {
		return
	}
	var total int64
	for _, s := range segs {
		total += int64(s.Len)
	}
	q.pending.Add(total)
	last := q.lastDone.Load()
	k := last
	for _, s := range segs {
		if p := packRef(s.Ref); p != k {
			q.rs.add(1)
			k = p
		}
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
	a      *arena.Arena
	mu     sync.Mutex
	tail   arena.Ref // the current spill block, while a copy in it is held
	off    int
	have   bool
	copied int64 // bytes copied so far (Copied)
}

// Copied returns how many bytes the spiller has copied so far.
func (s *Spiller) Copied() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copied
}

// NewSpiller returns a spiller over a.
func NewSpiller(a *arena.Arena) *Spiller { return &Spiller{a: a} }

// Copy copies the total bytes of views into spill blocks and appends to dst
// a segment per block used, each holding its own reference. Up to a block's
// worth goes after the earlier copies in the current spill block when it
// has room (or into a new one); more takes as many free blocks as the bytes
// fill, all at once, the last of them becoming the current spill block. It
// returns false, with nothing appended or held, when total is not positive
// or the blocks are not free.
func (s *Spiller) Copy(dst []Segment, views [][]byte, total int) ([]Segment, bool) {
	bs := s.a.BlockSize()
	if total <= 0 {
		return dst, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if total > bs {
		return s.copyBlocks(dst, views, total)
	}
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
	s.copied += int64(total)
	return dst, true
}

// copyBlocks is Copy for more than a block: whole free blocks, taken all
// at once or not at all. s.mu is held.
func (s *Spiller) copyBlocks(dst []Segment, views [][]byte, total int) ([]Segment, bool) {
	bs := s.a.BlockSize()
	start := len(dst)
	for left := total; left > 0; left -= bs {
		r, ok := s.a.Take() // its reference is the segment's
		if !ok {
			for _, sg := range dst[start:] {
				s.a.Release(sg.Ref)
			}
			return dst[:start], false
		}
		dst = append(dst, Segment{Ref: r, Len: uint32(min(bs, left))})
	}
	vi, vo := 0, 0 // the view being copied, and how much of it is copied
	for _, sg := range dst[start:] {
		b := s.a.Bytes(sg.Ref.ID())[:sg.Len]
		for n := 0; n < len(b); {
			c := copy(b[n:], views[vi][vo:])
			n, vo = n+c, vo+c
			if vo == len(views[vi]) {
				vi, vo = vi+1, 0
			}
		}
	}
	last := dst[len(dst)-1]
	s.tail, s.off, s.have = last.Ref, int(last.Len), true
	s.copied += int64(total)
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

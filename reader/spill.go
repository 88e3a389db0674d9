package reader

import "github.com/zcio/zcio/internal/segq"

// spill copies the buffered, unconsumed bytes of an engine's Reader into
// the engine's spill blocks and gives back the blocks they were in. It runs
// when the engine has run out of blocks while this Reader waits for the
// rest of a message, or when the Reader's bytes are spread over as many
// blocks as its queue allows (compactCrowded): those blocks are shared with
// other connections, and if every block held a piece of some unfinished
// message, the connections would wait for each other forever. Views handed
// out earlier are not affected (no callback is running). Bytes that fill
// more than a block take whole free blocks, all at once; it does nothing
// when those, or a spill block, are not free.
func (r *Reader) spill() {
	qs, ok := r.src.(*queueSource)
	if !ok || r.n == 0 {
		return
	}
	sp := qs.q().Spiller()
	if sp == nil {
		return
	}
	// Leading segments that fill a block each (an earlier spill's) are as
	// compact as they get: they stay, with a reference of their own for
	// the new segment list, and only the rest is copied. Otherwise a
	// message that trickles in would be copied whole again and again.
	bs := r.a.BlockSize()
	var few [8]segq.Segment
	out := few[:0]
	kept := 0
	for i := r.h; i < len(r.segs) && kept < r.n; i++ {
		s := r.segs[i]
		if s.Off != 0 || int(s.Len) != bs || i == r.h && r.off != 0 {
			break
		}
		out = append(out, s)
		kept += bs
	}
	if kept >= r.n {
		return // whole blocks only: nothing to compact
	}
	out, ok = sp.Copy(out, r.viewsOf(r.n)[len(out):], r.n-kept)
	if !ok && kept == 0 {
		out, ok = r.spillInPlace(sp, out) // no block free: the reserve is used up
	}
	if !ok {
		return
	}
	for _, s := range out[:kept/bs] {
		r.a.Retain(s.Ref) // the new list's reference; pop gives back the old one
	}
	n := r.n
	for r.h < len(r.segs) {
		r.pop() // gives back the old segments and their pending bytes
	}
	qs.q().Adopt(out...) // the spilled copy is pending instead
	r.segs = append(r.segs[:0], out...)
	r.h, r.off, r.n = 0, 0, n
	r.setHead()
	r.scan, r.unread, r.lag = 0, false, false
}

// compactCrowded spills what a Reader holds before it asks for more, when
// crowded says so: a take that finds the queue empty lifts the pause, so
// without this each later receive, landing in a block shared with other
// connections, would pin one more block.
func (r *Reader) compactCrowded() {
	if r.crowded() {
		r.spill()
	}
}

// crowded reports whether the Reader's queue is at its block bound
// (segq.Queue.Crowded) with the bytes it holds spread over more than twice
// the blocks they fill, so that spilling them at least halves the blocks
// the connection pins. Waiting for that much spreading, rather than
// spilling at every piece past the fill, keeps the copying in proportion
// to the bytes received.
func (r *Reader) crowded() bool {
	qs, ok := r.src.(*queueSource)
	if !ok || r.n == 0 || !qs.q().Crowded() {
		return false
	}
	bs := r.a.BlockSize()
	return qs.q().Runs() > 2*((r.n+bs-1)/bs)+1
}

// spillInPlace is spill within the head segment's block, when the Reader
// holds that block alone (no other connection, engine or retained Slice):
// the buffered bytes move to its start and the rest of it goes to sp for
// other spills (Spiller.Offer). It needs no free block, so it works when
// the reserve is used up: a Reader that has consumed most of a block
// otherwise pins all of it for a few bytes, and when every block is pinned
// so, and the reserve is full of earlier copies, nothing could spill and
// every connection would wait for good. It appends the new segment to dst,
// holding a reference of its own; false: not possible, nothing changed.
func (r *Reader) spillInPlace(sp *segq.Spiller, dst []segq.Segment) ([]segq.Segment, bool) {
	if r.n > r.a.BlockSize() {
		return dst, false
	}
	head := r.segs[r.h].Ref
	mine := 0 // the Reader's segments in head: they come first (a block is filled in order)
	for _, s := range r.segs[r.h:] {
		if s.Ref != head {
			break
		}
		mine++
	}
	for _, s := range r.segs[r.h+mine:] {
		if s.Ref == head {
			return dst, false
		}
	}
	// Nobody else holds head, so nobody can add a reference to it, nor
	// write into it, meanwhile.
	if r.a.Refs(head.ID()) != mine {
		return dst, false
	}
	// The bytes in head move down (copy is a memmove; each lands at or
	// below where it was, so none overwrites one still to move), then the
	// rest, from other blocks, follows them.
	b := r.a.Bytes(head.ID())
	n, off := 0, r.off
	for _, s := range r.segs[r.h:] {
		n += copy(b[n:r.n], s.Bytes(r.a)[off:])
		off = 0
	}
	r.a.Retain(head) // the new segment's
	sp.Offer(head, r.n)
	return append(dst, segq.Segment{Ref: head, Len: uint32(r.n)}), true
}

// spillIdle is spill for a Reader no call is using (handler mode, on the
// engine loop between callbacks; the caller's giveBack then refuses it to
// kept pointers again).
func (r *Reader) spillIdle() {
	prev := r.gs.Load()
	if prev == gsBetween {
		// Kept since its last callback: every call through a kept
		// pointer is refused in this state, Close included, and only
		// this loop moves it out of it. Spill in place: a state that
		// let a call in (gsBusy) would have a kept pointer's Close
		// accepted, closing the connection's queue under its handler.
		if !r.closed {
			r.spill()
		}
		return
	}
	if prev != gsIdle || !r.gs.CompareAndSwap(prev, gsBusy) {
		return // a call in progress (misuse), or closed
	}
	if !r.closed {
		r.spill()
	}
	// Back as it was, unless a Close came meanwhile: then close now, as
	// end does.
	if !r.gs.CompareAndSwap(gsBusy, prev) {
		_ = r.closeNow()
		r.gs.Store(gsClosed)
	}
}

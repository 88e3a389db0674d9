package reader

import "github.com/zcio/zcio/internal/segq"

// spill copies the buffered, unconsumed bytes of an engine's Reader into
// the engine's spill block and gives back the blocks they were in. It runs
// only when the engine has run out of blocks while this Reader waits for the
// rest of a message: those blocks are shared with other connections, and if
// every block held a piece of some unfinished message, the connections
// would wait for each other forever. Views handed out earlier are not
// affected (no callback is running). It does nothing for more than a
// block's worth of bytes, or when no spill block is free.
func (r *Reader) spill() {
	qs, ok := r.src.(*queueSource)
	if !ok || r.n == 0 {
		return
	}
	sp := qs.q().Spiller()
	if sp == nil {
		return
	}
	var one [1]segq.Segment
	out, ok := sp.Copy(one[:0], r.viewsOf(r.n), r.n)
	if !ok {
		return
	}
	n := r.n
	for r.h < len(r.segs) {
		r.pop() // gives back the old segments and their pending bytes
	}
	qs.q().Adopt(out[0]) // the spilled copy is pending instead
	r.segs = append(r.segs[:0], out[0])
	r.h, r.off, r.n = 0, 0, n
	r.setHead()
	r.scan, r.unread, r.lag = 0, false, false
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

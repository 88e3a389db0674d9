package reader

import "github.com/zcio/zcio/internal/segq"

// Handler-mode connections do not own a Reader. An engine's loop lends one
// to a connection for as long as it holds buffered bytes: from the first
// callback that asks for it (Conn.Reader) until a callback returns with
// nothing left in it. An idle connection then costs no Reader at all, and
// the Readers' scratch slices are reused across connections instead of one
// set per connection.

// maxFreeReaders bounds how many idle Readers an engine keeps for lending.
const maxFreeReaders = 4096

// readerPool is one engine's idle Readers, lent to its handler-mode
// connections. Only the engine's loop uses it.
type readerPool struct {
	o    *options // the Listener's: limits and context of every Reader made
	free []*Reader
}

// get returns a Reader over q, idle and empty.
func (p *readerPool) get(q *segq.Queue) *Reader {
	if n := len(p.free); n > 0 {
		r := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		r.src = newQueueSource(q)
		r.closed, r.outside = false, false
		return r
	}
	return p.newReader(q)
}

// newReader makes a handler-mode Reader over q: guarded, non-blocking, with
// the Listener's settings.
func (p *readerPool) newReader(q *segq.Queue) *Reader {
	r := newQueueReader(q, p.o)
	r.guarded, r.nonBlocking, r.handler = true, true, true
	return r
}

// put takes back a Reader get lent, which must be idle and empty. Until it
// is lent again, a call through a pointer kept past a callback fails with
// ErrOutsideCallback. (Its source stays the last connection's queue, so
// that the calls that do not check, such as SetDeadline, stay harmless.)
func (p *readerPool) put(r *Reader) {
	r.closed, r.outside = true, true
	r.ctx = nil
	r.scan, r.scanDelim, r.unread = 0, 0, false
	r.nonBlocking = true
	if len(p.free) < maxFreeReaders {
		p.free = append(p.free, r)
	}
}

// lendable reports whether r holds nothing and no call is using it, so that
// it may go back to the pool.
func (r *Reader) lendable() bool {
	return r.gs.Load() == gsIdle && !r.closed && !r.lag && r.n == 0 && len(r.segs) == 0
}

// lent returns the Reader a handler-mode connection is using, lending it one
// first if it has none. Loop only (in a callback, or in the engine's sink).
func (c *Conn) lent() *Reader {
	if r := c.r; r != nil {
		r.gs.CompareAndSwap(gsBetween, gsIdle) // kept since an earlier callback
	}
	if c.r == nil {
		if c.g.lends {
			c.r = c.g.readers[c.ei].get(c.q)
		} else {
			// No loop owns a pool (the portable engine runs each
			// connection's callbacks on a goroutine of its own): a
			// Reader of the connection's own, kept to its end.
			c.r = c.g.readers[c.ei].newReader(c.q)
		}
	}
	return c.r
}

// giveBack returns c's Reader to the engine's pool if it holds nothing. It
// runs after each callback, on the loop; on engines without a loop (the
// portable one) a connection keeps its Reader.
func (c *Conn) giveBack() {
	r := c.r
	if r == nil {
		return
	}
	r.endCallback()
	if c.g.lends && r.lendable() {
		c.r = nil
		c.g.readers[c.ei].put(r)
		return
	}
	if r.n > 0 && c.q.Paused() {
		c.wantMore(r)
	}
	// Kept (it holds bytes): refused to anyone until the next callback.
	r.gs.CompareAndSwap(gsIdle, gsBetween)
}

// wantMore runs when a callback returned leaving bytes in the Reader while
// the connection's receive is paused: the handler waits for the rest of a
// message, and a pause that nothing else would lift (the queue's bytes are
// above the low mark but under the limit, or its blocks at their bound) would
// leave the connection waiting for good, since no OnData comes without new
// bytes. As a blocking Reader's take does, it lifts the pause, first copying
// what the Reader holds into as few blocks as it fills if the blocks are
// what paused it (the next receive would pause again at once, and each
// receive would pin one more block). The limit is on what the Reader holds
// unconsumed: the queue's pending count also has the consumed part of the
// head segment.
func (c *Conn) wantMore(r *Reader) {
	if r.n >= c.q.Limit() {
		return // it holds all it may ask for: it must consume first
	}
	if r.crowded() {
		r.spillIdle()
	}
	c.q.Want()
}

// endCallback ends what a callback may not carry over: the step back an
// UnreadByte could take, and with it the segment a ReadByte emptied and kept
// for it, so that an idle connection pins no block (nor keeps the Reader).
func (r *Reader) endCallback() {
	if r.gs.Load() != gsIdle {
		return // a call in progress (misuse from another goroutine): leave it be
	}
	r.unread = false
	if r.lag {
		r.lag = false
		if r.off == int(r.segs[r.h].Len) {
			r.pop()
		}
	}
}

// outsideReader returns the Reader a handler-mode connection hands out
// outside its callbacks: every call fails with ErrOutsideCallback. It
// allocates, but only on that misuse.
func (c *Conn) outsideReader() *Reader {
	r := c.g.readers[c.ei].newReader(c.q)
	r.closed, r.outside = true, true
	return r
}

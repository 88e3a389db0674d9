package segq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zcio/zcio/arena"
)

// Errors returned by this package; match them with errors.Is.
var (
	// ErrWouldBlock is returned by a non-blocking [Queue.Take] that found
	// nothing queued and no end of stream. Nothing was taken.
	ErrWouldBlock = errors.New("zcio/segq: would block")
	// ErrClosed is returned by [Queue.Take] after the consumer closed the queue.
	ErrClosed = errors.New("zcio/segq: queue closed")
)

// DefaultLimit is the cap on queued bytes used when Config.Limit is 0.
const DefaultLimit = 1 << 20

// Segment is bytes [Off, Off+Len) of arena block Ref, plus one reference to
// that block owned by whoever holds the Segment. Copying a Segment does not
// add a reference.
type Segment struct {
	Ref arena.Ref
	Off uint32
	Len uint32
}

// Bytes returns the segment's view into a: exactly Len bytes, capacity capped
// so that an append cannot spill into the rest of the block. The view is valid
// while the segment's reference is held.
func (s Segment) Bytes(a *arena.Arena) []byte {
	end := s.Off + s.Len
	return a.Bytes(s.Ref.ID())[s.Off:end:end]
}

// Config configures a [Queue].
type Config struct {
	// Arena owns the blocks of every segment pushed. Required.
	Arena *arena.Arena
	// Limit is the number of queued bytes (pushed and not yet given back by
	// the consumer) at which Push asks the producer to pause. Zero means
	// DefaultLimit. The consumer never buffers more than Limit bytes on
	// purpose, so a reader request larger than Limit is refused, not waited for.
	Limit int
	// OnRelease, when set, receives every block reference the queue gives
	// back, in place of Arena.Release: the hook then owns the reference and
	// must release it (an io_uring engine hands the id to its loop, which
	// re-publishes the block once the arena reports it free). It is called on
	// the consumer's goroutine, or on the goroutine of whoever releases a
	// retained view, so it must be safe for concurrent use, must not block and
	// should not allocate.
	OnRelease func(arena.Ref)
	// MaxBlocks bounds the runs of segments (see Segment.Run), and so about
	// the blocks, the queue may hold before Push asks the producer to pause:
	// with blocks shared between connections, a connection that does not
	// read would otherwise pin a few bytes in every block. Zero means no
	// bound.
	MaxBlocks int
	// Spiller, when set, is where a consumer that waits with part of a
	// message copies it when the engine runs out of blocks (see Nudge).
	Spiller *Spiller
	// OnResume, when set, is called once after Push returned pause == true,
	// as soon as the queued bytes fall to Limit/2 or less, or the consumer
	// finds the queue empty and would wait (it needs more than it holds, so
	// the cap may be passed by the segments in flight). It runs on the
	// consumer's goroutine and must not block: it tells the producer that it
	// may receive again.
	OnResume func()
}

// Queue is one connection's FIFO of segments: one producer goroutine pushes,
// one consumer goroutine takes. Push, Finish, Pending, SetDeadline and
// Release are safe to call from any goroutine; Take, Done and Close belong to
// the consumer.
type Queue struct {
	a         *arena.Arena
	limit     int64
	low       int64
	maxRuns   int64
	spill     *Spiller
	onRelease func(arena.Ref)
	onResume  func()

	pending  atomic.Int64  // bytes pushed and not yet given back
	runs     atomic.Int64  // runs pushed and not yet given back
	last     arena.Ref     // block of the last segment pushed (under mu)
	lastDone atomic.Uint64 // block of the last segment given back, packed
	paused   atomic.Bool   // Push told the producer to pause

	mu       sync.Mutex
	segs     []Segment // queued, oldest first
	end      error     // set by Finish
	closed   bool
	nudged   bool // Nudge was called; the next blocking Take says so
	deadline time.Time
	// notify (capacity 1) says "look again" to a waiting consumer. It is
	// made by the first Take that waits, so a queue whose consumer never
	// waits (handler mode) has none.
	notify chan struct{}

	timer *time.Timer // consumer only
}

// New returns an empty queue. It panics if cfg.Arena is nil.
func New(cfg Config) *Queue {
	if cfg.Arena == nil {
		panic("zcio/segq: config has no arena")
	}
	limit := int64(cfg.Limit)
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Queue{
		a:         cfg.Arena,
		limit:     limit,
		low:       limit / 2,
		maxRuns:   int64(cfg.MaxBlocks),
		spill:     cfg.Spiller,
		onRelease: cfg.OnRelease,
		onResume:  cfg.OnResume,
	}
}

// Arena returns the arena that owns the queued blocks.
func (q *Queue) Arena() *arena.Arena { return q.a }

// Limit returns the cap on queued bytes.
func (q *Queue) Limit() int { return int(q.limit) }

// Pending returns the bytes pushed and not yet given back by the consumer
// (queued, or taken and not yet consumed).
func (q *Queue) Pending() int { return int(q.pending.Load()) }

// WouldPause reports whether pushing n more bytes in a new run would fill
// the queue (and make Push ask the producer to pause). A producer whose
// consumer runs on its own goroutine (handler mode) lets it consume first.
func (q *Queue) WouldPause(n int) bool {
	return q.pending.Load()+int64(n) >= q.limit || (q.maxRuns > 0 && q.runs.Load()+1 >= q.maxRuns)
}

// Push appends s, whose block reference the queue now owns. It returns true
// when the producer should stop receiving for this connection until
// Config.OnResume is called: the queued bytes reached the limit, or the
// consumer has closed the queue (then s was given back at once). An empty
// segment is given back at once. Push panics if s reaches past the end of its
// block: that is a bug in the producer. It never blocks, and allocates only
// when the queue outgrows its largest backlog so far.
func (q *Queue) Push(s Segment) (pause bool) {
	if int(s.Off)+int(s.Len) > q.a.BlockSize() {
		panic(fmt.Sprintf("zcio/segq: push %v: bytes [%d, %d) outside a %d-byte block", s.Ref, s.Off, s.Off+s.Len, q.a.BlockSize()))
	}
	q.mu.Lock()
	if q.closed || q.end != nil {
		q.mu.Unlock()
		q.Release(s.Ref)
		return true
	}
	if s.Len == 0 {
		q.mu.Unlock()
		q.Release(s.Ref)
		return false
	}
	wasEmpty := len(q.segs) == 0
	run := s.Ref != q.last
	q.last = s.Ref
	q.segs = append(q.segs, s)
	p := q.pending.Add(int64(s.Len))
	runs := q.runs.Load()
	if run {
		runs = q.runs.Add(1)
	}
	full := p >= q.limit || (q.maxRuns > 0 && runs >= q.maxRuns)
	if full {
		// Under the lock, so that a consumer finding the queue empty
		// afterwards sees the pause and lifts it (see Take).
		q.paused.Store(true)
	}
	if wasEmpty {
		q.wakeLocked()
	}
	q.mu.Unlock()
	if !full {
		return false
	}
	// Done does not take the lock: the consumer may have drained between
	// Add and Store without seeing paused. Look again so that the producer
	// is never paused for nothing.
	if q.drained() && q.paused.CompareAndSwap(true, false) {
		return false
	}
	return true
}

// drained reports whether a paused producer may go on: the queued bytes
// fell to half the limit and the runs to half their bound.
func (q *Queue) drained() bool {
	return q.pending.Load() <= q.low && (q.maxRuns == 0 || q.runs.Load() <= q.maxRuns/2)
}

// Finish ends the stream after the segments already queued: err nil means
// io.EOF. Only the first call counts. Segments pushed later are given back.
func (q *Queue) Finish(err error) {
	if err == nil {
		err = io.EOF
	}
	q.mu.Lock()
	if q.end == nil {
		q.end = err
	}
	q.wakeLocked()
	q.mu.Unlock()
}

// SetDeadline sets the time after which a waiting Take returns
// os.ErrDeadlineExceeded; the zero time means no deadline. A Take already
// waiting sees the new deadline at once.
func (q *Queue) SetDeadline(t time.Time) {
	q.mu.Lock()
	q.deadline = t
	q.wakeLocked()
	q.mu.Unlock()
}

// Take appends every queued segment to dst and returns it; the caller (the
// consumer) then owns their references and gives each back with Done. When
// nothing is queued it returns, with dst unchanged: the end-of-stream error
// from Finish, ErrClosed after Close, ErrWouldBlock if nonBlocking is set;
// otherwise it waits for a push, the end of the stream, ctx (which may be
// nil) or the deadline, returning ctx.Err() or os.ErrDeadlineExceeded.
// It allocates only when dst must grow.
func (q *Queue) Take(ctx context.Context, dst []Segment, nonBlocking bool) ([]Segment, error) {
	for {
		q.mu.Lock()
		if len(q.segs) > 0 {
			dst = append(dst, q.segs...)
			clear(q.segs)
			q.segs = q.segs[:0]
			q.mu.Unlock()
			return dst, nil
		}
		end, closed, deadline := q.end, q.closed, q.deadline
		nudged := q.nudged && !nonBlocking
		if nudged {
			q.nudged = false
		}
		// The consumer needs more than it holds: a paused producer must go
		// on, or a request that fits the limit but straddles a partly
		// consumed segment would wait forever. Read under the lock that
		// Push sets paused under, so no pause slips in unseen.
		lift := end == nil && !closed && q.paused.CompareAndSwap(true, false)
		var notify chan struct{}
		if !nonBlocking {
			// Made under the lock the producers wake under, so no wake-up
			// is missed between this look and the wait.
			if q.notify == nil {
				q.notify = make(chan struct{}, 1)
			}
			notify = q.notify
		}
		q.mu.Unlock()
		switch {
		case closed:
			return dst, ErrClosed
		case end != nil:
			return dst, end
		}
		if lift && q.onResume != nil {
			q.onResume()
		}
		if nonBlocking {
			return dst, ErrWouldBlock
		}
		if nudged {
			return dst, ErrNudged
		}
		if ctx == nil && deadline.IsZero() {
			// The common wait, kept shallow: a goroutine parked here fits
			// in the smallest stack, where the select below would not.
			<-notify
			continue
		}
		if err := q.wait(ctx, deadline, notify); err != nil {
			return dst, err
		}
	}
}

// Poll appends every queued segment to dst, like Take, but never waits,
// returns no error and leaves a pause in place: it is for a consumer that
// only asks what has arrived (a Buffered count), not for more.
func (q *Queue) Poll(dst []Segment) []Segment {
	q.mu.Lock()
	dst = append(dst, q.segs...)
	clear(q.segs)
	q.segs = q.segs[:0]
	q.mu.Unlock()
	return dst
}

// wait blocks until a wake-up, ctx is done or the deadline passes.
func (q *Queue) wait(ctx context.Context, deadline time.Time, notify <-chan struct{}) error {
	var done <-chan struct{}
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		done = ctx.Done()
	}
	var expired <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		if q.timer == nil {
			q.timer = time.NewTimer(d)
		} else {
			q.timer.Reset(d)
		}
		defer q.timer.Stop()
		expired = q.timer.C
	}
	select {
	case <-notify:
		return nil
	case <-done:
		return ctx.Err()
	case <-expired:
		return os.ErrDeadlineExceeded
	}
}

// wakeLocked tells a waiting consumer to look again; mu is held.
func (q *Queue) wakeLocked() {
	if q.notify != nil {
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}
}

// Done gives back a segment the consumer has finished with: its bytes leave
// the pending count (which may call Config.OnResume) and its reference is
// released (through Config.OnRelease when set).
func (q *Queue) Done(s Segment) {
	p := q.pending.Add(-int64(s.Len))
	// Segments come back in the order they were pushed, so a segment
	// started a run when its block differs from the one given back before.
	if k := packRef(s.Ref); q.lastDone.Swap(k) != k {
		q.runs.Add(-1)
	}
	q.Release(s.Ref)
	// Look at pending again: since Add, the producer may have filled up and
	// paused anew, and that pause is not this give-back's to lift.
	if p <= q.low && q.paused.Load() && q.drained() &&
		q.paused.CompareAndSwap(true, false) && q.onResume != nil {
		q.onResume()
	}
}

// Release gives back one block reference without touching the pending
// count: for references the consumer added itself (views it retained past a
// callback). It goes through Config.OnRelease when set, else Arena.Release.
// Safe for concurrent use.
func (q *Queue) Release(r arena.Ref) {
	if q.onRelease != nil {
		q.onRelease(r)
		return
	}
	q.a.Release(r)
}

// Close is the consumer's end: every queued segment is given back, a waiting
// Take returns ErrClosed, and later pushes give their segment back at once
// and ask the producer to pause. Segments the consumer has taken are still its
// own to give back with Done. Close is idempotent.
func (q *Queue) Close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	segs := q.segs
	q.segs = nil
	q.wakeLocked()
	q.mu.Unlock()
	for _, s := range segs {
		q.Done(s)
	}
}

// Closed reports whether the consumer has closed the queue.
func (q *Queue) Closed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// packRef packs a reference into one word (the zero Ref packs to 0, like
// the first push's q.last).
func packRef(r arena.Ref) uint64 { return uint64(r.ID())<<32 | uint64(r.Gen()) }

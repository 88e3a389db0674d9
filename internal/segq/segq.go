package segq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
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
	// ErrPark is returned by [Queue.TakeOrPark] when the consumer must wait:
	// it calls [Queue.Park], then takes again. Nothing was taken.
	ErrPark = errors.New("zcio/segq: park")
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
	// MaxBlocks bounds the runs of segments (consecutive segments in one
	// block), and so about
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
	// MustNotWait, when set, is asked by every Take and TakeOrPark that may
	// wait: true means the consumer's goroutine must not (it is an engine's
	// loop, which every connection of the engine waits on), and the call
	// is made non-blocking: ErrWouldBlock where it would have waited. It
	// must be cheap and must not block.
	MustNotWait func() bool
}

// Queue is one connection's FIFO of segments: one producer goroutine pushes,
// one consumer goroutine takes. Push, Finish, Pending, SetDeadline and
// Release are safe to call from any goroutine; Take, TakeOrPark, Park,
// Done and Close belong to the consumer.
type Queue struct {
	sh     *Shared
	resume Resumer // nil: nobody to tell

	pending  atomic.Int64  // bytes pushed and not yet given back
	lastDone atomic.Uint64 // block of the last segment given back, packed
	last     uint64        // block of the last segment pushed, packed; 0: none yet (under mu)
	rs       runState      // runs pushed and not yet given back; Push told the producer to pause
	mu       sync.Mutex

	// Under mu. The fields are ordered, and the flags packed, so that a
	// Queue takes 96 bytes: it is part of every idle connection's cost.
	flags   uint8     // qClosed, qRecycle, qEnded, qNudged
	waiting uint8     // how the consumer waits, if it does (waitCond, waitChan)
	segs    []Segment // queued, oldest first
	// w is what only a consumer that waits, or a queue's end, needs: made
	// by PrepareWait, the first wait, SetDeadline or Finish.
	w *waits
}

// runState is a Queue's count of runs pushed and not yet given back (the
// high 31 bits, signed) and whether Push told the producer to pause (the
// low bit), in one word: updated without the queue's lock. The count moves
// in steps of 2, so no carry or borrow of it ever reaches the pause bit,
// even when it goes below zero (Close gives the queued segments back before
// the consumer gives back those it holds).
type runState struct{ v atomic.Uint32 }

const pausedBit = 1

func (r *runState) runs() int32 { return int32(r.v.Load()) >> 1 }

// add adds d to the run count and returns the new count.
func (r *runState) add(d int32) int32 { return int32(r.v.Add(uint32(d)<<1)) >> 1 }

func (r *runState) pause()       { r.v.Or(pausedBit) }
func (r *runState) paused() bool { return r.v.Load()&pausedBit != 0 }

// lift clears the pause and reports whether it was set (and so whether
// this caller is the one to tell the producer).
func (r *runState) lift() bool { return r.v.And(^uint32(pausedBit))&pausedBit != 0 }

// Queue.flags.
const (
	qClosed  uint8 = 1 << iota // Close was called
	qRecycle                   // Recycle: segs goes back to sh.spare when drained
	qEnded                     // Finish was called: w.x.end says how
	qNudged                    // Nudge was called; the next blocking Take says so
)

// How a consumer waits (Queue.waiting).
const (
	waitCond uint8 = 1 + iota // in w.cond.Wait
	waitChan                  // in a select on w.x.notify
)

// waits is the part of a Queue that waits need. A blocking consumer makes
// it before its first wait (PrepareWait), and a queue consumed on its
// producer's goroutine (handler mode) never does until its end.
type waits struct {
	// cond (L is the queue's mu) is where a consumer waits with no
	// deadline and no context: the shallowest wait (the goroutine parked
	// there fits in the smallest stack).
	cond sync.Cond
	// x is what even most waiting queues never need until their end: the
	// end of stream, and the state of waits with a deadline or a context.
	// Made by Finish, SetDeadline or the first such wait.
	x *rare
}

// rare is the part of a Queue that Finish, deadlines and contexts need.
type rare struct {
	end      error // set by Finish (ended)
	deadline time.Time
	notify   chan struct{} // capacity 1: "look again"
	timer    *time.Timer   // consumer only
}

// Resumer is told that a paused producer may go on (see Config.OnResume).
type Resumer interface{ Resume() }

// resumeFunc adapts a func to Resumer; a func is one word, so the
// conversion allocates nothing.
type resumeFunc func()

func (f resumeFunc) Resume() { f() }

// Shared is the part of a queue's configuration that many queues share
// (every connection of one engine): made once by NewShared.
type Shared struct {
	a       *arena.Arena
	limit   int64
	low     int64
	maxRuns int32
	spill   *Spiller
	release func(arena.Ref) // Config.OnRelease, else the arena's Release
	noWait  func() bool     // Config.MustNotWait
	// spare holds segment arrays no queue or consumer holds: those of
	// drained queues that recycle them (Queue.Recycle), and those consumers
	// that wait hand back (Queue.Spare). Push takes one for a queue that
	// has none. Under spareMu.
	spare [][]Segment
	// views holds the arrays consumers that wait hand back (Queue.Spare)
	// of their scratch for callbacks' views (a Reader's). Under spareMu.
	views [][][]byte
	// spareFull, viewsFull: a consumer found that list full and dropped
	// its array; the producer grows the list (getSpare). Under spareMu.
	spareFull, viewsFull bool
	spareMu              sync.Mutex
}

// maxSpare bounds the spare segment arrays a Shared keeps.
const maxSpare = 4096

// NewShared checks cfg and returns its shared part (cfg.OnResume, which is
// each queue's own, is left out). It panics if cfg.Arena is nil.
func NewShared(cfg Config) *Shared {
	if cfg.Arena == nil {
		panic("zcio/segq: config has no arena")
	}
	limit := int64(cfg.Limit)
	if limit <= 0 {
		limit = DefaultLimit
	}
	release := cfg.OnRelease
	if release == nil {
		release = cfg.Arena.Release
	}
	return &Shared{
		a:       cfg.Arena,
		limit:   limit,
		low:     limit / 2,
		maxRuns: int32(min(max(cfg.MaxBlocks, 0), math.MaxInt32)),
		spill:   cfg.Spiller,
		release: release,
		noWait:  cfg.MustNotWait,
	}
}

// New returns an empty queue. It panics if cfg.Arena is nil.
func New(cfg Config) *Queue {
	q := new(Queue)
	var r Resumer
	if cfg.OnResume != nil {
		r = resumeFunc(cfg.OnResume)
	}
	q.Init(NewShared(cfg), r)
	return q
}

// Init makes q, a zero Queue (one embedded in a larger object, say), an
// empty queue configured by sh that tells r (nil: nobody) when a paused
// producer may go on. It must be called once, before any other method.
func (q *Queue) Init(sh *Shared, r Resumer) {
	q.sh, q.resume = sh, r
}

// Recycle is for a queue whose consumer runs on its producer's goroutine (a
// handler on an engine loop): whenever the consumer drains the queue, its
// segment array goes back to the Shared's spares, and Push takes one from
// there, so that an idle queue holds no array and a busy one allocates
// none. Call it once, before any Push. (A consumer on a goroutine of its
// own gets the same with Spare.)
func (q *Queue) Recycle() {
	q.mu.Lock()
	q.flags |= qRecycle
	q.mu.Unlock()
}

// TrimSpare drops all but keep of the spare segment arrays and of the spare
// views arrays (Recycle, Spare), for the garbage collector: after a burst
// they number as many as the queues that were non-empty at once. Call it
// when the queues are idle (an engine's idle trim); any goroutine.
func (sh *Shared) TrimSpare(keep int) {
	sh.spareMu.Lock()
	defer sh.spareMu.Unlock()
	keep = max(keep, 0)
	sh.spare = trimList(sh.spare, keep)
	sh.views = trimList(sh.views, keep)
}

// trimList keeps the first keep entries of list, in a list of their own
// size (getSpare may have made its capacity larger than its length).
func trimList[T any](list []T, keep int) []T {
	if cap(list) <= keep {
		return list
	}
	n := min(len(list), keep)
	if n == 0 {
		return nil
	}
	return append([]T(nil), list[:n]...)
}

// drainedLocked empties q.segs after a take; mu is held. Not inlined: take's
// frame stays small (see TestBlockedReaderStackIsSmall).
//
//go:noinline
func (q *Queue) drainedLocked() {
	clear(q.segs)
	if q.flags&qRecycle == 0 {
		q.segs = q.segs[:0]
		return
	}
	q.sh.putSpare(q.segs)
	q.segs = nil
}

// putSpare keeps the empty array segs (of any length: its entries must be
// cleared) for a later Push, up to maxSpare of them.
func (sh *Shared) putSpare(segs []Segment) {
	if cap(segs) == 0 {
		return
	}
	sh.spareMu.Lock()
	if len(sh.spare) < maxSpare {
		sh.spare = append(sh.spare, segs[:0])
	}
	sh.spareMu.Unlock()
}

// putSpareLocked is putSpare for a consumer on a goroutine of its own, with
// spareMu held: it never grows the list (an array that does not fit goes to
// the garbage collector). Growing it would run the allocator deep in a
// parking Reader's stack and move its goroutine to a larger stack for good
// (TestBlockedReaderStackIsSmall); the producer grows the lists instead
// (getSpare).
func (sh *Shared) putSpareLocked(segs []Segment) {
	if cap(segs) > 0 {
		putInRoom(&sh.spare, segs[:0], &sh.spareFull)
	}
}

// putInRoom appends v to *list if it has room, else sets *full.
func putInRoom[T any](list *[]T, v T, full *bool) {
	if len(*list) < cap(*list) {
		*list = append(*list, v)
	} else {
		*full = true
	}
}

// popLast removes and returns the last entry of *list, or the zero T.
func popLast[T any](list *[]T) (v T) {
	l := *list
	if len(l) == 0 {
		return v
	}
	v = l[len(l)-1]
	clear(l[len(l)-1:])
	*list = l[:len(l)-1]
	return v
}

// grow returns list with room for about twice as many entries (at least 16,
// at most maxSpare), its entries kept.
func grow[T any](list []T) []T {
	if c := min(maxSpare, max(16, 2*cap(list))); c > cap(list) {
		return append(make([]T, 0, c), list...)
	}
	return list
}

// getSpare returns a spare array, or nil when there is none. It runs on the
// producer's goroutine, which grows a list of spares that a consumer found
// full (see putSpareLocked).
func (sh *Shared) getSpare() []Segment {
	sh.spareMu.Lock()
	defer sh.spareMu.Unlock()
	if sh.spareFull {
		sh.spareFull = false
		sh.spare = grow(sh.spare)
	}
	if sh.viewsFull {
		sh.viewsFull = false
		sh.views = grow(sh.views)
	}
	return popLast(&sh.spare)
}

// Spare is for a consumer about to wait on a queue whose producer runs on
// another goroutine (a blocking Reader): it gives its own segment array,
// segs, which must hold no segment, and the queue's while the queue is
// empty, to the Shared's spares, so that a connection that waits holds no
// array; Push takes one back. views, the consumer's scratch for callbacks'
// views (cleared here), goes to the spares too; Views takes one back. A
// queue that recycles keeps its own array to Recycle.
//
// Take and TakeOrPark, given an empty dst, hand the consumer the queue's
// array itself instead of copying its segments out (the queue keeps dst's),
// so that a queue and its consumer hold at most two arrays between them.
func (q *Queue) Spare(segs []Segment, views [][]byte) {
	var own []Segment
	q.mu.Lock()
	if q.flags&qRecycle == 0 && len(q.segs) == 0 {
		own, q.segs = q.segs, nil
	}
	q.mu.Unlock()
	clear(views[:cap(views)])
	sh := q.sh
	sh.spareMu.Lock()
	sh.putSpareLocked(segs)
	sh.putSpareLocked(own)
	if cap(views) > 0 {
		putInRoom(&sh.views, views[:0], &sh.viewsFull)
	}
	sh.spareMu.Unlock()
}

// Views returns a spare array for a consumer's views (see Spare), or nil.
func (q *Queue) Views() [][]byte {
	sh := q.sh
	sh.spareMu.Lock()
	defer sh.spareMu.Unlock()
	return popLast(&sh.views)
}

// moveLocked appends every queued segment to dst and empties q.segs; mu is
// held. An empty dst of a queue that does not recycle trades arrays with
// q.segs instead (see Spare). Not inlined, like drainedLocked.
//
//go:noinline
func (q *Queue) moveLocked(dst []Segment) []Segment {
	if len(dst) == 0 && q.flags&qRecycle == 0 {
		out := q.segs
		q.segs = dst[:0]
		return out
	}
	dst = append(dst, q.segs...)
	q.drainedLocked()
	return dst
}

// Arena returns the arena that owns the queued blocks.
func (q *Queue) Arena() *arena.Arena { return q.sh.a }

// Limit returns the cap on queued bytes.
func (q *Queue) Limit() int { return int(q.sh.limit) }

// Pending returns the bytes pushed and not yet given back by the consumer
// (queued, or taken and not yet consumed).
func (q *Queue) Pending() int { return int(q.pending.Load()) }

// WouldPause reports whether pushing n more bytes in a new run would fill
// the queue (and make Push ask the producer to pause). A producer whose
// consumer runs on its own goroutine (handler mode) lets it consume first.
func (q *Queue) WouldPause(n int) bool {
	sh := q.sh
	return q.pending.Load()+int64(n) >= sh.limit || (sh.maxRuns > 0 && q.rs.runs()+1 >= sh.maxRuns)
}

// Push appends s, whose block reference the queue now owns. It returns true
// when the producer should stop receiving for this connection until
// Config.OnResume is called: the queued bytes reached the limit (now or at
// an earlier push whose pause still stands), or the consumer has closed the
// queue (then s was given back at once). False means no pause stands: a
// producer that got true for an earlier segment of the same receive may go
// on, and no OnResume will come for that pause. An empty
// segment is given back at once. Push panics if s reaches past the end of its
// block: that is a bug in the producer. It never blocks, and allocates only
// when the queue outgrows its largest backlog so far.
func (q *Queue) Push(s Segment) (pause bool) {
	sh := q.sh
	if int(s.Off)+int(s.Len) > sh.a.BlockSize() {
		panic(fmt.Sprintf("zcio/segq: push %v: bytes [%d, %d) outside a %d-byte block", s.Ref, s.Off, s.Off+s.Len, sh.a.BlockSize()))
	}
	q.mu.Lock()
	if q.flags&(qClosed|qEnded) != 0 {
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
	if cap(q.segs) == 0 {
		q.segs = q.sh.getSpare()
	}
	k := packRef(s.Ref)
	run := k != q.last
	q.last = k
	q.segs = append(q.segs, s)
	p := q.pending.Add(int64(s.Len))
	runs := q.rs.runs()
	if run {
		runs = q.rs.add(1)
	}
	full := p >= sh.limit || (sh.maxRuns > 0 && runs >= sh.maxRuns)
	if full {
		// Under the lock, so that a consumer finding the queue empty
		// afterwards sees the pause and lifts it (see Take).
		q.rs.pause()
	}
	if wasEmpty {
		q.wakeLocked()
	}
	q.mu.Unlock()
	if !full {
		// Not full, but a pause an earlier push asked for may still stand
		// (the consumer has not drained to half yet): say so, so that an
		// engine delivering one receive as several segments, which follows
		// the latest answer, does not resume before OnResume.
		return q.rs.paused()
	}
	// Done does not take the lock: the consumer may have drained between
	// Add and Store without seeing paused. Look again so that the producer
	// is never paused for nothing.
	if q.drained() && q.rs.lift() {
		return false
	}
	return true
}

// Want is for a consumer that holds bytes it cannot use yet and takes no
// more now: a handler that looked at what arrived (Poll) and returned to
// wait for the rest. Like a Take that finds the queue empty, it lifts a
// pause that stands, so that the rest can come (calling Config.OnResume),
// unless segments are still queued (the consumer has not seen them yet).
// The caller checks that it holds less than the limit (it may ask for up
// to that much). Holding blocks past their bound (Crowded) lifts nothing
// for long: the next push pauses again, so the consumer should compact what
// it holds first. It reports whether it lifted a pause.
func (q *Queue) Want() bool {
	q.mu.Lock()
	lift := len(q.segs) == 0 && q.flags&(qClosed|qEnded) == 0 && q.rs.lift()
	q.mu.Unlock()
	if lift && q.resume != nil {
		q.resume.Resume()
	}
	return lift
}

// Paused reports whether a pause stands: the producer was asked to stop and
// OnResume has not been called since.
func (q *Queue) Paused() bool { return q.rs.paused() }

// Runs returns how many runs (segments in one block, one after the other)
// the segments pushed and not given back make: about the blocks they pin.
func (q *Queue) Runs() int { return int(q.rs.runs()) }

// Crowded reports whether the segments pushed and not given back span as
// many blocks as the queue allows (Config.MaxBlocks), so that the next push
// in a new block pauses the producer.
func (q *Queue) Crowded() bool {
	return q.sh.maxRuns > 0 && q.rs.runs() >= q.sh.maxRuns
}

// drained reports whether a paused producer may go on: the queued bytes
// fell to half the limit and the runs to half their bound.
func (q *Queue) drained() bool {
	sh := q.sh
	return q.pending.Load() <= sh.low && (sh.maxRuns == 0 || q.rs.runs() <= sh.maxRuns/2)
}

// Finish ends the stream after the segments already queued: err nil means
// io.EOF. Only the first call counts. Segments pushed later are given back.
func (q *Queue) Finish(err error) {
	if err == nil {
		err = io.EOF
	}
	q.mu.Lock()
	if q.flags&qEnded == 0 {
		q.flags |= qEnded
		q.rareLocked().end = err
	}
	q.wakeLocked()
	q.mu.Unlock()
}

// SetDeadline sets the time after which a waiting Take returns
// os.ErrDeadlineExceeded; the zero time means no deadline. A Take already
// waiting sees the new deadline at once.
func (q *Queue) SetDeadline(t time.Time) {
	q.mu.Lock()
	if q.w != nil && q.w.x != nil || !t.IsZero() {
		q.rareLocked().deadline = t
	}
	q.wakeLocked()
	q.mu.Unlock()
}

// Take appends every queued segment to dst and returns it; the caller (the
// consumer) then owns their references and gives each back with Done. When
// nothing is queued it returns, with dst unchanged: the end-of-stream error
// from Finish, ErrClosed after Close, ErrWouldBlock if nonBlocking is set;
// otherwise it waits for a push, the end of the stream, ctx (which may be
// nil) or the deadline, returning ctx.Err() or os.ErrDeadlineExceeded.
// It allocates only when dst must grow. An empty dst of a queue that does
// not recycle is traded, not appended to: the queue's own array is
// returned and the queue keeps dst's, so the caller must use the returned
// slice and no longer dst (see Spare).
func (q *Queue) Take(ctx context.Context, dst []Segment, nonBlocking bool) ([]Segment, error) {
	nonBlocking = nonBlocking || q.mustNotWait()
	for {
		var err error
		dst, err = q.take(ctx, dst, nonBlocking)
		if err != ErrPark {
			return dst, err
		}
		q.Park()
	}
}

// TakeOrPark is Take, except that where Take would wait with no deadline
// and no context it returns ErrPark instead, with nothing taken: the
// consumer then calls Park, which returns after a wake-up, and takes
// again. The consumer so waits at a shallower point of its stack (a
// goroutine's starting stack size is the runtime's average of what parked
// goroutines use).
func (q *Queue) TakeOrPark(ctx context.Context, dst []Segment, nonBlocking bool) ([]Segment, error) {
	return q.take(ctx, dst, nonBlocking || q.mustNotWait())
}

// mustNotWait asks Config.MustNotWait, before take: asked there, at the
// bottom of a consumer's wait, its calls (a gettid(2)) would deepen the
// stack a parked goroutine keeps, and grow some past their smallest size.
func (q *Queue) mustNotWait() bool { return q.sh.noWait != nil && q.sh.noWait() }

// PrepareWait makes now what a consumer's first wait with no deadline and
// no context needs, instead of at that wait, deep in the consumer's stack
// (an allocation there can take the allocator's slow path and outgrow a
// goroutine's starting stack). For a consumer that will block.
func (q *Queue) PrepareWait() {
	q.mu.Lock()
	q.waitsLocked()
	q.mu.Unlock()
}

// Park waits for the wake-up a TakeOrPark that returned ErrPark asked for.
// A wake-up that came in between makes it return at once.
func (q *Queue) Park() {
	q.mu.Lock()
	for q.waiting == waitCond {
		q.w.cond.Wait()
	}
	q.mu.Unlock()
}

// take is TakeOrPark.
func (q *Queue) take(ctx context.Context, dst []Segment, nonBlocking bool) ([]Segment, error) {
	for {
		q.mu.Lock()
		if len(q.segs) > 0 {
			dst = q.moveLocked(dst)
			q.mu.Unlock()
			return dst, nil
		}
		closed := q.flags&qClosed != 0
		var end error
		if q.flags&qEnded != 0 {
			end = q.w.x.end
		}
		// The deadline itself is read by wait: few locals here keep the
		// stack of a goroutine reading in a loop in the smallest size.
		timed := ctx != nil || (q.w != nil && q.w.x != nil && !q.w.x.deadline.IsZero())
		nudged := q.flags&qNudged != 0 && !nonBlocking
		if nudged {
			q.flags &^= qNudged
		}
		// The consumer needs more than it holds: a paused producer must go
		// on, or a request that fits the limit but straddles a partly
		// consumed segment would wait forever. Read under the lock that
		// Push sets paused under, so no pause slips in unseen.
		lift := end == nil && !closed && q.rs.lift()
		// The consumer says how it will wait under the lock the producers
		// wake under, so no wake-up is missed between this look and the
		// wait. Nothing waits when the look ends the call.
		plain := !timed
		waits := !nonBlocking && !nudged && !closed && end == nil
		var notify chan struct{}
		switch {
		case !waits:
		case plain:
			q.waiting = waitCond
			q.waitsLocked()
		default:
			q.waiting = waitChan
			x := q.rareLocked()
			if x.notify == nil {
				x.notify = make(chan struct{}, 1)
			}
			notify = x.notify
		}
		q.mu.Unlock()
		switch {
		case closed:
			return dst, ErrClosed
		case end != nil:
			return dst, end
		}
		if lift && q.resume != nil {
			q.resume.Resume()
		}
		if nonBlocking {
			return dst, ErrWouldBlock
		}
		if nudged {
			return dst, ErrNudged
		}
		if plain {
			// The common wait: the caller parks (see TakeOrPark).
			return dst, ErrPark
		}
		if err := q.wait(ctx, notify); err != nil {
			q.mu.Lock()
			if q.waiting == waitChan {
				q.waiting = 0
			}
			q.mu.Unlock()
			return dst, err
		}
	}
}

// Poll appends every queued segment to dst, like Take (an empty dst is
// traded the same way), but never waits, returns no error and leaves a
// pause in place: it is for a consumer that only asks what has arrived (a
// Buffered count), not for more.
func (q *Queue) Poll(dst []Segment) []Segment {
	q.mu.Lock()
	if len(q.segs) > 0 {
		dst = q.moveLocked(dst)
	}
	q.mu.Unlock()
	return dst
}

// wait blocks until a wake-up, ctx is done or the deadline passes.
func (q *Queue) wait(ctx context.Context, notify <-chan struct{}) error {
	q.mu.Lock()
	x := q.w.x // made by take under mu before this wait
	deadline := x.deadline
	q.mu.Unlock()
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
		if x.timer == nil {
			x.timer = time.NewTimer(d)
		} else {
			x.timer.Reset(d)
		}
		defer x.timer.Stop()
		expired = x.timer.C
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
	switch q.waiting {
	case waitCond:
		q.waiting = 0
		q.w.cond.Signal()
	case waitChan:
		q.waiting = 0
		select {
		case q.w.x.notify <- struct{}{}:
		default:
		}
	}
}

// waitsLocked returns q.w, making it on first use; mu is held.
func (q *Queue) waitsLocked() *waits {
	if q.w == nil {
		q.w = new(waits)
		q.w.cond.L = &q.mu
	}
	return q.w
}

// rareLocked returns q.w.x, making both on first use; mu is held.
func (q *Queue) rareLocked() *rare {
	w := q.waitsLocked()
	if w.x == nil {
		w.x = new(rare)
	}
	return w.x
}

// Done gives back a segment the consumer has finished with: its bytes leave
// the pending count (which may call Config.OnResume) and its reference is
// released (through Config.OnRelease when set).
func (q *Queue) Done(s Segment) {
	p := q.pending.Add(-int64(s.Len))
	// Segments come back in the order they were pushed, so a segment
	// started a run when its block differs from the one given back before.
	if k := packRef(s.Ref); q.lastDone.Swap(k) != k {
		q.rs.add(-1)
	}
	q.Release(s.Ref)
	// Look at pending again: since Add, the producer may have filled up and
	// paused anew, and that pause is not this give-back's to lift.
	if p <= q.sh.low && q.rs.paused() && q.drained() &&
		q.rs.lift() && q.resume != nil {
		q.resume.Resume()
	}
}

// Release gives back one block reference without touching the pending
// count: for references the consumer added itself (views it retained past a
// callback). It goes through Config.OnRelease when set, else Arena.Release.
// Safe for concurrent use.
func (q *Queue) Release(r arena.Ref) {
	q.sh.release(r)
}

// Close is the consumer's end: every queued segment is given back, a waiting
// Take returns ErrClosed, and later pushes give their segment back at once
// and ask the producer to pause. Segments the consumer has taken are still its
// own to give back with Done. Close is idempotent.
func (q *Queue) Close() {
	q.mu.Lock()
	if q.flags&qClosed != 0 {
		q.mu.Unlock()
		return
	}
	q.flags |= qClosed
	segs := q.segs
	q.segs = nil
	q.wakeLocked()
	q.mu.Unlock()
	for _, s := range segs {
		q.Done(s)
	}
}

// Releaser returns the function Release gives references back through
// (Config.OnRelease, else the arena's Release): the same func value for
// every queue of one Shared, so taking it allocates nothing.
func (q *Queue) Releaser() func(arena.Ref) { return q.sh.release }

// Closed reports whether the consumer has closed the queue.
func (q *Queue) Closed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.flags&qClosed != 0
}

// packRef packs a reference into one word, never 0: the zero word means "no
// block yet" in q.last and q.lastDone, and the first block of a fresh arena
// (id 0, generation 0) must still count as a run.
func packRef(r arena.Ref) uint64 { return 1<<63 | uint64(r.ID())<<32 | uint64(r.Gen()) }

//go:build linux

package ring

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/loopctl"
	"github.com/zcio/zcio/internal/seam"
	"github.com/zcio/zcio/internal/slots"
	"github.com/zcio/zcio/internal/unix"
)

// User data of the engine's requests: the kind in the top byte, then a
// 24-bit connection generation and a 32-bit slot.
const (
	udRecv   = 1
	udWake   = 2
	udCancel = 3
	udNop    = 4
)

func userData(kind uint8, gen, slot uint32) uint64 {
	return uint64(kind)<<56 | uint64(gen&0xffffff)<<32 | uint64(slot)
}

func splitUserData(ud uint64) (kind uint8, gen, slot uint32) {
	return uint8(ud >> 56), uint32(ud>>32) & 0xffffff, uint32(ud)
}

// starvedPoll is how often a loop with connections waiting for blocks
// looks at the arena again.
const starvedPoll = 2 * time.Millisecond

// engineGroup is the buffer group id of an engine's buffer ring (one per
// ring, so any id works).
const engineGroup = 1

// Connection states, owned by the loop.
const (
	cOpening  = iota // attached; the loop has not armed it yet
	cArmed           // a multishot receive is (or is about to be) armed
	cPaused          // its sink holds enough; the receive is cancelled
	cStarved         // the buffer ring ran dry (ENOBUFS); waits for blocks
	cEnded           // end of stream or error delivered
	cDetached        // out of the table; Detached delivered
)

// Engine is one io_uring event loop: a goroutine on a locked OS thread that
// owns one ring (SINGLE_ISSUER and DEFER_TASKRUN where the kernel has them)
// and one buffer ring over every block of its arena, and keeps a multishot
// receive armed on each attached socket. The kernel picks a free block for
// each receive; the loop hands each completion to the connection's [Sink]
// as a segment. Its methods are safe for concurrent use.
//
// The engine uses its arena exclusively: it keeps a window of free blocks
// published to the kernel (see refill), and a block comes back to the
// buffer ring once its last reference is released.
type Engine struct {
	cfg   EngineConfig
	a     *arena.Arena
	efd   int // eventfd other goroutines write to wake the loop
	slots slots.Table[econn]
	gen   atomic.Uint32
	ctl   loopctl.Control[ecommand]

	hungry    atomic.Bool           // the buffer ring is low: wake the loop when blocks are released
	failed    atomic.Pointer[error] // why the ring failed (ErrEngineFailed wrapped); nil while it works
	faultNext atomic.Pointer[error] // set by tests only (enterFault)
	stats     engineStats
	done      chan struct{}

	// Owned by the loop goroutine.
	r            *Ring
	br           *BufRing
	cqes         []CQE
	later        []CQE // completions sqe reaped to make room, handled after the batch in progress
	ready        []*econn
	quiet        []*econn         // receives that went back to waiting after data (see checkQuiet)
	quietAt      time.Time        // when the loop next looks at them (checkQuiet)
	ends         map[*econn]error // ends checkQuiet found, delivered at the cancelled receive's last completion
	idleFor      time.Duration    // waited with nothing to do since the last work, toward the idle trim
	quietMore    bool             // the last look ran out of peeks: the next one goes on with the overdue
	starved      []*econn
	starvedSpare []*econn
	inRing       int       // blocks published to the kernel and not yet handed out
	window       int       // how many blocks refill keeps published (grows on ENOBUFS)
	trimDue      bool      // work was done since the last trim (loop only)
	deepDue      bool      // an idle trim ran and nothing happened since (loop only)
	armCap       uint32    // bytes one arming of a multishot receive may take (0: no cap)
	bundle       bool      // receives are bundles (IORING_RECVSEND_BUNDLE, Linux 6.10)
	partsAvg     int       // blocks per receive, a moving average in sixteenths (loop only)
	nudged       time.Time // when the connections were last told the ring is dry
	readsDue     bool      // a starved connection may be due a read of the loop's own (serveStarved)
	fatal        error     // an error the ring cannot recover from (loop only; see fail)
	scratch      SQE       // what sqe hands out once the ring has failed: never submitted
}

// EngineConfig configures an [Engine].
type EngineConfig struct {
	// Arena provides the blocks the kernel receives into. Required; the
	// engine uses it alone and must be closed before it.
	Arena *arena.Arena
	// Entries is the submission queue size (default 256); the completion
	// queue is CQFactor times larger.
	Entries uint32
	// MaxConns bounds the connections attached at once. Zero means 1<<20.
	MaxConns int
	// Reserve is how many blocks the engine leaves free in the arena for
	// spills (segq.Spiller) instead of handing them to the kernel.
	Reserve int
	// IdleTrim is how long the loop must see nothing at all (no completion,
	// no command) after some work before it gives the pages of the arena's
	// cold free blocks back to the kernel (arena.Trim, keeping TrimKeep
	// blocks; those too after DeepTrimFactor×IdleTrim more of quiet). Zero
	// means DefaultIdleTrim; negative, never. Blocks in the kernel's buffer
	// ring are trimmed only where it is safe (see trimUnfilled).
	IdleTrim time.Duration
	// OnIdleTrim, when set, is called on the loop at each idle trim, after
	// the engine's own: for the caller's idle state (spare segment arrays,
	// say). It must not block.
	OnIdleTrim func()
	// ArmCap is how many bytes one arming of a connection's multishot
	// receive may take before it ends and is armed again (Linux 6.17;
	// ignored on older kernels, where an arming runs until a pause cancels
	// it or the buffer ring runs dry). It bounds how far a paused connection
	// runs on, and with it how far the kernel's autotuning grows the
	// socket's receive buffer while the engine is the slower side; each end
	// costs a completion and a re-arm. Zero means an eighth of the arena, at
	// most 1 MiB (see armCap); other values are raised to at least one block
	// and lowered to at most the arena's size (above the window, 2 MiB at
	// most, a cap no longer bounds anything). Negative values are invalid.
	ArmCap int
}

// DefaultIdleTrim is EngineConfig.IdleTrim's default.
const DefaultIdleTrim = 100 * time.Millisecond

// TrimKeep is how many free blocks an idle trim leaves resident: the ones
// the next reads take first, enough for light traffic (a message now and
// then) to find a block without page faults. They go too if the loop stays
// quiet for DeepTrimFactor times IdleTrim more. (Keeping 8 held 192 KiB
// more of two engines' arenas resident for that second: see README.md.)
const TrimKeep = 2

// DeepTrimFactor: an engine quiet for DeepTrimFactor×IdleTrim after an idle
// trim gives back the TrimKeep blocks as well, so that a server whose
// connections all went idle keeps no arena page of its own (each block
// taken again costs a page fault per page: about 6 µs per 16 KiB here).
const DeepTrimFactor = 10

type ecommand struct {
	op uint8
	c  *econn
}

const (
	eopAttach = iota + 1
	eopResume
	eopDetach
	eopShutdown
)

// econn is one attached socket, owned by the loop but for detachRq.
type econn struct {
	fd       int32 // int32 and this order: EngineConn fits 48 bytes
	slot     uint32
	gen      uint32
	state    uint8
	armed    bool  // a receive is in the kernel: its final CQE has not come
	cancel   bool  // a cancel was submitted for the armed receive
	capped   bool  // the receive armed last was capped (armCap)
	noCap    bool  // the kernel refused a capped receive on this socket: arm it uncapped
	detach   bool  // Detach was processed: finish once the receive is gone
	lists    uint8 // inReady, inQuiet, recent, overdue
	dry      uint8 // receives in a row that ended with ENOBUFS (serveStarved)
	detachRq atomic.Bool
	sink     Sink
}

// Sink receives one connection's data; see the fallback package's Sink for
// the same contract. Every method runs on the engine's loop goroutine.
type Sink interface {
	// Deliver hands over bytes [off, off+n) of block ref with one reference
	// the sink now owns. It returns true to pause the connection until
	// Resume. A receive bundle is delivered a block at a time, and the
	// latest answer counts: a false after a true means the sink lifted that
	// pause itself (its consumer drained meanwhile) and will not ask for a
	// Resume, so the connection receives again.
	Deliver(ref arena.Ref, off, n int) (pause bool)
	// Flush is called once after a batch of Deliver calls.
	Flush()
	// End reports the end of the stream: io.EOF, the receive's error,
	// ErrClosed when the engine stops, or an error wrapping
	// ErrEngineFailed and the errno when its ring failed (Engine.Err).
	// Called at most once.
	End(err error)
	// Detached: the engine no longer uses the fd.
	Detached()
}

// Opener is an optional interface of a Sink: Opened runs on the loop before
// the connection's receive is armed.
type Opener interface{ Opened() }

// Starver is an optional interface of a Sink: when the buffer ring runs dry
// the engine calls Starved on its loop for every attached connection (again
// every 20 ms while it stays dry), so that a connection holding part of an
// unfinished message can copy it out of the shared blocks (segq.Spiller).
type Starver interface{ Starved() }

// EngineStats is a snapshot of an engine's state, for tests and monitoring.
type EngineStats struct {
	InRing  int // blocks published to the kernel and not handed out
	Starved int // connections waiting for blocks (their receive ended with ENOBUFS)
	Pauses  int // times a sink paused its connection
	Rearms  int // receives re-armed after ENOBUFS
	// StarvedReads counts the reads the loop made itself, into blocks of
	// their own, for connections whose receives kept ending with ENOBUFS
	// (a dry buffer ring serves the receives armed on busy sockets first).
	StarvedReads int
	NoBufs       int // ENOBUFS completions
	Held         int // blocks the buffer ring holds (published, or partly filled in incremental mode)
	Window       int // blocks the loop keeps published when the arena has them (see refill)
	// Receives counts completions that carried bytes, and the loop's own
	// reads (StarvedReads). With bundles (Linux 6.10) one receive may fill
	// several blocks: the bytes delivered per receive show how well the
	// kernel batches.
	Receives int
	// LostEnds counts the ends of stream (or socket errors) that the loop
	// found by looking at a quiet receive before the kernel reported them
	// (see checkQuiet): ends the kernel lost (Linux 6.18 loses one now and
	// then), or, rarely, one whose report was still on its way.
	LostEnds int
}

type engineStats struct {
	inRing, starved, paused, rearms, nobufs, held, window, receives, starvedReads, lostEnds atomic.Int64
}

// Stats returns a snapshot of the engine's state, as of its loop's last
// iteration.
func (e *Engine) Stats() EngineStats {
	return EngineStats{
		InRing: int(e.stats.inRing.Load()), Starved: int(e.stats.starved.Load()), Pauses: int(e.stats.paused.Load()),
		Rearms: int(e.stats.rearms.Load()), NoBufs: int(e.stats.nobufs.Load()), Held: int(e.stats.held.Load()),
		Window: int(e.stats.window.Load()), Receives: int(e.stats.receives.Load()),
		StarvedReads: int(e.stats.starvedReads.Load()), LostEnds: int(e.stats.lostEnds.Load()),
	}
}

// ArmCap returns the bytes one arming of a multishot receive may take before
// the engine arms it again (EngineConfig.ArmCap), or 0 where the kernel has
// no such cap (before Linux 6.17).
func (e *Engine) ArmCap() int { return int(e.armCap) }

// EngineConn is an attached connection: the handle for Resume and Detach.
// It holds the engine's state of the connection, so that attaching costs
// one allocation.
type EngineConn struct {
	e *Engine
	c econn
}

// Resume is e.Resume(h) for the engine h is attached to.
func (h *EngineConn) Resume() { h.e.Resume(h) }

// Detach is e.Detach(h) for the engine h is attached to.
func (h *EngineConn) Detach() { h.e.Detach(h) }

// NewEngine starts an engine over cfg.Arena. It fails with an error
// wrapping ErrUnsupported where io_uring, buffer rings or multishot receive
// are missing.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Arena == nil {
		return nil, fmt.Errorf("zcio/ring: new engine: %w: no arena", ErrInvalidConfig)
	}
	if cfg.ArmCap < 0 {
		return nil, fmt.Errorf("zcio/ring: new engine: %w: arm cap %d", ErrInvalidConfig, cfg.ArmCap)
	}
	if f := Probe(); !f.ZeroCopyReceive() {
		err := f.Err
		if err == nil {
			err = errors.Join(f.BufRing.Err, f.MultishotRecv.Err)
		}
		if !errors.Is(err, ErrUnsupported) {
			err = fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
		return nil, fmt.Errorf("zcio/ring: new engine: %w", err)
	}
	if cfg.MaxConns <= 0 || cfg.MaxConns > slots.Max {
		cfg.MaxConns = slots.Max
	}
	if cfg.IdleTrim == 0 {
		cfg.IdleTrim = DefaultIdleTrim
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("zcio/ring: new engine: %w", os.NewSyscallError("eventfd", err))
	}
	e := &Engine{cfg: cfg, a: cfg.Arena, efd: efd, done: make(chan struct{}), cqes: make([]CQE, 256)}
	e.slots.SetLimit(cfg.MaxConns)
	e.ctl.Init(efd)
	started := make(chan error, 1)
	go e.loop(started)
	if err := <-started; err != nil {
		<-e.done
		unix.Close(efd)
		return nil, fmt.Errorf("zcio/ring: new engine: %w", err)
	}
	return e, nil
}

// Attach starts receiving on fd, a connected stream socket, and delivering
// to sink. The caller keeps owning fd and closes it only after
// sink.Detached.
func (e *Engine) Attach(fd int, sink Sink) (*EngineConn, error) {
	e.ctl.Mu.Lock()
	defer e.ctl.Mu.Unlock()
	if err := e.Err(); err != nil {
		return nil, fmt.Errorf("zcio/ring: attach fd %d: %w", fd, err)
	}
	if e.ctl.Closing() {
		return nil, fmt.Errorf("zcio/ring: attach fd %d: %w", fd, ErrClosed)
	}
	if fd < 0 || fd > math.MaxInt32 {
		return nil, fmt.Errorf("zcio/ring: attach fd %d: %w", fd, unix.EBADF)
	}
	h := &EngineConn{e: e, c: econn{fd: int32(fd), sink: sink, gen: e.gen.Add(1) & 0xffffff, state: cOpening}}
	c := &h.c
	slot, ok := e.slots.Reserve()
	if !ok {
		return nil, fmt.Errorf("zcio/ring: attach fd %d: %w (limit %d)", fd, ErrTooManyConns, e.cfg.MaxConns)
	}
	c.slot = slot // before the table publishes c: the loop reads it without the lock
	e.slots.Put(slot, c)
	e.ctl.QueueLocked(ecommand{op: eopAttach, c: c})
	return h, nil
}

// Resume arms a paused connection again. Any goroutine, any number of times.
func (e *Engine) Resume(h *EngineConn) { e.ctl.Send(ecommand{op: eopResume, c: &h.c}) }

// Detach stops receiving on a connection; the loop cancels its receive and,
// once the kernel has let go, calls the sink's Detached. Calls after the
// first do nothing.
func (e *Engine) Detach(h *EngineConn) {
	if h.c.detachRq.CompareAndSwap(false, true) {
		e.ctl.Send(ecommand{op: eopDetach, c: &h.c})
	}
}

// BlocksFreed tells the loop that blocks went back to the arena. It costs
// one atomic load unless the buffer ring is running low.
func (e *Engine) BlocksFreed() {
	if e.hungry.Load() {
		e.ctl.Wake()
	}
}

// OnLoop reports whether the caller runs on the engine's loop goroutine.
func (e *Engine) OnLoop() bool { return e.ctl.OnLoop() }

// Close stops the engine: every connection gets End(ErrClosed) unless it
// ended already, then Detached; the ring is torn down and every block goes
// back to the arena. Close waits for the loop unless called on it. It
// returns ErrClosed when called again.
//
// After the ring failed (Err), Close waits for the loop to have let go of
// everything and returns that failure.
func (e *Engine) Close() error {
	if !e.ctl.Shutdown(ecommand{op: eopShutdown}) {
		if err := e.Err(); err != nil {
			if !e.OnLoop() {
				<-e.done
			}
			return fmt.Errorf("zcio/ring: close engine: %w", err)
		}
		return fmt.Errorf("zcio/ring: close engine: %w", ErrClosed)
	}
	if !e.OnLoop() {
		<-e.done
	}
	return e.Err()
}

// Err returns nil while the engine works, and once the ring failed an
// error wrapping ErrEngineFailed and the kernel's error. From then on the
// loop ends every connection with that error and stops; Done closes when
// it has.
func (e *Engine) Err() error {
	if p := e.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Done is closed once the loop has stopped and released everything.
func (e *Engine) Done() <-chan struct{} { return e.done }

// loop owns the ring for its whole life.
func (e *Engine) loop(started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(e.done)
	e.ctl.BindLoop()
	defer e.ctl.UnbindLoop()
	if err := e.setup(); err != nil {
		started <- err
		return
	}
	started <- nil
	for {
		if len(e.quiet) > 0 && !time.Now().Before(e.quietAt) {
			e.checkQuiet(false)
		}
		e.refill()
		if e.fatal != nil { // a submit failed while refill armed
			e.failStop()
			return
		}
		var err error
		switch {
		case len(e.later) > 0:
			// Completions reaped while arming (sqe) wait to be handled:
			// do not sleep on them.
			_, err = e.r.Submit()
		case len(e.starved) > 0:
			// Blocks may come back without a wake-up (released by code
			// that does not call BlocksFreed): look again soon.
			_, err = e.r.SubmitAndWaitTimeout(1, starvedPoll)
		case e.trimDue && e.cfg.IdleTrim > 0:
			// A look at the quiet receives due sooner cuts the wait; the
			// trim still comes after IdleTrim of quiet in all (idleFor).
			wait := e.cfg.IdleTrim - e.idleFor
			if len(e.quiet) > 0 {
				wait = min(wait, e.untilQuietLook())
			}
			_, err = e.r.SubmitAndWaitTimeout(1, wait)
			if err == nil && e.r.Ready() == 0 {
				e.idleFor += wait
			}
			if e.idleFor >= e.cfg.IdleTrim {
				// Quiet since the last work: give back the pages of the
				// blocks a burst used and that are free now.
				e.a.Trim(TrimKeep)
				e.trimUnfilled()
				e.checkQuiet(true)
				if e.cfg.OnIdleTrim != nil {
					e.cfg.OnIdleTrim()
				}
				e.trimDue, e.deepDue, e.idleFor = false, true, 0
			}
		case len(e.quiet) > 0:
			// Wake up to look at the receives that went back to waiting
			// after data (checkQuiet).
			_, err = e.r.SubmitAndWaitTimeout(1, e.untilQuietLook())
		case e.deepDue:
			_, err = e.r.SubmitAndWaitTimeout(1, DeepTrimFactor*e.cfg.IdleTrim)
			if err == nil && e.r.Ready() == 0 {
				// Still quiet: the blocks kept for the next work go too.
				e.a.Trim(0)
				e.deepDue = false
			}
		default:
			_, err = e.r.SubmitAndWait(1)
		}
		if err == nil {
			err = enterFault(e)
		}
		if err != nil && !errors.Is(err, ErrBusy) && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.ETIME) {
			e.fail(err)
		}
		if e.fatal != nil {
			e.failStop()
			return
		}
		// Completions sqe reaped while the loop armed outside a batch
		// (refill, commands) are older than any still in the CQ: first.
		if e.drainLater() {
			e.trimDue, e.deepDue, e.idleFor = true, false, 0
		}
		for {
			n, err := e.r.Reap(e.cqes)
			if err != nil {
				e.fail(err)
			}
			for i := range e.cqes[:n] {
				e.complete(&e.cqes[i])
			}
			if e.drainLater() || n > 0 {
				e.trimDue, e.deepDue, e.idleFor = true, false, 0
			}
			if n < len(e.cqes) {
				break
			}
		}
		e.flush()
		if e.fatal != nil {
			e.failStop()
			return
		}
		shutdown := e.commands()
		if e.fatal != nil { // a submit failed while a command armed or cancelled
			e.failStop()
			return
		}
		if shutdown {
			e.shutdown()
			return
		}
		e.stats.inRing.Store(int64(e.inRing))
		e.stats.starved.Store(int64(len(e.starved)))
		e.stats.held.Store(int64(e.br.Held()))
		e.stats.window.Store(int64(e.window))
	}
}

// trimUnfilled, at an idle trim, gives back the pages of the buffer ring's
// blocks that the kernel has not written into: after a burst the whole
// window stays resident, however few connections remain busy. It is safe
// only where the kernel writes those blocks inside this loop's own
// io_uring_enter: with DEFER_TASKRUN receives complete as task work the
// loop runs when it asks for events, so between two enters, with every
// completion reaped and none in an overflow backlog, nothing can be writing
// into them and every byte written has been claimed. Kernels before about
// 6.8 could still run a multishot receive on an io-wq worker (when arming
// its poll failed), which writes at any time; so it also requires the
// incremental buffer ring (6.12), whose kernels refuse multishot requests
// on io-wq. Elsewhere it does nothing.
func (e *Engine) trimUnfilled() {
	if !e.r.DeferTaskrun() || !e.br.Incremental() || e.r.Overflowed() || e.r.Ready() != 0 {
		return
	}
	e.br.DiscardUnfilled()
}

func (e *Engine) setup() error {
	r, err := New(Config{Entries: e.cfg.Entries})
	if err != nil {
		return err
	}
	// The reserve, and the blocks beyond the first window, must stay out of
	// the kernel's ring from the start: the registration publishes every
	// free block, so take them first.
	reserve := min(max(e.cfg.Reserve, 0), e.a.Len()-1)
	e.window = initialWindow(e.a.Len()-reserve, e.a.BlockSize())
	keep := e.a.Len() - e.window
	held := make([]arena.Ref, 0, keep)
	for range keep {
		if ref, ok := e.a.Take(); ok {
			held = append(held, ref)
		}
	}
	br, err := r.RegisterBufRing(engineGroup, e.a)
	for _, ref := range held {
		e.a.Release(ref)
	}
	if err != nil {
		_ = r.Close()
		return err
	}
	br.SetReserve(e.cfg.Reserve)
	e.r, e.br = r, br
	e.inRing = br.Held()
	if Probe().RecvCap.OK {
		e.armCap = armCap(e.a.Size(), e.a.BlockSize())
		if e.cfg.ArmCap > 0 {
			e.armCap = uint32(min(uint64(max(e.cfg.ArmCap, e.a.BlockSize())), uint64(e.a.Size()), math.MaxInt32))
		}
	}
	e.bundle = Probe().Bundle.OK && !noBundles.Load()
	e.armWake()
	return nil
}

// sqe returns a free SQE, submitting what is queued when the SQ is full.
func (e *Engine) sqe() *SQE {
	for {
		if e.fatal != nil {
			// The ring failed: nothing more reaches the kernel. The caller
			// fills a request that is never submitted, and the loop stops
			// at its next check (failStop).
			e.scratch = SQE{}
			return &e.scratch
		}
		if s := e.r.GetSQE(); s != nil {
			return s
		}
		var err error
		if submitRefused.CompareAndSwap(true, false) {
			err = ErrBusy // test seam
		} else {
			_, err = e.r.Submit()
		}
		if err == nil || errors.Is(err, unix.EINTR) {
			continue // the kernel consumed the queued SQEs: slots are free
		}
		if !errors.Is(err, ErrBusy) {
			e.fail(err)
			continue
		}
		// The kernel took nothing (completions backed up): reap some to
		// make room. They are newer than what the caller may be in the
		// middle of (a batch in e.cqes), so they are handled after it
		// (drainLater): handling them now could deliver a connection's
		// bytes out of order.
		var local [16]CQE
		n, _ := e.r.Reap(local[:])
		e.later = append(e.later, local[:n]...)
	}
}

// drainLater handles the completions sqe reaped to make room, in order,
// and those their handling reaps in turn. It reports whether there were
// any.
func (e *Engine) drainLater() bool {
	did := false
	for len(e.later) > 0 {
		batch := e.later
		e.later = nil
		for i := range batch {
			e.complete(&batch[i])
		}
		did = true
	}
	return did
}

// submitRefused, when set by a test, makes sqe's next submit fail as when
// the kernel takes nothing (EBUSY with a CQ overflow backlog on older
// kernels, EAGAIN when it cannot allocate requests): the seam that tests
// the completions sqe reaps to make room.
var submitRefused atomic.Bool

func (e *Engine) armWake() {
	e.sqe().PrepPollMultishot(e.efd, pollIn, userData(udWake, 0, 0))
}

// pollIn is POLLIN.
const pollIn = 0x1

func (e *Engine) arm(c *econn) {
	s := e.sqe()
	if s == &e.scratch {
		return // the ring failed: nothing reaches the kernel, nothing is armed
	}
	fd := c.fd
	if d := armOnDecoy.Load(); d != nil && d.fd == fd && armOnDecoy.CompareAndSwap(d, nil) {
		fd = d.decoy // test seam
	}
	s.PrepRecvMultishot(int(fd), engineGroup, userData(udRecv, c.gen, c.slot))
	// The multishot ends after armCap bytes (sqe optlen, Linux 6.17) and is
	// armed again: a pause asked by the sink then takes effect within
	// armCap bytes, instead of after every free block went to one busy
	// connection in a single burst of completions.
	capBytes := e.armCap
	if c.noCap {
		capBytes = 0
	}
	s.FileIndex = capBytes
	if e.bundle {
		// One receive fills as many blocks as the socket has bytes for
		// (sqe len 0: up to what it has queued), where a plain one stops
		// at the end of a block: fewer, larger receives, as read(2) into
		// a 64 KiB buffer makes.
		s.Ioprio |= recvBundle
	}
	if capBytes != 0 && capRefused.Load() {
		s.Off = 1 // addr2: refused (EINVAL) as kernels before 6.17 refuse optlen
	}
	c.armed, c.cancel, c.capped = true, false, capBytes != 0
}

// noBundles, when set by a test before an engine starts, makes its receives
// plain ones (one block each), as on kernels before 6.10.
var noBundles atomic.Bool

// capRefused, when set by a test, makes the kernel refuse every capped
// arming with EINVAL, as a kernel without the multishot cap (before Linux
// 6.17) does: the seam that tests that fallback on a kernel that has the cap.
var capRefused atomic.Bool

func (e *Engine) cancelRecv(c *econn) {
	if c.armed && !c.cancel {
		s := e.sqe()
		if s == &e.scratch {
			return // the ring failed: shutdown cancels it if the ring still takes requests
		}
		s.PrepCancel(userData(udRecv, c.gen, c.slot), userData(udCancel, c.gen, c.slot))
		c.cancel = true
	}
}

// initialWindow is how many blocks an engine first keeps published, out of
// the usable ones: an eighth, at least 16 (or all when fewer), and no more
// than maxWindow allows.
func initialWindow(usable, blockSize int) int {
	return min(usable, max(16, usable/8), maxWindow(usable, blockSize))
}

// maxWindowBytes bounds what refill keeps published. The kernel takes the
// ring's blocks in order and a released block goes to the back, so every
// block of the window is written once per turn: a window larger than the
// cache makes each receive's copy miss on its destination, one too small
// cuts receives short (ENOBUFS, and smaller bundles). Measured on loopback
// (64 connections of 1 KiB messages, 2 cores, results/experiments-*.txt):
// with plain receives a window of the whole 7 MiB arena of an engine made
// the kernel's copy cost 17% more per byte than read(2) into one reused
// buffer, 512 KiB the same; with bundles, 2 MiB did best (0.92-0.99x the
// standard server, against 0.86-0.98x at 1 MiB and 0.84-0.94x at 512 KiB).
// The window makes no more of the arena resident than its own size because
// the arena hands out the blocks given back most recently first. A dry
// window ends receives with ENOBUFS; they are re-armed at the next
// iteration, once the loop has recycled the blocks.
const maxWindowBytes = 2 << 20

// maxWindow is the largest window in blocks: maxWindowBytes, at least 16
// blocks, at most every usable one.
func maxWindow(usable, blockSize int) int { return min(usable, max(16, maxWindowBytes/blockSize)) }

// maxArmCapBytes bounds what one arming of a multishot receive may take
// before it ends and is armed again (armCap).
const maxArmCapBytes = 1 << 20

// armCap is the byte cap of one arming: an eighth of the arena (the share of
// it the reader lets one connection pin before it pauses it), at most
// maxArmCapBytes, at least one block. A connection paused at that share may
// so hold up to about a quarter of the arena. The cap bounds how far a connection
// runs past a pause its sink asked for. Each end costs a completion and a
// re-arm, whose receive runs inline at the next submit and, on loopback,
// pushes the sender's queued bytes from the server's context: with a cap of
// 256 KiB (an arena's sixteenth before), 64 connections streaming 1 KiB
// messages cost 1.36x the standard server's softirq time per GB, with 1 MiB
// 0.77x, and throughput went from 0.89x to 1.03x (uncapped: 0.61x, 1.14x,
// with no bound on the overrun; results/experiments-2026-12-04-s10.txt).
func armCap(arenaBytes, blockSize int) uint32 {
	return uint32(max(blockSize, min(maxArmCapBytes, arenaBytes/8)))
}

// free reports whether the arena has blocks beyond the reserve.
func (e *Engine) free() bool { return e.a.Len()-e.a.InUse() > e.br.reserve }

// refill tops the buffer ring up to the window from the arena and re-arms
// the connections that starved.
//
// The ring holds a window of blocks, not every free one: the kernel takes
// blocks in ring order, so a ring holding the whole arena would cycle
// through all of it and make every page resident, however little data is
// in flight. The arena hands out the blocks released last first, so a
// window keeps the working set as small as the traffic allows. An ENOBUFS
// while the arena still had blocks doubles the window.
func (e *Engine) refill() {
	if len(e.starved) > 0 && e.readsDue && e.free() {
		e.serveStarved(false) // the reads first: the window would take their blocks
	}
	if e.inRing < e.window && e.free() {
		e.inRing += e.br.RefillUpTo(e.window - e.inRing)
	}
	low := e.inRing < max(1, e.window/4)
	e.hungry.Store(low)
	if low && e.free() { // released between Refill and the store
		e.inRing += e.br.RefillUpTo(e.window - e.inRing)
	}
	if len(e.starved) > 0 && e.inRing == 0 && time.Since(e.nudged) >= nudgeEvery {
		e.nudge()
		e.peekStarved()
	}
	if len(e.starved) > 0 && e.inRing > 0 {
		e.serveStarved(true)
	}
}

// starvedReadAfter is how many receives in a row must end with ENOBUFS
// before the loop reads for a connection itself (serveStarved): a backstop
// for a connection the ring keeps starving, not a path for traffic. A
// waiting connection is re-armed about once per loop iteration: in the
// reader's handler-mode trickle test under the race detector, about 150
// times a second, so the trickled message took 1.6-1.7 s (0.6 s with 2),
// where it got nothing in 15 s before. With 2 or 32, connections
// streaming at 64 at once took it in the harness (1 KiB messages, 2
// cores): the io_uring handler server fell from 0.92-1.13x the standard
// server's throughput to 0.64-0.76x, its CPU per GB from 0.75x to 1.5x
// (one block per read(2), where a bundle takes many). At 255, as without
// it (results/experiments-2026-12-04-s13.txt).
const starvedReadAfter = math.MaxUint8

// starvedReadsAfter is starvedReadAfter, lowered by tests that need the
// loop's reads to happen whatever the timing (SetStarvedReadAfter).
var starvedReadsAfter atomic.Uint32

func init() {
	starvedReadsAfter.Store(starvedReadAfter)
	seam.FailNextEnter = func(e any, err error) { e.(*Engine).faultNext.Store(&err) }
}

// maxStarvedReads bounds the reads one serveStarved makes, so that a long
// list of starved connections does not hold the loop up.
const maxStarvedReads = 64

// serveStarved gives the connections waiting for blocks their turn, oldest
// first, re-arming them only when rearm is set.
//
// A connection whose receives keep ending with ENOBUFS is read by the loop
// itself: it takes a free block from the arena and reads into it with
// recv(2), so no other receive can take that block. This is the fairness
// the buffer ring lacks. Once the ring runs dry, a receive armed on a busy
// socket takes the blocks refill publishes before a re-armed one gets any:
// measured on a 64-block arena, a connection whose socket held 32 KiB was
// re-armed about 150 times a second, each receive ending with ENOBUFS
// while 54 blocks were published, and it got nothing for 15 s while one
// busy connection received throughout
// (results/experiments-2026-12-04-s13.txt). The connection stays in line
// while a read fills its block; once one finds its socket drained, it is
// armed again.
//
// The others are re-armed, as many as the ring's blocks can serve, at the
// blocks a receive has been taking (a bundle takes what its socket has
// queued: about 14 blocks each with 1,000 busy connections): re-arming
// more would have most end with ENOBUFS again at once (each a failed
// receive, a completion and another re-arm; 58 per 1,000 messages there, 4
// with this budget). The rest wait for the next refill, their data in the
// socket.
func (e *Engine) serveStarved(rearm bool) {
	// Swap the list out first: arming may complete requests (sqe reaps
	// when the SQ is full), and reads may keep a connection in line: both
	// go to the new list, after those still waiting here.
	list := e.starved
	e.starved = e.starvedSpare[:0]
	budget := 0
	if rearm && e.inRing > 0 {
		budget = max(1, e.inRing/max(1, (e.partsAvg+15)>>4))
	}
	reads := maxStarvedReads
	after := uint8(starvedReadsAfter.Load())
	due := false       // a connection kept waiting is due a read
	e.readsDue = false // set again by those starved meanwhile (complete, readStarved)
	w := 0             // list[:w]: still waiting, in order
	for k, c := range list {
		list[k] = nil
		switch {
		case c.state != cStarved:
			// Ended, paused or detached while it waited.
		case c.dry >= after && reads > 0 && e.free():
			reads--
			e.readStarved(c)
		case budget > 0:
			c.state = cArmed
			e.arm(c)
			e.stats.rearms.Add(1)
			budget--
		default:
			list[w] = c
			w++
			due = due || c.dry >= after
		}
	}
	e.readsDue = e.readsDue || due
	list = append(list[:w], e.starved...)
	clear(e.starved)
	e.starvedSpare = e.starved[:0]
	e.starved = list
}

// readStarved reads for a starved connection into a block of its own (see
// serveStarved).
func (e *Engine) readStarved(c *econn) {
	ref, ok := e.a.Take()
	if !ok {
		e.starved = append(e.starved, c) // free said otherwise: cannot happen
		e.readsDue = true
		return
	}
	buf := e.a.Bytes(ref.ID())
	n, err := unix.RecvDontWait(int(c.fd), buf)
	switch {
	case n > 0:
		e.stats.receives.Add(1)
		e.stats.starvedReads.Add(1)
		e.markReady(c)
		if c.sink.Deliver(ref, 0, n) {
			c.state = cPaused // not armed: Resume arms it
			e.stats.paused.Add(1)
			return
		}
		if n == len(buf) {
			e.starved = append(e.starved, c) // more may be queued: back in line
			e.readsDue = true
			return
		}
		c.state = cArmed
		e.arm(c)
	case err == nil:
		e.a.Release(ref)
		e.end(c, io.EOF)
	case errors.Is(err, unix.EAGAIN):
		// Nothing queued: a receive armed now waits for data without
		// taking anything from others.
		e.a.Release(ref)
		c.state = cArmed
		e.arm(c)
	default:
		e.a.Release(ref)
		e.end(c, os.NewSyscallError("recv", err))
	}
}

func (e *Engine) complete(cqe *CQE) {
	kind, gen, slot := splitUserData(cqe.UserData)
	switch kind {
	case udWake:
		var buf [8]byte
		_, _ = unix.Read(e.efd, buf[:])
		if !cqe.More() {
			e.armWake()
		}
		return
	case udRecv:
	default:
		return // cancel and nop results: the receive's own CQE tells the rest
	}
	c := e.slots.Get(slot)
	if c == nil || c.gen != gen {
		// A block for a connection that left cannot happen: the loop waits
		// for the final CQE before Detached. Give it back all the same.
		if id, ok := cqe.BufferID(); ok {
			e.giveBack(id, cqe)
		}
		return
	}
	rv := DecodeRecv(*cqe)
	if rv.N > 0 {
		c.dry = 0
		e.stats.receives.Add(1)
		e.markReady(c)
		// One Deliver per block: a bundle's bytes run on into the blocks
		// after its first.
		parts := 0
		for id, left := rv.Buf, rv.N; ; id = e.nextBlock(id) {
			parts++
			ref, off, n := e.claimPart(id, left, rv.BufMore)
			if !c.detach && (c.state == cArmed || c.state == cPaused || c.state == cStarved) {
				pause := c.sink.Deliver(ref, off, n)
				switch {
				case pause && c.state == cArmed:
					c.state = cPaused
					e.stats.paused.Add(1)
					e.cancelRecv(c)
				case !pause && c.state == cPaused:
					// A later block's push found the consumer drained and
					// lifted the pause an earlier one asked for: no Resume
					// will come for it.
					e.resume(c)
				}
			} else {
				e.a.Release(ref) // ended or detaching: nobody wants these bytes
			}
			if left -= n; left == 0 {
				break
			}
		}
		e.partsAvg += (parts<<4 - e.partsAvg) >> 3
		if rv.More {
			// The receive stays armed. Found empty, the socket is waited on
			// again, where the kernel may miss the end (checkQuiet).
			c.lists |= recent
			if cqe.Flags&CQEFSockNonempty == 0 && c.lists&inQuiet == 0 && c.state == cArmed {
				e.listQuiet(c)
			}
		}
	}
	if rv.More {
		return
	}
	c.armed = false
	switch {
	case len(e.ends) > 0 && e.endFound(c):
		// Ended with what checkQuiet found, after every byte.
	case rv.EOF:
		e.end(c, io.EOF)
	case rv.NoBuffers:
		e.stats.nobufs.Add(1)
		if c.dry < math.MaxUint8 {
			c.dry++
		}
		if c.state != cArmed {
			break
		}
		// The kernel picks a buffer before it looks at the socket, so an
		// end of stream or a reset ends with ENOBUFS too. Neither needs a
		// block: when the arena is dry (the connection may wait long for
		// one), look without reading, now and with every nudge while it
		// stays dry (peekStarved). A dry window is refilled at once.
		if !e.free() && e.peekEnd(c) {
			break
		}
		if e.free() {
			// The window ran dry, not the arena: widen it (refill re-arms
			// this connection at once).
			e.window = min(2*e.window, maxWindow(e.a.Len()-e.br.reserve, e.a.BlockSize()))
		} else if len(e.starved) == 0 {
			e.nudge()
		}
		c.state = cStarved
		e.starved = append(e.starved, c)
		e.readsDue = e.readsDue || c.dry >= uint8(starvedReadsAfter.Load())
		e.hungry.Store(true)
	case rv.Errno == unix.EINVAL && c.capped:
		// The probe found the cap, yet the kernel refused it for this
		// socket: arm it again without (its pauses then take effect after
		// a burst). A second EINVAL is a real error.
		c.noCap = true
	case rv.Errno == unix.ECANCELED:
	case rv.Errno != 0:
		e.end(c, os.NewSyscallError("recv", rv.Errno))
	}
	if c.detach {
		e.finishDetach(c)
		return
	}
	if c.state == cArmed {
		e.arm(c) // the multishot ended (CQ overflow, say): arm it again
	}
}

// quietCheckEvery is how often a busy loop looks at the receives that went
// back to waiting after data (checkQuiet): one that stayed quiet for this
// long at least, and at most twice that, is looked at. An idle loop looks
// at all of them at its idle trim.
const quietCheckEvery = 250 * time.Millisecond

// maxQuietPeeks bounds the peeks of one look (checkQuiet), so that many
// connections going quiet at once do not hold the loop up: the rest are
// looked at in the next iterations.
const maxQuietPeeks = 256

// maxQuietKept is the largest quiet list an emptied one keeps room for.
const maxQuietKept = 1024

// quietEvery and quietPeeks are quietCheckEvery and maxQuietPeeks, changed
// by tests only (setQuietLooks).
var quietEvery, quietPeeks atomic.Int64

func init() {
	quietEvery.Store(int64(quietCheckEvery))
	quietPeeks.Store(maxQuietPeeks)
}

// listQuiet puts c on the list checkQuiet looks at.
func (e *Engine) listQuiet(c *econn) {
	c.lists |= inQuiet
	if len(e.quiet) == 0 {
		e.quietAt = time.Now().Add(time.Duration(quietEvery.Load()))
	}
	e.quiet = append(e.quiet, c)
}

// untilQuietLook is how long the loop may wait before its next look at the
// quiet receives: at least a millisecond.
func (e *Engine) untilQuietLook() time.Duration {
	return max(time.Until(e.quietAt), time.Millisecond)
}

// checkQuiet finds the ends of stream that the kernel leaves unreported.
//
// Linux (6.18.44 here, and upstream until "io_uring/poll: fix multishot
// recv missing EOF on wakeup race", Linux 7.0) can miss an end of stream
// that comes right behind data: when the data's wake-up and the end's both
// arrive before the receive's task work runs, the kernel's poll loop reads
// the data, finds the socket empty and goes back to waiting, and since the
// end of a stream is a state that wakes nobody again, the connection would
// never end. Measured here: 2 of 20,000 short AF_UNIX streams, each written
// and closed at once by its peer, with other test processes loading both
// cores (results/lost-eof-2026-12-05-s15.txt).
//
// So the loop keeps a list of the connections whose receive went back to
// waiting after data (complete, listQuiet), and looks at each once it has
// stayed quiet (all: the whole engine has been idle IdleTrim) with a peek
// that reads nothing, at most quietPeeks of them per look. An end it finds
// (lookForEnd) counts in Stats.LostEnds and is kept aside while the loop
// cancels the receive: the cancel's completion, which comes after every
// byte the receive took, delivers it. A reset is delivered as the reset,
// though the peek took the error from the socket. A connection receiving
// costs a flag per completion here; one that goes quiet after data costs
// one recv(2).
func (e *Engine) checkQuiet(all bool) {
	if e.fatal != nil {
		return // failStop ends every connection
	}
	// A look that goes on from the last one (more were due than its
	// peeks) looks only at those that look left overdue: the others had
	// their recent mark cleared a moment ago, not a quietEvery ago.
	goingOn := e.quietMore && !all
	peeks := quietPeeks.Load()
	more := false // due, beyond this look's peeks
	kept := e.quiet[:0]
	for _, c := range e.quiet {
		switch {
		case c.state != cArmed || !c.armed || c.cancel || c.detach:
			// Not waiting on its socket: listed again after its next data.
			c.lists &^= inQuiet | recent | overdue
		case goingOn && c.lists&overdue == 0:
			kept = append(kept, c)
		case !all && c.lists&recent != 0:
			c.lists &^= recent | overdue
			kept = append(kept, c)
		case peeks == 0:
			c.lists = c.lists&^recent | overdue
			kept = append(kept, c)
			more = true
		default:
			peeks--
			c.lists &^= inQuiet | recent | overdue
			e.lookForEnd(c)
		}
	}
	clear(e.quiet[len(kept):])
	e.quiet = kept
	e.quietMore = more
	if len(kept) == 0 && cap(kept) > maxQuietKept {
		e.quiet = nil // an idle engine does not keep a burst's list (8 bytes a connection)
	}
	switch {
	case more:
		e.quietAt = time.Now() // the rest at the next iteration
	case len(kept) > 0:
		e.quietAt = time.Now().Add(time.Duration(quietEvery.Load()))
	}
}

// lookForEnd peeks at a quiet connection's socket for an end of stream or
// an error the kernel did not report (see checkQuiet).
func (e *Engine) lookForEnd(c *econn) {
	end, _ := unix.PeekEnd(int(c.fd))
	if end == nil {
		return // nothing, or bytes whose wake-up is on its way
	}
	e.stats.lostEnds.Add(1)
	if e.ends == nil {
		e.ends = make(map[*econn]error)
	}
	e.ends[c] = end
	e.cancelRecv(c)
}

// endFound ends c with the end checkQuiet found for it, if any, at the
// last completion of the receive it cancelled. It reports whether it did.
func (e *Engine) endFound(c *econn) bool {
	end, ok := e.ends[c]
	if ok {
		delete(e.ends, c)
		e.end(c, end)
	}
	return ok
}

// armOnDecoy, set by a test, makes the loop arm the next receive of the
// connection on socket fd on socket decoy instead. The test writes to the
// decoy and leaves an end of stream or a reset pending on fd: the kernel
// then holds a receive that posts data and never reports the end, as when
// it misses one (see checkQuiet).
var armOnDecoy atomic.Pointer[struct{ fd, decoy int32 }]

// nudgeEvery is how often a loop whose buffer ring stays dry tells its
// connections again (Starver).
const nudgeEvery = 20 * time.Millisecond

// nudge tells every connection whose sink is a Starver that the ring is dry.
func (e *Engine) nudge() {
	e.nudged = time.Now()
	e.slots.Each(func(c *econn) {
		if st, ok := c.sink.(Starver); ok && c.state != cDetached {
			st.Starved()
		}
	})
}

// giveBack returns the blocks of a receive the kernel handed to nobody.
func (e *Engine) giveBack(id uint16, cqe *CQE) {
	rv := DecodeRecv(*cqe)
	for left := rv.N; left > 0; id = e.nextBlock(id) {
		ref, _, n := e.claimPart(id, left, rv.BufMore)
		e.a.Release(ref)
		if left -= n; left == 0 {
			break
		}
	}
}

// claimPart claims the part of a receive's remaining left bytes that block
// id holds: all of them, or (a bundle running on into the next block) what
// the block had room for. more is the completion's IORING_CQE_F_BUF_MORE,
// which concerns the bundle's last block only.
func (e *Engine) claimPart(id uint16, left int, more bool) (ref arena.Ref, off, n int) {
	n = left
	if room := e.br.Room(id); n > room {
		n, more = room, false
	}
	ref, off = e.br.Claim(id, n, more)
	if !more {
		e.inRing--
	}
	return ref, off, n
}

// nextBlock is the block a bundle fills after block id. The kernel reports
// bytes only in blocks it was given, so running past them is a bug.
func (e *Engine) nextBlock(id uint16) uint16 {
	next, ok := e.br.Next(id)
	if !ok {
		panic(fmt.Sprintf("zcio/ring: engine: bundled receive runs past block %d, the last published", id))
	}
	return next
}

// The lists of the loop an econn is in, and its marks for the looks at the
// quiet list (econn.lists).
const (
	inReady uint8 = 1 << iota // in e.ready: Flush due
	inQuiet                   // in e.quiet (checkQuiet)
	recent                    // received since checkQuiet last kept it
	overdue                   // due at a look that ran out of peeks: the next look goes on with it
)

func (e *Engine) markReady(c *econn) {
	if c.lists&inReady == 0 {
		c.lists |= inReady
		e.ready = append(e.ready, c)
	}
}

func (e *Engine) flush() {
	for i, c := range e.ready {
		e.ready[i] = nil
		c.lists &^= inReady
		if c.state != cDetached {
			c.sink.Flush()
		}
	}
	e.ready = e.ready[:0]
}

func (e *Engine) end(c *econn, err error) {
	if c.state == cEnded || c.state == cDetached {
		return
	}
	c.state = cEnded
	e.cancelRecv(c)
	c.sink.End(err)
}

func (e *Engine) commands() (shutdown bool) {
	work := e.ctl.Take()
	for i, cmd := range work {
		work[i] = ecommand{}
		c := cmd.c
		switch cmd.op {
		case eopAttach:
			if c.state != cOpening {
				break
			}
			if o, ok := c.sink.(Opener); ok { // asked once, at attach: not worth a field
				o.Opened()
			}
			if c.state == cOpening && !c.detach {
				c.state = cArmed
				e.arm(c)
			}
		case eopResume:
			if c.state == cPaused {
				e.resume(c)
			}
		case eopDetach:
			c.detach = true
			if c.armed {
				e.cancelRecv(c)
			} else {
				e.finishDetach(c)
			}
		case eopShutdown:
			shutdown = true
		}
	}
	return shutdown
}

// resume makes a paused connection receive again.
func (e *Engine) resume(c *econn) {
	c.state = cArmed
	if !c.armed {
		e.arm(c)
	}
	// else: the cancel's final CQE re-arms it.
}

func (e *Engine) finishDetach(c *econn) {
	if c.state == cDetached {
		return
	}
	if c.state == cStarved {
		e.dropStarved(c)
	}
	c.state = cDetached
	e.slots.Remove(c.slot)
	c.sink.Detached()
}

// peekStarved ends the starved connections whose peer ended the stream (or
// reset it) meanwhile: that needs no block, and a connection that starved
// before its peer closed is not armed, so nothing else would tell. It runs
// with the nudges, while the ring stays dry.
func (e *Engine) peekStarved() {
	kept := e.starved[:0]
	for _, c := range e.starved {
		if c.state == cStarved && !e.peekEnd(c) {
			kept = append(kept, c)
		}
	}
	clear(e.starved[len(kept):])
	e.starved = kept
}

// peekEnd looks, without reading, whether c's peer ended the stream or the
// socket failed, and if so ends c. It reports whether it did.
func (e *Engine) peekEnd(c *econn) bool {
	end, _ := unix.PeekEnd(int(c.fd))
	if end != nil {
		e.end(c, end)
	}
	return end != nil
}

// dropStarved takes c off the list of connections waiting for blocks: a
// connection that left must not keep the loop polling for blocks nor count
// in Stats.
func (e *Engine) dropStarved(c *econn) {
	if i := slices.Index(e.starved, c); i >= 0 {
		e.starved = slices.Delete(e.starved, i, i+1)
	}
}

// fail records an error the ring cannot recover from: io_uring_enter
// failing with anything but EBUSY, EAGAIN, EINTR or ETIME (EBADR: the
// kernel dropped completions; EFAULT or EBADF: a bug). The loop stops at
// its next check (failStop) instead of panicking: the process and the other
// engines go on.
func (e *Engine) fail(err error) {
	if e.fatal != nil {
		return
	}
	f := fmt.Errorf("%w: %w", ErrEngineFailed, err) // err names the call: "io_uring_enter: ..."
	e.fatal = f
	e.failed.CompareAndSwap(nil, &f) // the first failure is the one reported
}

// failStop ends every connection with the failure and stops the loop. It
// first hands the sinks what already arrived: the completions still in
// the CQ, then a Flush for what this iteration delivered (refill's
// starved reads too), so that bytes received stay readable and a sink
// that gives its blocks back at Flush does. Then it refuses further
// commands (Attach fails with the failure), ends the connections attached
// meanwhile with the rest, and shuts down as Close would: its wait for the
// receives' final CQEs is bounded (shutdownWait), since the kernel may have
// dropped them (EBADR).
func (e *Engine) failStop() {
	e.drainLater()
	// A CQ's worth and a little more of an overflow backlog: completions
	// left after that are handled by shutdown, after End, and their bytes
	// released rather than delivered.
	for range int(e.r.CQEntries())/len(e.cqes) + 2 {
		n, _ := e.r.Reap(e.cqes)
		for i := range e.cqes[:n] {
			e.complete(&e.cqes[i])
		}
		if n < len(e.cqes) {
			break
		}
	}
	e.drainLater()
	e.flush()
	e.ctl.Shutdown(ecommand{op: eopShutdown})
	e.commands()
	e.slots.Each(func(c *econn) {
		if c.state != cEnded && c.state != cDetached {
			c.state = cEnded
			c.sink.End(e.fatal)
		}
	})
	e.flush()     // what the commands' callbacks delivered, if anything
	e.fatal = nil // let shutdown submit its cancels, if the ring still takes them
	e.shutdown()
}

// enterFault returns, once, the error a test asked the loop's next
// io_uring_enter to report in place of its own result (Engine.faultNext):
// the seam that tests an engine-local failure (EBADR, say) on a ring that
// works.
func enterFault(e *Engine) error {
	if e.faultNext.Load() == nil {
		return nil // a plain load per iteration, not a locked swap
	}
	if p := e.faultNext.Swap(nil); p != nil {
		return *p
	}
	return nil
}

// shutdown ends every connection, cancels every receive and waits for the
// kernel to let go of them, then tears the ring down.
func (e *Engine) shutdown() {
	e.slots.Each(func(c *econn) {
		if c.state != cEnded && c.state != cDetached {
			c.state = cEnded
			c.sink.End(ErrClosed)
		}
		c.detach = true
		e.cancelRecv(c)
		if !c.armed {
			e.finishDetach(c)
		}
	})
	// Wait for the final CQE of every receive. Cancelling a socket receive
	// completes at once; the bound is for a ring that failed, whose kernel
	// may have dropped final CQEs (EBADR) or takes no more requests.
	deadline := time.Now().Add(shutdownWait)
	for tries := 0; tries < 1000 && e.armedCount() > 0; tries++ {
		if e.drainLater() {
			continue // those may have been the final CQEs waited for
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		if _, err := e.r.SubmitAndWaitTimeout(1, left); err != nil && !errors.Is(err, ErrBusy) && !errors.Is(err, unix.EINTR) {
			break
		}
		n, _ := e.r.Reap(e.cqes)
		for i := range e.cqes[:n] {
			e.complete(&e.cqes[i])
		}
	}
	e.drainLater()
	e.slots.Each(func(c *econn) { e.finishDetach(c) })
	e.flush()
	clear(e.quiet)
	e.quiet, e.ends = nil, nil // the connections and their sinks are not kept reachable
	_ = e.r.Close()            // closes the buffer ring: blocks in the kernel go back to the arena
	e.ctl.CloseFD()            // a BlocksFreed after Close writes nothing
}

// shutdownWait bounds shutdown's wait for the final CQEs of the receives
// it cancelled. Past it, closing the ring gives the blocks those receives
// could still write into back to the arena. That is safe where receives
// run only inside the loop's own io_uring_enter (DEFER_TASKRUN, and
// incremental buffer rings, 6.12, whose kernels refuse multishot requests
// on io-wq; see trimUnfilled), which have stopped; on older kernels a
// receive stuck on an io-wq worker could still write. Only a ring that
// failed gets that far.
const shutdownWait = 2 * time.Second

func (e *Engine) armedCount() int {
	n := 0
	e.slots.Each(func(c *econn) {
		if c.armed {
			n++
		}
	})
	return n
}

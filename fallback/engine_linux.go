//go:build linux

package fallback

import (
	"errors"
	"fmt"
	"io"
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

// wakeSlot marks the engine's own eventfd in epoll events.
const wakeSlot = ^uint32(0)

// starvedPollMillis is how often a loop with connections waiting for blocks
// looks at the arena again, in case blocks came back without a wake-up
// (released by code that does not call [Engine.BlocksFreed]).
const starvedPollMillis = 2

// recheckMillis bounds every sleep of the loop: before a sleep this long
// (or one with no other deadline, which it then takes) the loop checks that
// its epoll fd still names its own instance (epfdErr), so that fds closed
// behind its back are found within about this long even when no wake-up
// reaches it. An idle engine so wakes once a second: three system calls.
const recheckMillis = 1000

// eventBudget bounds the bytes read from one socket per readiness event, so
// that one busy connection cannot hold up the others: 1 MiB, the most one
// io_uring arming takes. Level-triggered epoll reports the socket again at
// the next wait if bytes are left.
const eventBudget = 1 << 20

// batchBudget is how many bytes the loop reads from one batch of events before
// it runs the commands queued meanwhile: about 1-2 ms of reading at loopback
// speeds.
const batchBudget = 4 << 20

// Connection states, owned by the loop.
const (
	stateWatched  = iota // in epoll, reading
	statePaused          // out of epoll: its sink holds enough
	stateStarved         // out of epoll: the arena was dry
	stateEnded           // out of epoll: end of stream or error delivered
	stateDetached        // out of the table; Detached delivered
	stateOpening         // attached, waiting for the loop to call Opened
)

// Engine is one epoll loop reading attached sockets into arena blocks. Its
// methods are safe for concurrent use.
type Engine struct {
	cfg   Config
	a     *arena.Arena
	epfd  int
	evfd  int
	slots slots.Table[conn]
	gen   atomic.Uint32
	ctl   loopctl.Control[command]

	starving atomic.Bool           // some connection waits for blocks
	failed   atomic.Pointer[error] // see Err
	epfdLost bool                  // epfd no longer names this engine's epoll instance (loop only)
	strays   bool                  // the batch held an event of no watched connection (loop only)
	// quietSince is when the current trim or deep-trim wait began (zero:
	// none yet), so that waits cut short at recheckMillis add up to it.
	quietSince time.Time
	trimDue    bool // work was done since the last trim (loop only)
	deepDue    bool // an idle trim ran and nothing happened since (loop only)
	done       chan struct{}

	// Owned by the loop goroutine.
	tail    tailBlock
	bufs    [unix.MaxReadv][]byte // scratch for one read's buffers
	events  []unix.EpollEvent
	starved []*conn
	nudged  time.Time // when the connections were last told the arena is dry
	// batchBytes counts what the reads of the current batch of events took.
	batchBytes int
}

type command struct {
	op uint8
	c  *conn
}

const (
	opResume = iota + 1
	opDetach
	opShutdown
	opOpen
)

// conn is one attached socket. Its fields other than the atomics are owned
// by the loop.
type conn struct {
	fd       int
	slot     uint32
	gen      uint32
	sink     Sink
	state    uint8
	detachRq atomic.Bool // Detach was called
}

// Conn is an attached connection: the handle for [Engine.Resume] and
// [Engine.Detach]. It holds the engine's state of the connection, so that
// attaching costs one allocation.
type Conn struct {
	e *Engine
	c conn
}

// Resume is e.Resume(h) for the engine h is attached to.
func (h *Conn) Resume() { h.e.Resume(h) }

// Detach is e.Detach(h) for the engine h is attached to.
func (h *Conn) Detach() { h.e.Detach(h) }

// New creates an engine and starts its loop goroutine.
func New(cfg Config) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("zcio/fallback: new engine: %w", err)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("zcio/fallback: new engine: %w", os.NewSyscallError("epoll_create1", err))
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("zcio/fallback: new engine: %w", os.NewSyscallError("eventfd", err))
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1, Pad: 0} // int32(-1) is wakeSlot
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("zcio/fallback: new engine: %w", os.NewSyscallError("epoll_ctl", err))
	}
	e := &Engine{
		cfg:    cfg,
		a:      cfg.Arena,
		epfd:   epfd,
		evfd:   evfd,
		done:   make(chan struct{}),
		events: make([]unix.EpollEvent, 256),
		tail:   tailBlock{a: cfg.Arena, minRoom: cfg.MinRoom, reserve: cfg.Reserve},
	}
	e.slots.SetLimit(cfg.MaxConns)
	e.ctl.Init(evfd)
	started := make(chan struct{})
	go e.loop(started)
	<-started
	return e, nil
}

// Attach starts reading fd, which must be a connected, non-blocking stream
// socket, and delivering its data to sink. The caller keeps owning fd: it
// must not close it before sink.Detached is called. A sink that is an
// [Opener] gets Opened on the loop before the fd is watched.
func (e *Engine) Attach(fd int, sink Sink) (*Conn, error) {
	// Held throughout, so that a shutdown either sees this connection in the
	// table or refuses it here.
	e.ctl.Mu.Lock()
	defer e.ctl.Mu.Unlock()
	if err := e.Err(); err != nil {
		return nil, fmt.Errorf("zcio/fallback: attach fd %d: %w", fd, err)
	}
	if e.ctl.Closing() {
		return nil, fmt.Errorf("zcio/fallback: attach fd %d: %w", fd, ErrClosed)
	}
	h := &Conn{e: e, c: conn{fd: fd, sink: sink, gen: e.gen.Add(1)}}
	c := &h.c
	slot, ok := e.slots.Reserve()
	if !ok {
		return nil, fmt.Errorf("zcio/fallback: attach fd %d: %w (limit %d)", fd, ErrTooManyFDs, e.cfg.MaxConns)
	}
	// Complete c before the table publishes it: the loop reads the table
	// (nudge) without the lock.
	c.slot = slot
	_, opener := sink.(Opener)
	if opener {
		c.state = stateOpening
	}
	e.slots.Put(slot, c)
	if opener {
		// The loop calls Opened and only then puts the fd in epoll, so that
		// no event can come first.
		e.ctl.QueueLocked(command{op: opOpen, c: c})
		return h, nil
	}
	// The number must still name this engine's epoll instance: closed
	// behind its back and taken by another epoll_create1 (the lowest free
	// number), an ADD would succeed into someone else's instance. One
	// system call per connection.
	if lost := e.epfdErr(); lost != nil {
		e.slots.Remove(slot)
		e.lose(lost)
		return nil, fmt.Errorf("zcio/fallback: attach fd %d: %w", fd, e.Err())
	}
	if err := e.watch(c, unix.EPOLL_CTL_ADD); err != nil {
		e.slots.Remove(slot)
		if f := e.checkEpfd(err); f != nil {
			err = f
		}
		return nil, fmt.Errorf("zcio/fallback: attach fd %d: %w", fd, err)
	}
	return h, nil
}

// Resume starts reading a connection again after its sink paused it. It may
// be called from any goroutine, any number of times.
func (e *Engine) Resume(h *Conn) { e.ctl.Send(command{op: opResume, c: &h.c}) }

// Detach stops reading a connection. The loop removes the fd from epoll and
// then calls the sink's Detached (on the loop goroutine); only then may the
// fd be closed. It may be called from any goroutine, including from the
// sink's own callbacks; calls after the first do nothing.
func (e *Engine) Detach(h *Conn) {
	if h.c.detachRq.CompareAndSwap(false, true) {
		e.ctl.Send(command{op: opDetach, c: &h.c})
	}
}

// BlocksFreed tells the engine that blocks went back to the arena, so that
// connections waiting for blocks can go on. It costs an atomic load when no
// connection waits.
func (e *Engine) BlocksFreed() {
	if e.starving.Load() {
		e.ctl.Wake()
	}
}

// OnLoop reports whether the caller runs on the engine's loop goroutine
// (inside a Sink callback). It costs one gettid(2).
func (e *Engine) OnLoop() bool { return e.ctl.OnLoop() }

// Close stops the loop: every attached connection gets End(ErrClosed) (unless
// it ended already) and Detached. Close waits for the loop to finish, except
// when called on the loop itself, where it only starts the shutdown.
// It returns ErrClosed when called again.
//
// After the loop failed (Err), Close waits for it to have let go of
// everything and returns that failure.
func (e *Engine) Close() error {
	if !e.ctl.Shutdown(command{op: opShutdown}) {
		if err := e.Err(); err != nil {
			if !e.OnLoop() {
				<-e.done
			}
			return fmt.Errorf("zcio/fallback: close: %w", err)
		}
		return fmt.Errorf("zcio/fallback: close: %w", ErrClosed)
	}
	if !e.OnLoop() {
		<-e.done
	}
	return e.Err()
}

// Err returns nil while the engine works, and once it failed an error
// wrapping ErrEngineFailed and the kernel's error: from epoll_wait, or from
// the epoll_ctl that found its fds closed or reused behind its back (see
// epfdErr for when it looks). From then on the loop ends every connection
// with that error and stops; Done closes when it has.
func (e *Engine) Err() error {
	if p := e.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Done is closed when the loop has stopped and released everything.
func (e *Engine) Done() <-chan struct{} { return e.done }

func (e *Engine) watch(c *conn, op int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.slot), Pad: int32(c.gen)}
	if err := unix.EpollCtl(e.epfd, op, c.fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// unwatch takes c out of epoll. The fd is still open (its owner closes it
// only after Detached), so a failure means the fd was not registered.
func (e *Engine) unwatch(c *conn) {
	if !e.epfdLost && e.failed.Load() == nil {
		_ = unix.EpollCtl(e.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	}
}

func (e *Engine) loop(started chan<- struct{}) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	e.ctl.BindLoop()
	defer e.ctl.UnbindLoop()
	close(started)
	defer close(e.done)
	for {
		if e.failed.Load() != nil {
			// Attach or rewatch found the epoll fd lost: waiting on it
			// could read another epoll instance's events, and miss the
			// engine's own wake-ups.
			e.failStop(nil)
			return
		}
		n, err := unix.EpollWait(e.epfd, e.events, 0)
		if err == nil && n == 0 {
			// Nothing ready: about to sleep.
			e.tail.retireIfUnshared()
			timeout := -1
			trim, deep := false, false
			switch {
			case e.starving.Load():
				timeout = starvedPollMillis
			case e.trimDue && e.cfg.IdleTrim > 0:
				timeout = e.quietFor(e.cfg.IdleTrim)
				trim = true
			case e.deepDue:
				timeout = e.quietFor(DeepTrimFactor * e.cfg.IdleTrim)
				deep = true
			}
			capped := false
			if timeout < 0 || timeout >= recheckMillis {
				// Before a long sleep, make sure the number still names
				// this engine's instance: asleep on another one, the loop
				// would not see its own wake-ups. One system call; with
				// the default idle trim only after a second or more of
				// quiet, then once a second: no sleep is longer, so that
				// fds closed behind the engine's back are found within
				// about a second even when no wake-up reaches it.
				if e.lost() {
					e.failStop(nil)
					return
				}
				if timeout < 0 || timeout > recheckMillis {
					timeout, capped = recheckMillis, true
				}
			}
			n, err = unix.EpollWait(e.epfd, e.events, timeout)
			switch {
			case err != nil || n != 0:
			case capped:
				// A second passed, not the trim's wait: sleep again for
				// the rest of it (quietSince keeps the start).
			case trim:
				// Quiet since the last work: give back the pages of the
				// blocks a burst used and that are free now (the tail
				// block too, if its readers let go of it meanwhile).
				e.tail.retireIfUnshared()
				e.a.Trim(TrimKeep)
				if e.cfg.OnIdleTrim != nil {
					e.cfg.OnIdleTrim()
				}
				e.trimDue, e.deepDue = false, true
				e.quietSince = time.Time{} // the deep trim's wait starts now
			case deep:
				// Still quiet: the blocks kept for the next work go too.
				e.tail.retireIfUnshared()
				e.a.Trim(0)
				e.deepDue = false
				e.quietSince = time.Time{}
			}
		}
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			e.failStop(err)
			return
		}
		e.batchBytes = 0
		for i := 0; i < n; i++ {
			e.event(&e.events[i])
			if e.batchBytes >= batchBudget && i+1 < n {
				// Reads free their blocks as they go, so the arena no longer
				// bounds a batch: let Attach, Resume, Detach and Close in
				// between, rather than after up to 256 sockets' worth.
				e.batchBytes = 0
				if e.commands() {
					e.shutdown()
					return
				}
			}
		}
		if n > 0 {
			e.trimDue, e.deepDue = true, false
			e.quietSince = time.Time{}
		}
		if e.strays {
			// An event of no connection: a stale one of a connection
			// that left, or one of another epoll instance that took the
			// number (the loop would spin on it and never sleep).
			e.strays = false
			if e.lost() {
				continue // the top of the loop stops it
			}
		}
		if len(e.starved) > 0 {
			e.feedStarved()
		}
		if e.commands() {
			e.shutdown()
			return
		}
	}
}

func (e *Engine) event(ev *unix.EpollEvent) {
	slot := uint32(ev.Fd)
	if slot == wakeSlot {
		var buf [8]byte
		if _, err := unix.Read(e.evfd, buf[:]); err == unix.EAGAIN {
			e.strays = true // not the engine's eventfd that was ready
		}
		return
	}
	c := e.slots.Get(slot)
	if c == nil || c.gen != uint32(ev.Pad) || c.state != stateWatched {
		// A connection that left, paused or ended (rare: epoll_ctl took
		// it out, but the batch already held its event), or an event of
		// another epoll instance that took the number.
		e.strays = true
		return
	}
	e.readFrom(c, ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0)
}

// readFrom reads c up to ReadsPerEvent times, each read into the tail block
// and, while the arena has blocks to spare, blocks after it (readv(2)).
// Each read's segments are flushed to the sink before the next read: a
// handler parses them while they are still in the cache, and the blocks it
// gives back are the ones the next read takes (the free list is newest
// first), so a busy engine works in one read's worth of arena rather than a
// batch of events' worth. hangup says epoll reported the peer's end or an
// error along with the event.
func (e *Engine) readFrom(c *conn, hangup bool) {
	if c.detachRq.Load() {
		return // its bytes would be thrown away; the Detach runs with the commands
	}
	got := 0
	for i := 0; i < e.cfg.ReadsPerEvent && got < eventBudget; i++ {
		bufs := e.tail.rooms(e.bufs[:0])
		if len(bufs) == 0 {
			// No block to read into; but an end of stream or a reset needs
			// none, and must not wait for the arena. Only an event that
			// reported one is worth the look (a syscall per event while the
			// arena is dry, under load, otherwise).
			if !hangup {
				if i > 0 {
					// This event's reads may have emptied the socket: a
					// starved connection is out of epoll and would not
					// hear its peer's end. Stay watched: level-triggered
					// epoll reports it again at once if bytes wait (and
					// it starves then), or reports the end when it comes.
					return
				}
				e.starve(c)
				return
			}
			if end, waiting := unix.PeekEnd(c.fd); end != nil {
				e.end(c, end)
			} else if waiting {
				e.starve(c)
			} // else nothing to read after all: stay watched
			return
		}
		n, err := unix.Readv(c.fd, bufs)
		switch {
		case n > 0:
			got += n
			e.batchBytes += n
			pause := e.deliver(c, n)
			if pause {
				c.state = statePaused
				e.unwatch(c)
			}
			c.sink.Flush()
			if pause || c.detachRq.Load() {
				return // a Detach asked for in Flush runs with the commands
			}
			if n < sumLen(bufs) && n < e.a.BlockSize() {
				// Drained by a small read. A short read of a block or more
				// reads again: freeing that much of the receive window
				// sends a window update, and on loopback the peer's queued
				// bytes are often in the socket again before the read
				// returns (the peer transmits on our CPU). A socket really
				// empty costs one EAGAIN.
				return
			}
		case err == nil: // n == 0: orderly end of stream
			e.end(c, io.EOF)
			return
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR):
		default:
			e.end(c, os.NewSyscallError("readv", err))
			return
		}
	}
}

// deliver hands the n bytes a read just put into the tail block (and the
// blocks after it) to c's sink, a segment per block, and reports whether the
// sink asked to pause: its answer to the last segment (see Sink.Deliver).
// Every byte is delivered either way.
func (e *Engine) deliver(c *conn, n int) (pause bool) {
	for n > 0 {
		ref, off, m := e.tail.claim(n)
		if m == 0 {
			panic("zcio/fallback: a read filled more than the blocks it was given") // a bug in rooms/claim
		}
		pause = c.sink.Deliver(ref, off, m)
		n -= m
	}
	return pause
}

func sumLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

func (e *Engine) end(c *conn, err error) {
	if c.state == stateWatched {
		e.unwatch(c)
	}
	c.state = stateEnded
	c.sink.End(err)
}

func (e *Engine) starve(c *conn) {
	c.state = stateStarved
	e.unwatch(c)
	if len(e.starved) == 0 {
		e.nudge()
	}
	e.starved = append(e.starved, c)
	e.starving.Store(true)
}

// nudgeEvery is how often a loop whose arena stays dry tells its
// connections again (Starver).
const nudgeEvery = 20 * time.Millisecond

// nudge tells every connection whose sink is a Starver that the arena is dry.
func (e *Engine) nudge() {
	e.nudged = time.Now()
	e.slots.Each(func(c *conn) {
		if st, ok := c.sink.(Starver); ok && c.state != stateDetached {
			st.Starved()
		}
	})
}

// feedStarved puts connections that waited for blocks back into epoll once
// the arena has a free block; level-triggered epoll reports the data that
// waited in their socket buffers.
func (e *Engine) feedStarved() {
	if e.a.Len()-e.a.InUse() <= e.cfg.Reserve {
		if time.Since(e.nudged) >= nudgeEvery {
			e.nudge()
		}
		return
	}
	for i, c := range e.starved {
		e.starved[i] = nil
		if c.state == stateStarved {
			e.rewatch(c)
		}
	}
	e.starved = e.starved[:0]
	e.starving.Store(false)
}

func (e *Engine) rewatch(c *conn) {
	if e.epfdLost || e.failed.Load() != nil {
		return // the loop stops at its next turn and ends c with the failure
	}
	if err := e.watch(c, unix.EPOLL_CTL_ADD); err != nil {
		if f := e.checkEpfd(err); f != nil {
			// No more epoll_ctl on that number, for the rest of this
			// batch either: it may be someone else's by now.
			e.epfdLost = true
			return // the loop stops at its next turn and ends c with f
		}
		e.end(c, err)
		return
	}
	c.state = stateWatched
}

// commands runs what other goroutines asked for. It reports whether the
// engine is shutting down.
func (e *Engine) commands() (shutdown bool) {
	work := e.ctl.Take()
	for i, cmd := range work {
		work[i] = command{}
		switch cmd.op {
		case opResume:
			if cmd.c.state == statePaused {
				e.rewatch(cmd.c)
			}
		case opDetach:
			e.detach(cmd.c)
		case opShutdown:
			shutdown = true
		case opOpen:
			if cmd.c.state == stateOpening {
				cmd.c.sink.(Opener).Opened()
				// As Attach does for other sinks: an ADD into another
				// instance that took the number would succeed.
				if cmd.c.state == stateOpening && !e.lost() { // still: Detach only queues a command
					e.rewatch(cmd.c)
				}
			}
		}
	}
	return shutdown
}

func (e *Engine) detach(c *conn) {
	switch c.state {
	case stateDetached:
		return
	case stateWatched:
		e.unwatch(c)
	case stateStarved:
		// Off the list of connections waiting for blocks: one that left
		// must not keep the loop polling for blocks.
		if i := slices.Index(e.starved, c); i >= 0 {
			e.starved = slices.Delete(e.starved, i, i+1)
		}
		if len(e.starved) == 0 {
			e.starving.Store(false)
		}
	}
	c.state = stateDetached
	e.slots.Remove(c.slot)
	c.sink.Detached()
}

func (e *Engine) shutdown() {
	if !e.epfdLost {
		// Lost behind the engine's back while it slept (a double close
		// elsewhere, the number reused since)? Then neither number is
		// this engine's to touch.
		e.lost()
	}
	end := ErrClosed
	if err := e.Err(); err != nil {
		end = err
	}
	e.slots.Each(func(c *conn) {
		if c.state != stateEnded && c.state != stateDetached {
			if c.state == stateWatched {
				e.unwatch(c)
			}
			c.state = stateEnded
			c.sink.End(end)
		}
		e.detach(c)
	})
	e.starved = e.starved[:0]
	e.tail.retireAll()
	e.ctl.CloseFD() // a BlocksFreed after Close writes nothing
	if !e.epfdLost {
		unix.Close(e.epfd)
	}
}

// failStop stops the loop after epoll_wait failed with err (not EINTR), or
// with err nil once the failure is recorded: Attach or rewatch found the
// epoll fd lost (checkEpfd), or the loop did before a sleep.
// EBADF: code elsewhere in the process closed the epoll fd (a double
// close); EINVAL: its number names another file by now; EFAULT only from a
// bug here. It records the failure (Err), refuses further Attaches, runs
// the Opened callbacks still queued (an Opener gets Opened before anything
// else) and ends every connection with the failure, then shuts down as
// Close would. When the fd no longer names this engine's epoll instance it
// leaves the number alone: closing it, or removing sockets from it, could
// hit a file that belongs to someone else. Every read so far was flushed
// to its sink, so the bytes received stay readable.
func (e *Engine) failStop(err error) {
	if err != nil {
		e.failed.CompareAndSwap(nil, failure("epoll_wait", err))
	}
	if !e.epfdLost {
		e.lost()
	}
	e.ctl.Shutdown(command{op: opShutdown}) // false if Close got there first: same outcome
	work := e.ctl.Take()
	for i, cmd := range work {
		work[i] = command{}
		if cmd.op == opOpen && cmd.c.state == stateOpening {
			cmd.c.sink.(Opener).Opened() // not watched: the shutdown ends it
		}
	}
	e.shutdown()
}

// quietFor returns the milliseconds left of a wait of d that began at
// quietSince (now, if none began yet), at least 0.
func (e *Engine) quietFor(d time.Duration) int {
	now := time.Now()
	if e.quietSince.IsZero() {
		e.quietSince = now
	}
	left := d - now.Sub(e.quietSince)
	if left <= 0 {
		return 0
	}
	return int(max((left+time.Millisecond-1)/time.Millisecond, 1))
}

// failure wraps the kernel's err from op in ErrEngineFailed.
func failure(op string, err error) *error {
	f := fmt.Errorf("%w: %w", ErrEngineFailed, os.NewSyscallError(op, err))
	return &f
}

// lose records that the engine's fds were closed behind its back (err came
// from epfdErr) and makes the loop stop at its next turn. When the check
// shows the epoll fd's number to be the one gone astray (closed, or naming
// a file that is no epoll instance: EINVAL), the eventfd is taken to be
// intact: a wake-up stops the loop at once, and shutdown closes it. Else
// (ENOENT, or EBADF with the epoll number open) either number may be the
// stray one, so the eventfd's is left alone too: no wake-up is written (it
// could land in someone else's file), it is never closed, and the loop
// stops within recheckMillis. Safe from any goroutine.
func (e *Engine) lose(err error) {
	e.failed.CompareAndSwap(nil, failure("epoll_ctl", err))
	if !errors.Is(err, unix.EINVAL) && unix.IsOpen(e.epfd) {
		e.ctl.ForgetFD()
	}
	e.ctl.Wake() // nothing after ForgetFD
}

// lost runs the ownership check on the loop: when it fails it records the
// failure (lose), marks the epoll fd lost and reports true.
func (e *Engine) lost() bool {
	err := e.epfdErr()
	if err == nil {
		return false
	}
	e.lose(err)
	e.epfdLost = true
	return true
}

// checkEpfd looks into an epoll_ctl error: EBADF or EINVAL may mean the
// connection's fd is bad, or that the epoll fd was closed or reused behind
// the engine's back. In the second case it records the failure (lose, with
// what epfdErr found) and returns it; otherwise it returns nil.
func (e *Engine) checkEpfd(err error) error {
	if !errors.Is(err, unix.EBADF) && !errors.Is(err, unix.EINVAL) {
		return nil
	}
	lost := e.epfdErr()
	if lost == nil {
		return nil
	}
	e.lose(lost)
	return e.Err()
}

// epfdErr returns nil while epfd still names this engine's epoll instance,
// and otherwise the kernel's answer to a no-op EPOLL_CTL_MOD of the
// engine's own eventfd, which only that instance has registered: EBADF
// when the number is closed, EINVAL when it names something else, ENOENT
// when it names another epoll instance. If the stray close hit the eventfd
// instead, the check fails too (see lose). It costs one system call: once
// per new connection, when a batch holds an event of no connection, before
// a sleep of recheckMillis, on failure paths and at shutdown.
func (e *Engine) epfdErr() error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1, Pad: 0} // as in New: wakeSlot
	return unix.EpollCtl(e.epfd, unix.EPOLL_CTL_MOD, e.evfd, &ev)
}

func init() {
	// Tests close the epoll fd behind the engine's back, as a double close
	// elsewhere in the process would: a real EBADF at the loop's next wait.
	seam.CloseEpollFD = func(e any) { _ = unix.Close(e.(*Engine).epfd) }
}

package reader

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/segq"
)

// EngineKind selects the engine that reads a connection's socket.
type EngineKind uint8

const (
	// Auto uses io_uring where this process can (probed once, see Probe) and
	// the fallback otherwise. It is the default; the environment variable
	// ZCIO_ENGINE=io_uring|fallback overrides it.
	Auto EngineKind = iota
	// IOUring asks for the io_uring engine; where it cannot run, Listen and
	// Wrap fail with an error wrapping ErrEngineUnavailable.
	IOUring
	// Fallback asks for the epoll engine (on Linux) or the portable
	// goroutine-per-connection engine (elsewhere).
	Fallback
)

// Engine names, as Conn.Engine and Probe report them.
const (
	NameIOUring  = "io_uring"
	NamePortable = "portable"
	NameFallback = "fallback"
)

func (k EngineKind) String() string {
	switch k {
	case Auto:
		return "auto"
	case IOUring:
		return NameIOUring
	case Fallback:
		return NameFallback
	}
	return fmt.Sprintf("EngineKind(%d)", uint8(k))
}

// EnvEngine is the environment variable that overrides Auto.
const EnvEngine = "ZCIO_ENGINE"

// Errors of engine selection; match them with errors.Is.
var (
	// ErrEngineUnavailable is returned when the engine asked for cannot run
	// here; the error also says why.
	ErrEngineUnavailable = errors.New("zcio/reader: engine unavailable")
	// ErrUnsupportedConn is returned by Wrap for a connection that is not a
	// TCP or Unix stream socket.
	ErrUnsupportedConn = errors.New("zcio/reader: connection type not supported")
)

// EngineInfo says which engine serves and why.
type EngineInfo struct {
	// Name is NameIOUring, NameFallback or NamePortable.
	Name string
	// Reason says why this engine was chosen: the probe's answer, an
	// override, or why io_uring could not run.
	Reason string
}

func (i EngineInfo) String() string { return i.Name + " (" + i.Reason + ")" }

// ProbeResult is what the process-wide engine probe found.
type ProbeResult struct {
	// Auto is the engine Auto picks here (without ZCIO_ENGINE).
	Auto EngineInfo
	// IOUring is nil when the io_uring engine can run, else why not (it
	// wraps the ring package's ErrUnsupported, or says it was compiled out).
	IOUring error
}

var (
	probeOnce   sync.Once
	probeResult ProbeResult
)

// Probe reports, once per process (the answer is cached), whether the io_uring
// engine can run and which engine Auto picks.
func Probe() ProbeResult {
	probeOnce.Do(func() {
		err := uringAvailable()
		probeResult.IOUring = err
		if err == nil {
			probeResult.Auto = EngineInfo{NameIOUring, "probe: io_uring setup, buffer rings and multishot recv work"}
		} else {
			probeResult.Auto = EngineInfo{fallbackName, "probe: " + err.Error()}
		}
	})
	return probeResult
}

// kindNamed is the EngineKind of an engine's name (Auto for no engine).
func kindNamed(name string) EngineKind {
	switch name {
	case NameIOUring:
		return IOUring
	case fallbackName:
		return Fallback
	}
	return Auto
}

// choose resolves kind (after ZCIO_ENGINE for Auto) to an engine.
func choose(kind EngineKind) (EngineInfo, error) {
	if kind == Auto {
		switch v := os.Getenv(EnvEngine); v {
		case "":
		case NameIOUring:
			kind = IOUring
		case NameFallback:
			kind = Fallback
		default:
			return EngineInfo{}, fmt.Errorf("zcio/reader: %s=%q: want %s or %s: %w", EnvEngine, v, NameIOUring, NameFallback, ErrInvalidConfig)
		}
		if kind != Auto {
			info, err := choose(kind)
			info.Reason = EnvEngine + " asked for it"
			return info, err
		}
		return Probe().Auto, nil
	}
	switch kind {
	case IOUring:
		if err := Probe().IOUring; err != nil {
			return EngineInfo{}, fmt.Errorf("%w: %s: %w", ErrEngineUnavailable, NameIOUring, err)
		}
		return EngineInfo{NameIOUring, "asked for"}, nil
	case Fallback:
		return EngineInfo{fallbackName, "asked for"}, nil
	}
	return EngineInfo{}, fmt.Errorf("zcio/reader: unknown engine %v: %w", kind, ErrInvalidConfig)
}

// engineOptions are the options of Listen and Wrap.
type engineOptions struct {
	engine     EngineKind
	engines    int
	memory     int
	blockSize  int
	queueLimit int
	burst      int
	idleTrim   time.Duration
	debug      bool
}

// WithEngine chooses the engine (default Auto).
func WithEngine(k EngineKind) Option { return func(o *options) { o.engine = k } }

// WithEngines sets how many engines (event loops, each with its own arena)
// a Listener spreads its connections across. Zero means GOMAXPROCS, but no
// more engines than leave each 32 blocks of the memory budget (WithMemory).
func WithEngines(n int) Option { return func(o *options) { o.engines = n } }

// WithMemory sets a Listener's total arena budget in bytes, split evenly
// across its engines (default DefaultMemory). The arenas are not
// pre-faulted: resident memory grows with the blocks actually used, up to
// this budget.
func WithMemory(bytes int) Option { return func(o *options) { o.memory = bytes } }

// WithIdleTrim sets how long an engine must see no activity at all after
// some work before it gives the pages of its arena's cold free blocks back
// to the kernel, keeping the few it would use next (default
// DefaultIdleTrim; negative: never). A burst then leaves no resident memory
// behind once the connections are idle.
func WithIdleTrim(d time.Duration) Option { return func(o *options) { o.idleTrim = d } }

// DefaultIdleTrim is WithIdleTrim's default.
const DefaultIdleTrim = 100 * time.Millisecond

// WithBlockSize sets the block size of a Listener's arenas: a power of two
// from 4 KiB to 1 MiB (default DefaultEngineBlockSize).
func WithBlockSize(n int) Option { return func(o *options) { o.blockSize = n } }

// WithQueueLimit caps the bytes queued for one connection and not yet
// consumed. The default is DefaultQueueLimit, or a quarter of an engine's
// arena if that is smaller; a value given here is used as given. At the cap the engine stops receiving for that connection until its
// reader catches up; TCP flow control then slows the sender. It is also the
// largest request (Peek, Retain, ...) the connection's Reader accepts.
func WithQueueLimit(n int) Option { return func(o *options) { o.queueLimit = n } }

// WithReceiveBurst caps the bytes a Listener's io_uring engines receive
// from one connection's socket in one arming of its multishot receive
// (Linux 6.17; older kernels have no such cap), after which they arm the
// receive again. The default, 0, is an eighth of the engine's arena, at most
// 1 MiB. A smaller burst makes a connection's pause (WithQueueLimit) take
// effect sooner and keeps the kernel from growing a saturated socket's
// receive buffer as far (its autotuning follows the bytes read at once), at
// the cost of a completion and a re-arm per burst: with 64 saturated
// loopback connections, 256 KiB instead of 1 MiB cost 10-15% of the
// throughput and cut the kernel's TCP memory by about two thirds (README).
// A connection paused at its share of the arena (an eighth) may hold up to
// one more burst. Values below a block count as one block; negative ones
// make Listen and Wrap fail. The fallback engines ignore it (they read up to
// 512 KiB per system call and 1 MiB per readiness event).
func WithReceiveBurst(n int) Option { return func(o *options) { o.burst = n } }

// WithDebug maps the engines' arenas in debug mode: a view used after its
// block went back faults at once (see arena.Config.Debug).
func WithDebug() Option { return func(o *options) { o.debug = true } }

// engine is what the reader needs of an event loop (the io_uring engine, the
// epoll fallback or the portable one). Each engine owns one arena.
type engine interface {
	// attach starts delivering fd's data to s. The fd stays the caller's;
	// it may be closed only after s.Detached.
	attach(nc net.Conn, fd int, s engineSink) (attachment, error)
	arena() *arena.Arena
	// spiller is where waiting readers copy partial messages when the
	// engine runs out of blocks (nil: no spilling).
	spiller() *segq.Spiller
	// releaser is the hook the engine's queues give block references back
	// through (one func per engine, shared by its connections).
	releaser() func(arena.Ref)
	// onLoop reports whether the caller runs on an engine loop: this
	// engine's or any other's (code that would wait for an engine must not
	// wait there).
	onLoop() bool
	// failed reports whether the engine stopped on an error of its own
	// (ring.ErrEngineFailed, fallback.ErrEngineFailed): new connections go
	// to the others.
	failed() bool
	close() error
}

// attachment is an engine's handle on one connection.
type attachment interface {
	Resume()
	Detach()
}

// Default engine settings.
const (
	// DefaultMemory is the default budget of arena bytes across a group's
	// engines: 16 MiB of address space, resident only as blocks get used.
	DefaultMemory = 16 << 20
	// DefaultEngineBlockSize is the default block size of an engine's arena.
	DefaultEngineBlockSize = 16 << 10
	// DefaultQueueLimit is the default cap on one connection's queued bytes.
	// A blocking-mode reader of one busy connection pauses its receive each
	// time it falls this far behind and resumes at half: at 256 KiB (then
	// one io_uring arming's worth) that cost a cancel, a re-arm and two thread
	// wake-ups per 128 KiB and held one connection to 0.39x the standard
	// server (1.15x at 1 MiB; harness, 1 KiB messages, 2 cores). The blocks
	// one connection may pin are capped apart from it, at an eighth of the
	// engine's arena.
	DefaultQueueLimit = 1 << 20
)

// group is a set of engines of one kind, one per core by default, that
// connections are spread across. It is reference counted: a Listener and
// each of its Conns hold one reference; the last one closes the engines.
type group struct {
	info    EngineInfo
	engines []engine
	queues  []*segq.Shared // the queue settings of engines[i]'s connections
	// readers[i] lends Readers to engines[i]'s handler-mode connections
	// (lend.go); lends is false where the engine has no loop to own it.
	readers []readerPool
	lends   bool
	next    atomic.Uint32
	refs    atomic.Int64
	qlimit  int
}

func newGroup(o *engineOptions) (*group, error) {
	info, err := choose(o.engine)
	if err != nil {
		return nil, err
	}
	return newGroupOf(o, info)
}

// newGroupOf makes the group of engine info (o.engine resolved) with the
// settings of o.
func newGroupOf(o *engineOptions, info EngineInfo) (*group, error) {
	if o.burst < 0 {
		return nil, fmt.Errorf("zcio/reader: receive burst %d: %w", o.burst, ErrNegativeCount)
	}
	mem := o.memory
	if mem <= 0 {
		mem = DefaultMemory
	}
	bs := o.blockSize
	if bs <= 0 {
		bs = DefaultEngineBlockSize
	}
	if bs < arena.MinBlockSize || bs > arena.MaxBlockSize || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("zcio/reader: block size %d: want a power of two from %d to %d: %w", bs, arena.MinBlockSize, arena.MaxBlockSize, ErrInvalidConfig)
	}
	n := o.engines
	if n <= 0 {
		// One per core, but no more than the memory gives a sane arena
		// each: on a machine with hundreds of cores the default budget
		// would otherwise leave every engine a handful of blocks.
		n = max(1, min(runtime.GOMAXPROCS(0), mem/(minDefaultEngineBlocks*bs)))
	}
	blocks := mem / n / bs
	if blocks < 4 {
		return nil, fmt.Errorf("zcio/reader: memory budget %d bytes gives %d engines fewer than 4 blocks of %d bytes each: %w", mem, n, bs, ErrInvalidConfig)
	}
	blocks = min(blocks, 32768)
	qlimit := o.queueLimit
	if qlimit <= 0 {
		qlimit = min(DefaultQueueLimit, blocks*bs/4)
	}
	g := &group{info: info, qlimit: qlimit, lends: info.Name != NamePortable}
	for range n {
		a, err := arena.New(arena.Config{BlockSize: bs, Blocks: blocks, Debug: o.debug})
		if err != nil {
			g.closeEngines()
			return nil, fmt.Errorf("zcio/reader: engine arena: %w", err)
		}
		sh := new(atomic.Pointer[segq.Shared])
		e, err := newEngine(info.Name, a, o, sh)
		if err != nil {
			_ = a.Close()
			g.closeEngines()
			return nil, err
		}
		g.engines = append(g.engines, e)
		cfg := segq.Config{
			Arena:     a,
			Limit:     qlimit,
			MaxBlocks: max(2, a.Len()/8),
			Spiller:   e.spiller(),
			OnRelease: e.releaser(),
		}
		if g.lends {
			// A blocking-mode Reader used from a handler (misuse) must not
			// park the loop: it gets ErrWouldBlock instead.
			cfg.MustNotWait = e.onLoop
		}
		q := segq.NewShared(cfg)
		sh.Store(q)
		g.queues = append(g.queues, q)
	}
	g.readers = make([]readerPool, len(g.engines))
	g.refs.Store(1)
	return g, nil
}

// minDefaultEngineBlocks is the fewest blocks an engine gets when the
// number of engines is the default: 32, the buffer ring's largest window at
// the default block size.
const minDefaultEngineBlocks = 32

// spillReserve is the share of an engine's blocks kept out of the kernel's
// hands for spills.
func spillReserve(a *arena.Arena) int { return max(1, a.Len()/8) }

// spareKeep is how many spare segment arrays an engine keeps once idle
// (segq.Queue.Recycle): a burst leaves one per connection that had data
// queued at the time.
const spareKeep = 16

// newEngine starts an engine of the named kind over a. sh is where the
// engine's queue settings will be stored once made (they need the engine):
// its idle trim trims their spare segment arrays too.
func newEngine(name string, a *arena.Arena, o *engineOptions, sh *atomic.Pointer[segq.Shared]) (engine, error) {
	idleTrim := o.idleTrim
	if idleTrim == 0 {
		idleTrim = DefaultIdleTrim
	}
	onIdle := func() {
		if s := sh.Load(); s != nil {
			s.TrimSpare(spareKeep)
		}
	}
	if name == NameIOUring {
		return newUringEngine(a, idleTrim, onIdle, o.burst)
	}
	return newFallbackEngine(a, idleTrim, onIdle)
}

// pick returns the index of the engine for the next connection: round
// robin, passing over engines that failed (when all have, the next one,
// whose Attach then reports the failure).
func (g *group) pick() int {
	i := int(g.next.Add(1)-1) % len(g.engines)
	for k := 0; k < len(g.engines) && g.engines[i].failed(); k++ {
		i = (i + 1) % len(g.engines)
	}
	return i
}

func (g *group) retain() { g.refs.Add(1) }

// tryRetain adds a reference unless the last one is gone (the engines are
// closed or closing).
func (g *group) tryRetain() bool {
	for {
		n := g.refs.Load()
		if n <= 0 {
			return false
		}
		if g.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops one reference; the last one closes every engine and arena.
// It must not run on an engine loop (Close waits for the loop).
func (g *group) release() {
	if g.refs.Add(-1) == 0 {
		g.closeEngines()
	}
}

func (g *group) closeEngines() {
	for _, e := range g.engines {
		_ = e.close()
	}
}

var (
	sharedGroups   = map[engineOptions]*group{}
	sharedGroupsMu sync.Mutex
)

// sharedGroup returns the process-wide group Wrap uses for these engine
// options, created on first use and never closed: every Wrap asking for the
// same settings (defaults filled in) shares one group of engines.
func sharedGroup(o *engineOptions) (*group, error) {
	key := *o
	if key.memory <= 0 {
		key.memory = DefaultMemory
	}
	if key.blockSize <= 0 {
		key.blockSize = DefaultEngineBlockSize
	}
	key.engines = max(key.engines, 0)
	key.queueLimit = max(key.queueLimit, 0)
	// Auto shares the group of the engine it resolves to (after ZCIO_ENGINE
	// and the probe): a Wrap that names that engine must not start a second
	// set of engines with arenas of their own. The group keeps the reason of
	// whichever Wrap made it. Resolved once, here: the group is made with
	// this answer, whatever ZCIO_ENGINE says by then.
	info, err := choose(key.engine)
	if err != nil {
		return nil, err
	}
	key.engine = kindNamed(info.Name)
	switch {
	case key.idleTrim == 0:
		key.idleTrim = DefaultIdleTrim
	case key.idleTrim < 0:
		key.idleTrim = -1 // every negative value means never
	}
	sharedGroupsMu.Lock()
	defer sharedGroupsMu.Unlock()
	if g := sharedGroups[key]; g != nil {
		return g, nil
	}
	g, err := newGroupOf(&key, info)
	if err != nil {
		return nil, err
	}
	sharedGroups[key] = g
	return g, nil
}

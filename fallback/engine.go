package fallback

import (
	"errors"
	"time"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/slots"
)

// Errors returned by this package; match them with errors.Is.
var (
	ErrClosed      = errors.New("zcio/fallback: engine closed")
	ErrNoArena     = errors.New("zcio/fallback: config has no arena")
	ErrTooManyFDs  = errors.New("zcio/fallback: too many connections")
	ErrUnsupported = errors.New("zcio/fallback: epoll engine not supported on this OS")
	// ErrEngineFailed is wrapped, with the kernel's error, by the End of
	// every connection of an Engine that lost its epoll fd: epoll_wait
	// failed, or an epoll_ctl found the fd closed or its number naming
	// another file (code elsewhere in the process closed it: a double
	// close), before a connection is added, when an event matches no
	// connection, before a long sleep, or at Close. Attach returns it after
	// that, and so does Close. The loop ends
	// that engine's connections after the bytes they received, gives every
	// block back and stops, instead of taking the process down; other
	// engines are not touched. It leaves the number alone: it may belong to
	// someone else by then.
	ErrEngineFailed = errors.New("zcio/fallback: engine failed")
)

// Sink receives one connection's data. Every method is called on the
// engine's loop goroutine, never concurrently for one connection.
type Sink interface {
	// Deliver hands over the bytes [off, off+n) of block ref, with one
	// reference to the block that the sink now owns and must release. The
	// bytes outside that range belong to other segments, possibly of other
	// connections. Deliver returns true to pause the connection (it holds
	// enough) until [Engine.Resume]. One read may deliver several segments
	// (a block each); the answer to its last segment counts: a false after
	// a true means the sink lifted that pause itself (its consumer drained
	// meanwhile) and will not ask for a Resume.
	Deliver(ref arena.Ref, off, n int) (pause bool)
	// Flush is called after the Deliver calls of each read (one that paused
	// the connection too), before the engine reads the connection again: the
	// moment to consume them. After a Detach asked for in Flush the engine
	// reads the connection no more.
	Flush()
	// End says that no more data will come: io.EOF after the peer's orderly
	// shutdown, the read error, or ErrClosed when the engine stops. It is
	// called at most once. The fd stays the owner's until [Sink.Detached].
	End(err error)
	// Detached is called once the engine has stopped watching the fd, after
	// [Engine.Detach] or the engine's Close. The engine never touches the fd
	// again.
	Detached()
}

// Opener is an optional interface of a [Sink]: when the sink has it, the
// engine calls Opened once on its loop goroutine soon after Attach, before any
// other callback of that sink (handler mode uses it to run an open callback on
// the loop).
type Opener interface {
	Opened()
}

// Starver is an optional interface of a [Sink]: when the arena runs dry,
// the engine calls Starved on its loop for every attached connection (again
// every 20 ms while it stays dry), so that a connection holding part of an
// unfinished message can copy it out of the shared blocks (see
// segq.Spiller).
type Starver interface {
	Starved()
}

// Config configures an [Engine].
type Config struct {
	// Arena provides the blocks that data is read into. Required; it may be
	// shared with other engines and must outlive the engine.
	Arena *arena.Arena
	// MinRoom is the least room a partly filled block must have to take the
	// next read; below it the engine moves on to a fresh block. Zero means a
	// quarter of the block size.
	MinRoom int
	// ReadsPerEvent bounds the reads made from one socket per readiness event,
	// so one busy connection cannot hold up the others; the bytes are bounded
	// too, at 1 MiB, the most one io_uring arming takes
	// (ring.EngineConfig.ArmCap). Zero means 16. A read asks for up to 512
	// KiB while the arena has blocks to spare, one block otherwise.
	ReadsPerEvent int
	// MaxConns bounds the connections attached at once. Zero means 1<<20.
	MaxConns int
	// Reserve is how many blocks the engine leaves free in the arena for
	// spills (segq.Spiller): it counts the arena dry at Reserve free blocks.
	Reserve int
	// IdleTrim is how long the loop must see no event at all after some
	// work before it gives the pages of the arena's cold free blocks back to
	// the kernel (arena.Trim, keeping TrimKeep blocks; those too after
	// DeepTrimFactor×IdleTrim more of quiet). Zero means DefaultIdleTrim;
	// negative, never.
	IdleTrim time.Duration
	// OnIdleTrim, when set, is called on the loop at each idle trim, after
	// the engine's own: for the caller's idle state (spare segment arrays,
	// say). It must not block.
	OnIdleTrim func()
}

// DefaultReadsPerEvent is Config.ReadsPerEvent's default.
const DefaultReadsPerEvent = 16

// DefaultIdleTrim is Config.IdleTrim's default.
const DefaultIdleTrim = 100 * time.Millisecond

// TrimKeep is how many free blocks an idle trim leaves resident: the ones
// the next reads take first, enough for light traffic (a message now and
// then) to find a block without page faults. They go too if the loop stays
// quiet for DeepTrimFactor times IdleTrim more. (Keeping 8 held 192 KiB
// more of two engines' arenas resident for that second: see README.md.)
const TrimKeep = 2

// DeepTrimFactor: an engine quiet for DeepTrimFactor×IdleTrim after an idle
// trim gives back the TrimKeep blocks as well, so that a server whose
// connections all went idle keeps no arena page of its own.
const DeepTrimFactor = 10

func (c Config) withDefaults() (Config, error) {
	if c.Arena == nil {
		return c, ErrNoArena
	}
	if c.MinRoom <= 0 || c.MinRoom > c.Arena.BlockSize() {
		c.MinRoom = c.Arena.BlockSize() / 4
	}
	if c.ReadsPerEvent <= 0 {
		c.ReadsPerEvent = DefaultReadsPerEvent
	}
	if c.IdleTrim == 0 {
		c.IdleTrim = DefaultIdleTrim
	}
	c.Reserve = min(max(c.Reserve, 0), c.Arena.Len()-1)
	if c.MaxConns <= 0 || c.MaxConns > slots.Max {
		c.MaxConns = slots.Max
	}
	return c, nil
}

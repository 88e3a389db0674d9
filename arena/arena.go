package arena

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// Limits on a [Config].
const (
	MinBlockSize = 4 << 10 // smallest block: one page
	MaxBlockSize = 1 << 20 // largest block
	MaxBlocks    = 1 << 15 // io_uring buffer ids are 16 bits; the kernel caps a buffer ring at 32768 entries

	DefaultBlockSize = 16 << 10 // used when Config.BlockSize is 0
	DefaultBlocks    = 256      // used when Config.Blocks is 0 (4 MiB with the default block size)
)

// Errors returned by this package; match them with errors.Is.
var (
	ErrInvalidConfig = errors.New("zcio/arena: invalid config")
	ErrInUse         = errors.New("zcio/arena: blocks still in use")
	ErrClosed        = errors.New("zcio/arena: arena closed")
)

// Config describes an arena. The zero value is valid and gives
// DefaultBlocks blocks of DefaultBlockSize bytes.
type Config struct {
	// BlockSize is the size of one block in bytes: a power of two from
	// MinBlockSize to MaxBlockSize. Zero means DefaultBlockSize.
	BlockSize int
	// Blocks is the number of blocks, 1 to MaxBlocks. Zero means DefaultBlocks.
	Blocks int
	// Prefault maps the region with MAP_POPULATE: every page is resident from
	// the start (RSS = Blocks × BlockSize), so the first receive into a block
	// takes no page fault.
	Prefault bool
	// HugePages advises transparent huge pages (MADV_HUGEPAGE). It is advice:
	// a refusal is reported by [Arena.HugePages], never an error.
	HugePages bool
	// Debug mprotects every free block PROT_NONE so that a view used after its
	// release faults at once. It costs two mprotect(2) calls per block cycle.
	// Ignored, and reported by [Arena.Debug] as false, where mprotect is missing.
	Debug bool
}

func (c Config) withDefaults() Config {
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.Blocks == 0 {
		c.Blocks = DefaultBlocks
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.BlockSize < MinBlockSize || c.BlockSize > MaxBlockSize:
		return fmt.Errorf("%w: block size %d outside [%d, %d]", ErrInvalidConfig, c.BlockSize, MinBlockSize, MaxBlockSize)
	case c.BlockSize&(c.BlockSize-1) != 0:
		return fmt.Errorf("%w: block size %d is not a power of two", ErrInvalidConfig, c.BlockSize)
	case c.Blocks < 1 || c.Blocks > MaxBlocks:
		return fmt.Errorf("%w: block count %d outside [1, %d]", ErrInvalidConfig, c.Blocks, MaxBlocks)
	case uint64(c.Blocks)*uint64(c.BlockSize) > math.MaxInt:
		// Where int has 32 bits, 4,096 blocks of 1 MiB already wrap.
		return fmt.Errorf("%w: %d blocks of %d bytes do not fit in an int", ErrInvalidConfig, c.Blocks, c.BlockSize)
	}
	return nil
}

// Ref names one lifetime of one block: its id and the generation the block had
// when it was taken. A Ref is a plain value; copying it does not add a
// reference (use [Arena.Retain]).
type Ref struct {
	id  uint16
	gen uint32
}

// ID returns the block id, in [0, Arena.Len()).
func (r Ref) ID() uint16 { return r.id }

// Gen returns the block's generation for this lifetime.
func (r Ref) Gen() uint32 { return r.gen }

// String formats the ref as "block ID gen G".
func (r Ref) String() string { return fmt.Sprintf("block %d gen %d", r.id, r.gen) }

// Arena is one mmap'd region cut into fixed blocks. All methods are safe for
// concurrent use. An Arena must stay reachable while any view into it is in
// use: views point into the mapping, and the mapping does not keep the Arena
// alive.
type Arena struct {
	mem       []byte // the whole mapping
	blockSize int
	shift     uint // log2(blockSize)
	n         int
	debug     bool
	huge      bool

	free  freeList
	state []atomic.Uint64 // per block: generation<<32 | reference count
	st    *counters       // reg.st, one hop shorter
	reg   *region         // shared with the cleanup, which must not reach the Arena

	// mark[id] is markDirty once block id was taken since its pages were
	// last given back (or since the mapping), markClean if not, and
	// markTrimming while Trim gives its pages back. Take sets its count
	// before it looks at the mark, Trim marks before it looks at the
	// count: one of them sees the other, so Trim never gives back a taken
	// block's pages and no block leaves the free list for a Trim.
	mark    []atomic.Uint32
	trimMu  sync.Mutex
	trimBuf []uint16 // Trim's scratch, made on first use
	trimmed atomic.Uint64

	closed  atomic.Bool
	cleanup runtime.Cleanup
}

// New maps an arena described by cfg. An invalid cfg returns an error that
// matches ErrInvalidConfig; a failed mapping returns the system error.
func New(cfg Config) (*Arena, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := mapRegion(cfg)
	if err != nil {
		return nil, fmt.Errorf("zcio/arena: map %d × %d bytes: %w", cfg.Blocks, cfg.BlockSize, err)
	}
	a := &Arena{
		mem:       m.mem,
		blockSize: cfg.BlockSize,
		shift:     uint(bits.TrailingZeros(uint(cfg.BlockSize))),
		n:         cfg.Blocks,
		debug:     m.debug,
		huge:      m.huge,
		state:     make([]atomic.Uint64, cfg.Blocks),
		mark:      make([]atomic.Uint32, cfg.Blocks),
		st:        m.st,
		reg:       m,
	}
	a.free.init(cfg.Blocks)
	a.cleanup = runtime.AddCleanup(a, (*region).release, m)
	return a, nil
}

// Len returns the number of blocks.
func (a *Arena) Len() int { return a.n }

// BlockSize returns the size of one block in bytes.
func (a *Arena) BlockSize() int { return a.blockSize }

// Size returns the size of the mapping in bytes (Len × BlockSize).
func (a *Arena) Size() int { return len(a.mem) }

// Debug reports whether free blocks are mprotect'ed.
func (a *Arena) Debug() bool { return a.debug }

// HugePages reports whether transparent huge pages were asked for and the
// kernel accepted the advice (madvise succeeded and THP is not disabled
// system-wide). The kernel may still back some pages with small pages.
func (a *Arena) HugePages() bool { return a.huge }

// Bytes returns the whole block id as a view into the mapping (length and
// capacity BlockSize). It does not check ownership: the caller must hold a
// live reference to the block, and the view is valid only while it does.
// It panics if id is out of range.
func (a *Arena) Bytes(id uint16) []byte {
	off := int(id) << a.shift
	return a.mem[off : off+a.blockSize : off+a.blockSize]
}

// Take removes a free block from the arena and returns a reference to it with
// a count of one. When every block is in use it returns ok == false at once:
// it never waits for a block to be released and never allocates (it may
// wait for a concurrent Trim to finish the one madvise of the block it
// got). The block still holds whatever bytes its previous owner left in it.
func (a *Arena) Take() (r Ref, ok bool) {
	id, ok := a.free.pop()
	if !ok {
		a.st.failed.Add(1)
		return Ref{}, false
	}
	s := &a.state[id]
	gen := uint32(s.Load() >> 32)
	s.Store(uint64(gen)<<32 | 1) // first: a Trim that marks the block from now on sees it taken
	m := &a.mark[id]
	for {
		switch m.Load() {
		case markDirty:
		case markTrimming:
			runtime.Gosched() // Trim saw the block free and is in its madvise
			continue
		default:
			m.CompareAndSwap(markClean, markDirty) // only Trim moves it too, from markDirty
			continue
		}
		break
	}
	if a.debug {
		a.protect(id, true)
	}
	a.st.took()
	return Ref{id: id, gen: gen}, true
}

// Block marks (Arena.mark).
const (
	markClean    = iota // not taken since its pages were given back (or mapped)
	markDirty           // taken since its pages were last given back
	markTrimming        // Trim is giving its pages back
)

// Trim gives back to the kernel the pages of free blocks that were used
// since the last Trim, except the keep blocks that Take would hand out
// next (the ones given back most recently, which a busy user keeps
// reusing). The blocks stay free and on the free list: a concurrent Take
// still gets one (waiting, if Trim is giving back that very block, for
// its madvise). Their next use faults in zeroed pages. It returns how many
// blocks it gave pages back of.
func (a *Arena) Trim(keep int) int {
	a.trimMu.Lock()
	defer a.trimMu.Unlock()
	if a.trimBuf == nil {
		a.trimBuf = make([]uint16, 0, a.n)
	}
	ids := a.free.walk(a.trimBuf[:0])
	n := 0
	for _, id := range ids[min(max(keep, 0), len(ids)):] {
		m := &a.mark[id]
		if !m.CompareAndSwap(markDirty, markTrimming) {
			continue // nothing to give back
		}
		switch {
		case uint32(a.state[id].Load()) != 0:
			m.Store(markDirty) // taken since the walk: its Take waits for this store
		case !a.resident(a.Bytes(id)):
			m.Store(markClean) // given back already (a whole-block Discard), or never written
		case a.discard(id):
			m.Store(markClean)
			n++
		default:
			m.Store(markDirty)
		}
	}
	a.trimmed.Add(uint64(n))
	return n
}

// Discard gives back to the kernel the whole pages of block r from byte from
// to the block's end: they read as zeros afterwards, and their next touch
// faults in fresh pages. The caller holds r and guarantees that nothing
// reads or writes those bytes meanwhile (a buffer ring uses it for the
// unwritten part of the blocks it has lent to the kernel, at a moment the
// kernel cannot write them). It returns how many bytes it gave back (0 where
// the arena is not an mmap'd region). It panics if r is stale.
func (a *Arena) Discard(r Ref, from int) int {
	s := a.slot(r)
	if v := s.Load(); uint32(v>>32) != r.gen || uint32(v) == 0 {
		panic(a.staleMessage("discard", r, v))
	}
	page := pageSize()
	from = (max(from, 0) + page - 1) / page * page
	b := a.Bytes(r.id)
	if from >= len(b) {
		return 0
	}
	counted := from == 0 && a.resident(b) // a block already given back counts once
	if !a.discardBytes(b[from:]) {
		return 0
	}
	if counted {
		a.trimmed.Add(1)
	}
	return len(b) - from
}

// Retain adds a reference to the block r names, so that it outlives the
// caller's own [Arena.Release]. It panics if r is stale (the block was released
// and possibly taken again since r was made).
func (a *Arena) Retain(r Ref) {
	s := a.slot(r)
	for {
		v := s.Load()
		if uint32(v>>32) != r.gen || uint32(v) == 0 {
			panic(a.staleMessage("retain", r, v))
		}
		if uint32(v) == ^uint32(0) {
			panic(fmt.Sprintf("zcio/arena: retain %v: reference count overflow", r))
		}
		if s.CompareAndSwap(v, v+1) {
			return
		}
	}
}

// TryRetain is Retain for a reference that may be stale: it adds a
// reference and reports true if the block r names has not been released
// since r was made, and otherwise changes nothing and reports false. It
// is for code that remembers a block it holds no reference to (a spiller
// appending to the block its earlier copies are in, as long as one of them
// is still held).
func (a *Arena) TryRetain(r Ref) bool {
	s := a.slot(r)
	for {
		v := s.Load()
		if uint32(v>>32) != r.gen || uint32(v) == 0 || uint32(v) == ^uint32(0) {
			return false
		}
		if s.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// Release drops one reference to the block r names. When the last reference
// goes, the block's generation advances and it returns to the free list; every
// view into it is then invalid. Releasing more often than the block was taken
// and retained, or through a stale r, panics with a message naming the block
// id and the generations involved.
func (a *Arena) Release(r Ref) {
	s := a.slot(r)
	for {
		v := s.Load()
		if uint32(v>>32) != r.gen || uint32(v) == 0 {
			panic(a.staleMessage("release", r, v))
		}
		next := v - 1
		last := uint32(v) == 1
		if last {
			next = uint64(r.gen+1) << 32
		}
		if !s.CompareAndSwap(v, next) {
			continue
		}
		if last {
			if a.debug {
				a.protect(r.id, false)
			}
			a.st.gave()
			a.free.push(r.id)
		}
		return
	}
}

// Lookup returns the reference naming the current lifetime of block id, and
// false if the block is free. It is for the code that owns the block (an
// engine that learns a block id from the kernel); it adds no reference.
func (a *Arena) Lookup(id uint16) (Ref, bool) {
	if int(id) >= a.n {
		return Ref{}, false
	}
	v := a.state[id].Load()
	if uint32(v) == 0 {
		return Ref{}, false
	}
	return Ref{id: id, gen: uint32(v >> 32)}, true
}

// Refs returns the reference count of block id (0 when it is free).
func (a *Arena) Refs(id uint16) int {
	return int(uint32(a.state[id].Load()))
}

func (a *Arena) slot(r Ref) *atomic.Uint64 {
	if int(r.id) >= a.n {
		panic(fmt.Sprintf("zcio/arena: %v: id out of range [0, %d)", r, a.n))
	}
	return &a.state[r.id]
}

func (a *Arena) staleMessage(op string, r Ref, v uint64) string {
	gen, count := uint32(v>>32), uint32(v)
	if gen == r.gen+1 && count == 0 {
		return fmt.Sprintf("zcio/arena: %s of block %d gen %d: already released (block is free at gen %d): double release", op, r.id, r.gen, gen)
	}
	return fmt.Sprintf("zcio/arena: %s of block %d gen %d: stale reference (block is at gen %d with %d references)", op, r.id, r.gen, gen, count)
}

// Stats is a snapshot of an arena's counters.
type Stats struct {
	Blocks      int    // total blocks
	BlockSize   int    // bytes per block
	InUse       int    // blocks taken and not yet given back
	PeakInUse   int    // highest InUse seen
	Takes       uint64 // successful Take calls
	GiveBacks   uint64 // blocks returned to the free list
	FailedTakes uint64 // Take calls that found the arena dry
	Trimmed     uint64 // blocks whose pages Trim, or a whole-block Discard, gave back to the kernel
}

// Stats returns a snapshot of the counters. Under concurrent use the fields
// are read one by one, so they may be a few operations apart.
func (a *Arena) Stats() Stats {
	takes, gives := a.free.counts()
	return Stats{
		Blocks:      a.n,
		BlockSize:   a.blockSize,
		InUse:       a.st.used(),
		PeakInUse:   int(a.st.peak.Load()),
		Takes:       takes,
		GiveBacks:   gives,
		FailedTakes: a.st.failed.Load(),
		Trimmed:     a.trimmed.Load(),
	}
}

// InUse returns the number of blocks taken and not yet given back.
func (a *Arena) InUse() int { return a.st.used() }

// Close unmaps the arena. While blocks are in use it returns an error matching
// ErrInUse that says how many, and leaves the memory mapped so that no view
// points at unmapped memory; call Close again once they are back. Closing
// twice returns ErrClosed.
func (a *Arena) Close() error {
	if n := a.st.used(); n > 0 {
		return fmt.Errorf("zcio/arena: close: %w: %d of %d blocks", ErrInUse, n, a.n)
	}
	if !a.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("zcio/arena: close: %w", ErrClosed)
	}
	a.cleanup.Stop()
	return a.reg.unmap()
}

package ring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/unix"
)

// BufRing is a provided-buffer ring (IORING_REGISTER_PBUF_RING, Linux 5.19)
// whose buffers are the blocks of one arena: the kernel picks a block for
// each receive of a request that names the ring's group. The ring's entries
// live in mmap'd memory shared with the kernel, never Go heap.
//
// The BufRing owns one arena reference per block it has published; Claim
// hands that reference (or a new one, while the kernel keeps filling the
// block) to the caller. Only the ring's owner goroutine may call its
// methods; blocks are released to the arena from anywhere and come back
// with Refill.
type BufRing struct {
	r     *Ring
	a     *arena.Arena
	group uint16
	inc   bool // IOU_PBUF_RING_INC: the kernel fills a block across receives

	mem     []byte
	entries []bufEntry
	mask    uint16
	tail    uint16  // our tail, published by publish
	tailPtr *uint32 // the 32-bit word holding entry 0's bid and the tail

	held []arena.Ref // held[id]: the ring's reference to a block in the kernel's hands
	in   []bool      // in[id]: the block is published and not fully handed back
	nin  int         // how many in[id] are set (Held)
	fill []uint32    // incremental mode: bytes of the block the kernel has used
	// bare[id] is fill[id]+1 when DiscardUnfilled last gave back the pages
	// past fill[id] and the kernel has written nothing since (0: not so).
	bare []uint32
	// order[i&mask] is the block published at ring index i, and pos[id] the
	// index block id was last published at: a bundled receive fills the
	// blocks that follow its first one in ring order (Next).
	order []uint16
	pos   []uint16

	reserve int // free blocks Refill leaves in the arena
	closed  bool
}

// RegisterBufRing registers a buffer ring for group over every block of a
// and publishes every free block. Incremental consumption (Linux 6.12) is
// used where the kernel has it, so that small receives from any connection
// share a block instead of using one each. Close (or the Ring's Close)
// unregisters it and releases the blocks the kernel still holds.
func (r *Ring) RegisterBufRing(group uint16, a *arena.Arena) (*BufRing, error) {
	if r.closed {
		return nil, ErrClosed
	}
	if a == nil {
		return nil, fmt.Errorf("zcio/ring: register buffer ring: %w: no arena", ErrInvalidConfig)
	}
	n := roundPow2(uint32(a.Len()))
	size := int(n) * bufEntrySize
	page := unix.Getpagesize()
	size = (size + page - 1) / page * page
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("zcio/ring: register buffer ring: mmap: %w", err)
	}
	b := &BufRing{
		r: r, a: a, group: group,
		mem:     mem,
		entries: unsafe.Slice((*bufEntry)(unsafe.Pointer(&mem[0])), n),
		mask:    uint16(n - 1),
		tailPtr: (*uint32)(unsafe.Pointer(&mem[bufTailOff-2])),
		held:    make([]arena.Ref, a.Len()),
		in:      make([]bool, a.Len()),
		fill:    make([]uint32, a.Len()),
		bare:    make([]uint32, a.Len()),
		order:   make([]uint16, n),
		pos:     make([]uint16, a.Len()),
	}
	reg := bufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), ringEntries: n, bgid: group}
	if Probe().IncrementalBuffers.OK {
		reg.flags = pbufRingInc
		b.inc = true
	}
	if _, err := unix.IoUringRegister(r.fd, registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		_ = unix.Munmap(mem)
		return nil, fmt.Errorf("zcio/ring: io_uring_register(IORING_REGISTER_PBUF_RING): %w", err)
	}
	r.bufRings = append(r.bufRings, b)
	b.Refill()
	return b, nil
}

// Group returns the buffer group id requests name to receive into this ring.
func (b *BufRing) Group() uint16 { return b.group }

// Incremental reports whether the kernel consumes blocks incrementally.
func (b *BufRing) Incremental() bool { return b.inc }

// SetReserve makes Refill leave n free blocks in the arena (for spills,
// see segq.Spiller) instead of publishing them all.
func (b *BufRing) SetReserve(n int) { b.reserve = min(max(n, 0), b.a.Len()-1) }

// Refill takes every free block of the arena but the reserve, adds it to the
// ring and publishes the new tail with one store. It returns how many blocks
// it added.
func (b *BufRing) Refill() int { return b.RefillUpTo(b.a.Len()) }

// RefillUpTo is Refill publishing at most n blocks. Blocks come from the
// arena's free list, most recently released first, so a ring kept shallow
// keeps cycling through the same few blocks: the rest of the arena is never
// touched, and never becomes resident.
func (b *BufRing) RefillUpTo(n int) int {
	if b.closed {
		return 0
	}
	free := min(n, b.a.Len()-b.a.InUse()-b.reserve)
	added := 0
	for ; added < free; added++ {
		ref, ok := b.a.Take()
		if !ok {
			break
		}
		b.add(ref)
	}
	if added > 0 {
		b.publish()
	}
	return added
}

func (b *BufRing) add(ref arena.Ref) {
	id := ref.ID()
	e := &b.entries[b.tail&b.mask]
	blk := b.a.Bytes(id)
	e.addr = uint64(uintptr(unsafe.Pointer(&blk[0])))
	e.len = uint32(len(blk))
	e.bid = id
	b.order[b.tail&b.mask], b.pos[id] = id, b.tail
	b.held[id], b.in[id], b.fill[id], b.bare[id] = ref, true, 0, 0
	b.nin++
	b.tail++
}

// publish makes the added entries visible to the kernel: a release store of
// the tail. sync/atomic has no 16-bit store, so it stores the 32-bit word
// that holds the tail and entry 0's bid (which this goroutine alone writes;
// see tailWord).
func (b *BufRing) publish() {
	old := atomic.LoadUint32(b.tailPtr)
	atomic.StoreUint32(b.tailPtr, tailWord(old, b.tail, nativeLittleEndian))
}

// errNotPublished names the bug in Claim's panic: a block id the ring does
// not hold.
var errNotPublished = errors.New("block not in the buffer ring")

// Claim takes over the n bytes a receive completion reported in block id:
// it returns a reference for the caller to own and the offset of the bytes
// in the block. When more is set (IORING_CQE_F_BUF_MORE: the kernel keeps
// filling the block) the ring keeps its own reference and the caller gets a
// new one; otherwise the ring's reference passes to the caller and the block
// comes back to the ring by Refill once its last reference is released. It
// panics for an id the ring does not hold: the kernel never reports one, so
// that is a bug in the caller.
func (b *BufRing) Claim(id uint16, n int, more bool) (ref arena.Ref, off int) {
	if int(id) >= len(b.in) || !b.in[id] {
		panic(fmt.Sprintf("zcio/ring: claim block %d: %v", id, errNotPublished))
	}
	ref, off = b.held[id], int(b.fill[id])
	b.bare[id] = 0
	if more && b.inc {
		b.a.Retain(ref)
		b.fill[id] += uint32(n)
		return ref, off
	}
	b.held[id], b.in[id], b.fill[id] = arena.Ref{}, false, 0
	b.nin--
	return ref, off
}

// Room returns how many bytes of block id, which the ring holds, the kernel
// has not filled yet: the most a receive can have put there.
func (b *BufRing) Room(id uint16) int { return b.a.BlockSize() - int(b.fill[id]) }

// Next returns the block published right after block id, the one the kernel
// fills after it (it takes blocks in ring order), and false when id is the
// last published. A bundled receive (IORING_RECVSEND_BUNDLE) reports only
// its first block: its bytes run on into the blocks Next names, each filled
// to the end but the last.
func (b *BufRing) Next(id uint16) (uint16, bool) {
	i := b.pos[id] + 1
	if i == b.tail {
		return 0, false
	}
	return b.order[i&b.mask], true
}

// DiscardUnfilled gives back to the kernel the pages of what the ring holds
// and the kernel has not written: the whole of each block it has not
// started, the pages past what it has filled of one it is filling. The
// next receives into them fault in fresh pages. It returns how many blocks
// it gave back whole.
//
// Call it only when the kernel cannot be writing into the ring's blocks and
// has written nothing the caller has not seen a completion for: the ring's
// kernel writes happen only inside its owner's io_uring_enter
// (Ring.DeferTaskrun, on a kernel that runs no multishot request on io-wq:
// the engine asks for Incremental too), every completion has been reaped
// and claimed, and none waits in an overflow backlog (Ring.Overflowed).
func (b *BufRing) DiscardUnfilled() int {
	if b.closed {
		return 0
	}
	whole := 0
	bs := b.a.BlockSize()
	for id, in := range b.in {
		if !in || b.bare[id] == b.fill[id]+1 {
			continue // not lent, or given back already and not written since
		}
		if n := b.a.Discard(b.held[id], int(b.fill[id])); n == bs {
			whole++
		}
		b.bare[id] = b.fill[id] + 1
	}
	return whole
}

// Held returns how many blocks the ring holds (published or partly filled).
// The engine reads it at every loop iteration: it is a count, not a scan.
func (b *BufRing) Held() int { return b.nin }

// Close unregisters the ring, releases every block it holds and unmaps its
// entries, once. Call it after the requests that use the group have ended.
func (b *BufRing) Close() error {
	if b.closed {
		return ErrClosed
	}
	b.closed = true
	var errs []error
	reg := bufReg{bgid: b.group}
	if !b.r.closed {
		if _, err := unix.IoUringRegister(b.r.fd, unregisterPbufRing, unsafe.Pointer(&reg), 1); err != nil {
			errs = append(errs, fmt.Errorf("zcio/ring: io_uring_register(IORING_UNREGISTER_PBUF_RING): %w", err))
		}
	}
	for id, in := range b.in {
		if in {
			b.in[id] = false
			b.nin--
			b.a.Release(b.held[id])
		}
	}
	if err := unix.Munmap(b.mem); err != nil {
		errs = append(errs, fmt.Errorf("zcio/ring: munmap buffer ring: %w", err))
	}
	b.mem, b.entries = nil, nil
	for i, x := range b.r.bufRings {
		if x == b {
			b.r.bufRings = append(b.r.bufRings[:i], b.r.bufRings[i+1:]...)
			break
		}
	}
	return errors.Join(errs...)
}

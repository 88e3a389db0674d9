//go:build linux

package fallback

import (
	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/unix"
)

// readTarget is how many bytes one read asks for when the arena has blocks
// to spare: the tail block's free part and fresh blocks after it while they
// add up to less than this (so up to a block more), filled by one readv(2).
// A read per block (16 KiB by default) cost about four times the system
// calls and ACKs per byte of a 64 KiB read; 512 KiB reads cost the server
// 0.5-0.6x the CPU per GB of 64 KiB ones with 64 busy connections, and
// 0.6-0.7x with 1,000 (harness, loopback, 1 KiB messages): fewer reads,
// and fewer of the window updates that make a loopback sender transmit
// inside our read.
// With the per-read flush the handler consumes each read before the next,
// so the arena's working set stays one read.
const readTarget = 512 << 10

// maxAhead bounds the fresh blocks one read may spill into.
const maxAhead = unix.MaxReadv - 1

// tailBlock is the block the engine is currently filling. It belongs to the
// engine, not to a connection: reads from any connection land one after the
// other in the same block, each segment holding its own reference, so an idle
// connection holds no block and a hundred 60-byte messages use one block, not
// a hundred. The engine's own reference is dropped when the block is full or
// the engine stops.
//
// A read may run past the tail block into blocks taken ahead (ahead); the
// first of them becomes the tail when the tail is full. The engine takes
// them only while the arena has plenty free (spareOK), at most one per 16
// blocks of the arena, and gives back those a read left unused before it
// sleeps (retireIfUnshared).
type tailBlock struct {
	a       *arena.Arena
	ref     arena.Ref
	off     int
	have    bool
	minRoom int // below this much room the block is retired and a fresh one taken
	reserve int // blocks left free for spills

	ahead  [maxAhead]arena.Ref // blocks taken for reads that overrun the tail, in order
	nAhead int
}

// room returns the free part of the tail block, taking a fresh block when
// the current one has less than minRoom left. ok is false when the arena is
// dry; nothing is held then.
func (t *tailBlock) room() (buf []byte, ok bool) {
	if t.have && t.a.BlockSize()-t.off < t.minRoom {
		t.retire()
	}
	if !t.have {
		if t.nAhead > 0 {
			t.advance()
		} else {
			if t.reserve > 0 && t.a.Len()-t.a.InUse() <= t.reserve {
				return nil, false
			}
			r, ok := t.a.Take()
			if !ok {
				return nil, false
			}
			t.ref, t.off, t.have = r, 0, true
		}
	}
	return t.a.Bytes(t.ref.ID())[t.off:], true
}

// rooms appends to bufs (whose capacity bounds how many it may add) the
// free part of the tail block and, while they add up to less than
// readTarget, whole blocks after it: those already taken ahead, then fresh
// ones while the arena has plenty free. It appends nothing when the arena
// is dry.
func (t *tailBlock) rooms(bufs [][]byte) [][]byte {
	buf, ok := t.room()
	if !ok {
		return bufs
	}
	bufs = append(bufs, buf)
	bs := t.a.BlockSize()
	// At most one block ahead per 16 of the arena: a reader caps the blocks
	// one connection may hold at an eighth of them (segq.Config.MaxBlocks),
	// and a single read must not reach that cap on its own.
	limit := min(maxAhead, t.a.Len()/16)
	for i, want := 0, readTarget-len(buf); want > 0 && len(bufs) < cap(bufs) && i < limit; i++ {
		if i == t.nAhead {
			if !t.spareOK() {
				break
			}
			r, ok := t.a.Take()
			if !ok {
				break
			}
			t.ahead[i] = r
			t.nAhead++
		}
		bufs = append(bufs, t.a.Bytes(t.ahead[i].ID()))
		want -= bs
	}
	return bufs
}

// spareOK reports whether the arena has plenty of free blocks, so that a
// read may take one ahead: more than the reserve plus a quarter of the
// arena. Nearer to dry, reads stay within the tail block, as before, and
// leave the blocks to the connections that wait for them.
func (t *tailBlock) spareOK() bool {
	return t.a.Len()-t.a.InUse() > t.reserve+t.a.Len()/4
}

// claim hands up to n of the bytes just read to a segment, in the order
// they were read: from the tail block, or, when it is full, from the first
// block taken ahead, which becomes the tail. It adds a reference for the
// segment and returns where its m bytes are.
func (t *tailBlock) claim(n int) (ref arena.Ref, off, m int) {
	if t.off == t.a.BlockSize() && t.nAhead > 0 {
		t.retire()
		t.advance()
	}
	m = min(n, t.a.BlockSize()-t.off)
	t.a.Retain(t.ref)
	ref, off = t.ref, t.off
	t.off += m
	return ref, off, m
}

// advance makes the first block taken ahead the tail, which must have been
// retired.
func (t *tailBlock) advance() {
	t.ref, t.off, t.have = t.ahead[0], 0, true
	copy(t.ahead[:], t.ahead[1:t.nAhead])
	t.nAhead--
	t.ahead[t.nAhead] = arena.Ref{}
}

// retire drops the engine's reference to the tail block.
func (t *tailBlock) retire() {
	if t.have {
		t.have = false
		t.a.Release(t.ref)
	}
}

// dropAhead gives back the blocks taken ahead (none of their bytes was
// claimed).
func (t *tailBlock) dropAhead() {
	for i := range t.ahead[:t.nAhead] {
		t.a.Release(t.ahead[i])
		t.ahead[i] = arena.Ref{}
	}
	t.nAhead = 0
}

// retireAll drops every block the engine holds: the engine stops.
func (t *tailBlock) retireAll() {
	t.retire()
	t.dropAhead()
}

// retireIfUnshared, when the engine is about to sleep, gives back the blocks
// taken ahead and drops the tail block when no segment refers to it any
// more: an idle engine then holds no block, while a block that readers
// still hold parts of stays the tail, so the next small reads share it.
func (t *tailBlock) retireIfUnshared() {
	t.dropAhead()
	if t.have && t.a.Refs(t.ref.ID()) == 1 {
		t.retire()
	}
}

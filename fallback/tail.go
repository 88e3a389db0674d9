package fallback

import "github.com/zcio/zcio/arena"

// tailBlock is the block the engine is currently filling. It belongs to the
// engine, not to a connection: reads from any connection land one after the
// other in the same block, each segment holding its own reference, so an idle
// connection holds no block and a hundred 60-byte messages use one block, not
// a hundred. The engine's own reference is dropped when the block is full or
// the engine stops.
type tailBlock struct {
	a       *arena.Arena
	ref     arena.Ref
	off     int
	have    bool
	minRoom int // below this much room the block is retired and a fresh one taken
	reserve int // blocks left free for spills
}

// room returns the free part of the tail block, taking a fresh block when
// the current one has less than minRoom left. ok is false when the arena is
// dry; nothing is held then.
func (t *tailBlock) room() (buf []byte, ok bool) {
	if t.have && t.a.BlockSize()-t.off < t.minRoom {
		t.retire()
	}
	if !t.have {
		if t.reserve > 0 && t.a.Len()-t.a.InUse() <= t.reserve {
			return nil, false
		}
		r, ok := t.a.Take()
		if !ok {
			return nil, false
		}
		t.ref, t.off, t.have = r, 0, true
	}
	return t.a.Bytes(t.ref.ID())[t.off:], true
}

// claim hands the n bytes just written at the start of room() to a segment:
// it adds a reference for the segment and returns where the bytes are.
func (t *tailBlock) claim(n int) (ref arena.Ref, off int) {
	t.a.Retain(t.ref)
	ref, off = t.ref, t.off
	t.off += n
	return ref, off
}

// retire drops the engine's reference to the tail block.
func (t *tailBlock) retire() {
	if t.have {
		t.have = false
		t.a.Release(t.ref)
	}
}

// retireIfUnshared drops the tail block when no segment refers to it any
// more: an idle engine then holds no block, while a block that readers still
// hold parts of stays the tail, so the next small reads share it.
func (t *tailBlock) retireIfUnshared() {
	if t.have && t.a.Refs(t.ref.ID()) == 1 {
		t.retire()
	}
}

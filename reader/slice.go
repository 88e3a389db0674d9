package reader

import (
	"fmt"
	"sync/atomic"

	"github.com/zcio/zcio/arena"
)

// Slice is bytes consumed from a Reader and kept past the call: views into
// arena blocks, each held by a reference of the Slice's own. The views stay
// valid, and their blocks out of the arena, until Release, whatever the Reader
// does meanwhile (later reads, Close). A Slice may be handed to another
// goroutine; Release must be called exactly once, by one goroutine, after the
// last use of the views.
type Slice struct {
	views    [][]byte
	refs     []arena.Ref
	n        int
	release  func(arena.Ref)
	released atomic.Bool
}

// Retain consumes the next n bytes and returns them as a Slice that keeps
// its views valid until Slice.Release. It waits as Peek does and fails as
// Peek does, with nothing consumed. It allocates the Slice.
func (r *Reader) Retain(n int) (*Slice, error) {
	if err := r.begin(); err != nil {
		return nil, err
	}
	defer r.end()
	if err := r.ensure(n); err != nil {
		return nil, err
	}
	v := r.viewsOf(n)
	s := &Slice{
		views:   make([][]byte, len(v)),
		refs:    make([]arena.Ref, len(v)),
		n:       n,
		release: r.src.releaser(),
	}
	copy(s.views, v)
	clear(r.views)
	for i := range s.refs {
		ref := r.segs[r.h+i].Ref
		r.a.Retain(ref)
		s.refs[i] = ref
	}
	r.consume(n)
	return s, nil
}

// Views returns the Slice's bytes as views into the arena, in order; they
// are valid until Release. The [][]byte belongs to the Slice: do not modify
// it. After Release it returns nil.
func (s *Slice) Views() [][]byte {
	if s.released.Load() {
		return nil
	}
	return s.views
}

// Len returns the number of bytes the Slice holds.
func (s *Slice) Len() int { return s.n }

// AppendTo appends a copy of the Slice's bytes to dst and returns it. It
// panics after Release.
func (s *Slice) AppendTo(dst []byte) []byte {
	if s.released.Load() {
		panic("zcio/reader: Slice used after Release")
	}
	for _, v := range s.views {
		dst = append(dst, v...)
	}
	return dst
}

// Release gives the Slice's blocks back; every view from it becomes
// invalid. Releasing a Slice twice is a bug in the caller (its blocks may
// already hold another connection's data) and panics.
func (s *Slice) Release() {
	if !s.released.CompareAndSwap(false, true) {
		panic(fmt.Sprintf("zcio/reader: Slice of %d bytes released twice", s.n))
	}
	for i, ref := range s.refs {
		s.release(ref)
		s.views[i] = nil
	}
}

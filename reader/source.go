package reader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/segq"
)

// source is where a Reader's segments come from: an engine's queue, or the
// pull adapter over an io.Reader.
type source interface {
	// fill appends at least one segment's worth of new bytes to segs (it may
	// instead grow the last element, when the bytes follow it in the same
	// block) and reports how many bytes it added. It returns an error only
	// when it added nothing: io.EOF or the stream's error (repeated on every
	// later call), ErrWouldBlock, ErrNoBlocks, os.ErrDeadlineExceeded or
	// ctx's error.
	// need is how many more bytes the Reader waits for: a pull source reads
	// until it has them (or its block is full), a queue takes what is there.
	fill(ctx context.Context, segs []segq.Segment, nonBlocking bool, need int) ([]segq.Segment, int, error)
	// poll appends what has already arrived, without waiting or asking for
	// more, and reports how many bytes it added.
	poll(segs []segq.Segment) ([]segq.Segment, int)
	// done gives back a segment whose bytes are all consumed.
	done(s segq.Segment)
	// releaser returns the function that gives back an extra block reference
	// taken by Retain; it must be safe for concurrent use.
	releaser() func(arena.Ref)
	// limit is the most bytes the source will deliver before the Reader
	// consumes some.
	limit() int
	setDeadline(t time.Time)
	// close gives back every block the source holds (not those in segs).
	close() error
	// park waits after fill returned segq.ErrPark (a queue's plain wait,
	// done here so that the goroutine parks with a shallow stack).
	park()
	// giveScratch takes segs, an array that holds no segment, and views,
	// the scratch for callbacks' views, from a Reader about to park, for
	// other connections to use meanwhile (segq.Queue.Spare).
	giveScratch(segs []segq.Segment, views [][]byte)
	// views returns a spare array for views, or nil (segq.Queue.Views).
	views() [][]byte
}

var (
	_ source = (*queueSource)(nil)
	_ source = (*pullSource)(nil)
)

// queueSource reads an engine's segq.Queue: the queue itself under another
// type, so that a Reader's source costs no allocation of its own.
type queueSource segq.Queue

func newQueueSource(q *segq.Queue) *queueSource { return (*queueSource)(q) }

// q returns the queue s is.
func (s *queueSource) q() *segq.Queue { return (*segq.Queue)(s) }

func (s *queueSource) fill(ctx context.Context, segs []segq.Segment, nonBlocking bool, _ int) ([]segq.Segment, int, error) {
	before := len(segs)
	segs, err := s.q().TakeOrPark(ctx, segs, nonBlocking)
	switch {
	case err == nil:
		added := 0
		for _, sg := range segs[before:] {
			added += int(sg.Len)
		}
		return segs, added, nil
	case errors.Is(err, segq.ErrWouldBlock):
		return segs, 0, ErrWouldBlock
	case errors.Is(err, segq.ErrClosed):
		return segs, 0, ErrClosed
	}
	return segs, 0, err
}

func (s *queueSource) poll(segs []segq.Segment) ([]segq.Segment, int) {
	before := len(segs)
	segs = s.q().Poll(segs)
	added := 0
	for _, sg := range segs[before:] {
		added += int(sg.Len)
	}
	return segs, added
}

func (s *queueSource) done(sg segq.Segment)                            { s.q().Done(sg) }
func (s *queueSource) releaser() func(arena.Ref)                       { return s.q().Releaser() }
func (s *queueSource) limit() int                                      { return s.q().Limit() }
func (s *queueSource) setDeadline(t time.Time)                         { s.q().SetDeadline(t) }
func (s *queueSource) close() error                                    { s.q().Close(); return nil }
func (s *queueSource) park()                                           { s.q().Park() }
func (s *queueSource) giveScratch(segs []segq.Segment, views [][]byte) { s.q().Spare(segs, views) }
func (s *queueSource) views() [][]byte                                 { return s.q().Views() }

// maxEmptyReads bounds the (0, nil) reads tolerated from an io.Reader before
// giving up with io.ErrNoProgress, as bufio does.
const maxEmptyReads = 100

// pullSource fills arena blocks from an io.Reader on the Reader's goroutine.
// It keeps one reference to the block it is filling (cur) and one to the
// block before it (spare), like the buffer a bufio.Reader keeps, and gives
// every segment a reference of its own, so the Reader's views stay valid
// whatever the source does next.
type pullSource struct {
	rd       io.Reader
	a        *arena.Arena
	ownArena bool
	rel      func(arena.Ref)

	cur       arena.Ref
	have      bool
	spare     arena.Ref // the previous block, kept for reuse (see room)
	haveSpare bool
	fillOff   int
	err       error // sticky end of the io.Reader
	deadline  time.Time
	lim       int
}

func (p *pullSource) fill(ctx context.Context, segs []segq.Segment, _ bool, need int) ([]segq.Segment, int, error) {
	added := 0
	for {
		err := p.ready(ctx)
		if err == nil {
			var m int
			m, err = p.readOnce()
			if m > 0 {
				segs = p.claim(segs, m)
				added += m
			}
		}
		switch {
		case added >= need && added > 0:
			return segs, added, nil
		case err != nil && added > 0:
			return segs, added, nil // the error comes back at the next call
		case err != nil:
			return segs, 0, err
		}
	}
}

// ready says whether a read may start: the stream has not ended, ctx is not
// done, the deadline has not passed and cur has room.
func (p *pullSource) ready(ctx context.Context) error {
	if p.err != nil {
		return p.err
	}
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if !p.deadline.IsZero() && !time.Now().Before(p.deadline) {
		return os.ErrDeadlineExceeded
	}
	return p.room()
}

// readOnce reads into cur at fillOff, tolerating a few empty reads. The
// io.Reader's error is returned with the bytes read and, unless it is a
// timeout, becomes the sticky p.err.
func (p *pullSource) readOnce() (int, error) {
	buf := p.a.Bytes(p.cur.ID())[p.fillOff:]
	for range maxEmptyReads {
		m, err := p.rd.Read(buf)
		if m < 0 || m > len(buf) {
			p.err = fmt.Errorf("%w: Read returned %d for a %d-byte buffer", ErrInvalidCount, m, len(buf))
			return 0, p.err
		}
		if err != nil && !isTimeout(err) {
			p.err = err
		}
		if m > 0 || err != nil {
			return m, err
		}
	}
	p.err = io.ErrNoProgress
	return 0, p.err
}

// isTimeout reports whether err is a timeout a caller may retry after (a
// read deadline passed).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// room makes sure cur has room to read into. Like bufio, which reads into
// the start of its buffer whenever it can, it keeps the bytes it fills in
// cache: a block no segment holds any more is filled again from offset 0, and
// a full block is swapped for the spare one once the Reader has consumed the
// spare; only when neither is free does it take a block from the arena.
func (p *pullSource) room() error {
	if p.a.Debug() {
		return p.roomDebug()
	}
	if p.have && p.a.Refs(p.cur.ID()) == 1 {
		p.fillOff = 0 // ours alone: every byte read into it is consumed
	}
	if p.have && p.fillOff < p.a.BlockSize() {
		return nil
	}
	if p.have {
		if p.haveSpare && p.a.Refs(p.spare.ID()) == 1 {
			p.cur, p.spare, p.fillOff = p.spare, p.cur, 0
			return nil
		}
		if p.haveSpare {
			p.a.Release(p.spare)
		}
		p.spare, p.haveSpare, p.have = p.cur, true, false
	}
	r, ok := p.a.Take()
	if !ok {
		return ErrNoBlocks
	}
	p.cur, p.have, p.fillOff = r, true, 0
	return nil
}

// roomDebug is room over a debug arena: a block whose bytes are all
// consumed, or that is full, goes back to the arena (which makes it fault
// on access) instead of being filled again or kept as the spare, so that a
// view kept past its callback faults rather than show later bytes (until
// the arena hands the block out again).
func (p *pullSource) roomDebug() error {
	if p.have && (p.fillOff == 0 || p.fillOff < p.a.BlockSize() && p.a.Refs(p.cur.ID()) > 1) {
		return nil // nothing read into it yet, or unconsumed bytes of ours in it
	}
	r, ok := p.a.Take() // first, so that it is not the block released next
	if !ok {
		if p.have && p.a.Refs(p.cur.ID()) == 1 {
			p.fillOff = 0 // no other block: fill this one again, as room does
			return nil
		}
		return ErrNoBlocks
	}
	if p.have {
		p.a.Release(p.cur)
	}
	p.cur, p.have, p.fillOff = r, true, 0
	return nil
}

// claim turns the m bytes just read at fillOff into segment bytes: it grows
// the last segment when they follow it in the same block, else adds one
// with its own reference.
func (p *pullSource) claim(segs []segq.Segment, m int) []segq.Segment {
	off := uint32(p.fillOff)
	p.fillOff += m
	if n := len(segs); n > 0 && segs[n-1].Ref == p.cur && segs[n-1].Off+segs[n-1].Len == off {
		segs[n-1].Len += uint32(m)
		return segs
	}
	p.a.Retain(p.cur)
	return append(segs, segq.Segment{Ref: p.cur, Off: off, Len: uint32(m)})
}

// poll adds nothing: a pull source reads only when asked for more.
func (p *pullSource) poll(segs []segq.Segment) ([]segq.Segment, int) { return segs, 0 }

func (p *pullSource) done(sg segq.Segment)      { p.a.Release(sg.Ref) }
func (p *pullSource) releaser() func(arena.Ref) { return p.rel }

func (p *pullSource) park()                                {} // fill never returns segq.ErrPark
func (p *pullSource) giveScratch([]segq.Segment, [][]byte) {} // nor parks
func (p *pullSource) views() [][]byte                      { return nil }
func (p *pullSource) limit() int                           { return p.lim }
func (p *pullSource) setDeadline(t time.Time)              { p.deadline = t }

func (p *pullSource) close() error {
	if p.have {
		p.have = false
		p.a.Release(p.cur)
	}
	if p.haveSpare {
		p.haveSpare = false
		p.a.Release(p.spare)
	}
	if !p.ownArena {
		return nil
	}
	// A Slice still out keeps its blocks; the arena is then unmapped by its
	// cleanup once the last Slice is gone and the arena unreachable.
	if err := p.a.Close(); err != nil && !errors.Is(err, arena.ErrInUse) {
		return err
	}
	return nil
}

//go:build linux

package ring

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/zcio/zcio/arena"
)

// Pat is byte i of the test stream numbered seed: streams that differ in
// seed differ in their bytes, and a byte out of place shows.
func Pat(seed, i int64) byte { return byte(i*7 + seed + i>>9) }

// WritePattern writes stream seed to w, chunk bytes at a time, sleeping
// pause after each chunk, until size bytes are written (size < 0: no
// limit), stop closes, or a write fails.
func WritePattern(w io.Writer, seed, size int64, chunk int, pause time.Duration, stop <-chan struct{}) {
	buf := make([]byte, chunk)
	for off := int64(0); size < 0 || off < size; {
		select {
		case <-stop:
			return
		default:
		}
		m := int64(chunk)
		if size >= 0 {
			m = min(m, size-off)
		}
		for i := range m {
			buf[i] = Pat(seed, off+i)
		}
		if _, err := w.Write(buf[:m]); err != nil {
			return
		}
		off += m
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

// CheckSink is a Sink for tests that checks the contract as it goes:
// bytes are stream Seed (Pat) in order, nothing comes after End or
// Detached, End comes at most once, and every Deliver is flushed before
// Detached. It holds the blocks it is given until Flush, as handler mode
// does. Violation reports the first rule broken.
type CheckSink struct {
	A          *arena.Arena
	Seed       int64
	PauseEvery int           // pause every PauseEvery Delivers, resumed 200 µs later from another goroutine (0: never)
	Work       time.Duration // how long each Flush sleeps first, as a handler's work may
	OnDeliver  func()        // runs on the loop after each Deliver (nil: nothing)
	H          atomic.Pointer[EngineConn]

	N            atomic.Int64  // bytes delivered
	EndCh        chan error    // End's error
	DetachedCh   chan struct{} // closed by Detached
	HeldAtDetach atomic.Int64  // Delivers not flushed when Detached came (their blocks are given back there)

	held     []arena.Ref
	delivers int
	ended    atomic.Bool
	detached atomic.Bool
	viol     atomic.Value
}

// NewCheckSink returns a CheckSink for stream seed over a's blocks.
func NewCheckSink(a *arena.Arena, seed int64) *CheckSink {
	return &CheckSink{A: a, Seed: seed, EndCh: make(chan error, 1), DetachedCh: make(chan struct{})}
}

// Violation returns the first rule the engine broke, or nil.
func (s *CheckSink) Violation() any { return s.viol.Load() }

func (s *CheckSink) bad(f string, args ...any) {
	if s.viol.Load() == nil {
		s.viol.Store(fmt.Sprintf(f, args...))
	}
}

func (s *CheckSink) Deliver(ref arena.Ref, off, n int) bool {
	if s.ended.Load() {
		s.bad("Deliver of %d bytes after End", n)
	}
	if s.detached.Load() {
		s.bad("Deliver after Detached")
	}
	base := s.N.Load()
	for i, x := range s.A.Bytes(ref.ID())[off : off+n] {
		if want := Pat(s.Seed, base+int64(i)); x != want {
			s.bad("byte %d: got %d want %d", base+int64(i), x, want)
			break
		}
	}
	s.N.Add(int64(n))
	s.held = append(s.held, ref)
	if s.OnDeliver != nil {
		s.OnDeliver()
	}
	s.delivers++
	if s.PauseEvery > 0 && s.delivers%s.PauseEvery == 0 {
		go func() {
			time.Sleep(200 * time.Microsecond)
			if h := s.H.Load(); h != nil {
				h.Resume()
			}
		}()
		return true
	}
	return false
}

func (s *CheckSink) Flush() {
	if s.detached.Load() {
		s.bad("Flush after Detached")
	}
	time.Sleep(s.Work)
	for _, r := range s.held {
		s.A.Release(r)
	}
	s.held = s.held[:0]
}

func (s *CheckSink) End(err error) {
	if s.detached.Load() {
		s.bad("End after Detached")
	}
	if s.ended.Swap(true) {
		s.bad("End twice")
		return
	}
	s.EndCh <- err
}

func (s *CheckSink) Detached() {
	s.HeldAtDetach.Store(int64(len(s.held)))
	for _, r := range s.held { // given back here, so that a leak shows once, in HeldAtDetach
		s.A.Release(r)
	}
	s.held = nil
	s.detached.Store(true)
	close(s.DetachedCh)
}

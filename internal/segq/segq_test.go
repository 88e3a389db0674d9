package segq_test

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/segq"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > 1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > 1 {
			println("leaked goroutines:", n)
			code = 1
		}
	}
	os.Exit(code)
}

func newArena(t *testing.T, blocks int) *arena.Arena {
	a, err := arena.New(arena.Config{BlockSize: arena.MinBlockSize, Blocks: blocks})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, a.Close()) })
	return a
}

func seg(t *testing.T, a *arena.Arena, off, n int) segq.Segment {
	ref, ok := a.Take()
	require.True(t, ok, "arena dry")
	return segq.Segment{Ref: ref, Off: uint32(off), Len: uint32(n)}
}

func TestPushTakeDoneOrder(t *testing.T) {
	a := newArena(t, 4)
	q := segq.New(segq.Config{Arena: a})
	s1, s2 := seg(t, a, 0, 10), seg(t, a, 100, 20)
	copy(a.Bytes(s2.Ref.ID())[100:], "0123456789abcdefghijXYZ")
	assert.False(t, q.Push(s1))
	assert.False(t, q.Push(s2))
	assert.Equal(t, 30, q.Pending())
	got, err := q.Take(nil, nil, true)
	require.NoError(t, err)
	require.Equal(t, []segq.Segment{s1, s2}, got)
	b := got[1].Bytes(a)
	assert.Equal(t, "0123456789abcdefghij", string(b), "exactly Len bytes")
	assert.Equal(t, 20, cap(b), "capacity capped at the segment")
	q.Done(got[0])
	q.Done(got[1])
	assert.Zero(t, q.Pending())
	assert.Zero(t, a.InUse())
	_, err = q.Take(nil, nil, true)
	assert.ErrorIs(t, err, segq.ErrWouldBlock)
	q.Close()
}

func TestPushOutsideBlockPanics(t *testing.T) {
	a := newArena(t, 1)
	q := segq.New(segq.Config{Arena: a})
	s := seg(t, a, arena.MinBlockSize-1, 2)
	assert.Panics(t, func() { q.Push(s) })
	a.Release(s.Ref)
}

func TestEmptySegmentGivenBack(t *testing.T) {
	a := newArena(t, 1)
	q := segq.New(segq.Config{Arena: a})
	assert.False(t, q.Push(seg(t, a, 0, 0)))
	assert.Zero(t, a.InUse())
	q.Close()
}

func TestPauseAndResume(t *testing.T) {
	a := newArena(t, 8)
	var resumes atomic.Int32
	q := segq.New(segq.Config{Arena: a, Limit: 100, OnResume: func() { resumes.Add(1) }})
	assert.False(t, q.Push(seg(t, a, 0, 60)))
	assert.True(t, q.Push(seg(t, a, 0, 40)), "limit reached")
	got, err := q.Take(nil, nil, true)
	require.NoError(t, err)
	q.Done(got[0]) // 40 pending: at or below Limit/2
	assert.Equal(t, int32(1), resumes.Load())
	q.Done(got[1])
	assert.Equal(t, int32(1), resumes.Load(), "one resume per pause")
	q.Close()
	assert.Zero(t, a.InUse())
}

// A push under the limit while an earlier pause stands still says pause
// (an engine follows the latest answer of a receive's segments and must not
// resume before OnResume); once the consumer has lifted the pause, pushes
// say go on.
func TestPushUnderLimitKeepsAStandingPause(t *testing.T) {
	a := newArena(t, 8)
	var resumes atomic.Int32
	q := segq.New(segq.Config{Arena: a, Limit: 100, OnResume: func() { resumes.Add(1) }})
	assert.False(t, q.Push(seg(t, a, 0, 30)))
	assert.False(t, q.Push(seg(t, a, 0, 30)))
	assert.True(t, q.Push(seg(t, a, 0, 40)), "limit reached")
	got, err := q.Take(nil, nil, true)
	require.NoError(t, err)
	require.Len(t, got, 3)
	q.Done(got[0]) // 70 pending: above half the limit, the pause stands
	assert.True(t, q.Push(seg(t, a, 0, 10)), "80 pending, under the limit: the pause stands")
	assert.Zero(t, resumes.Load())
	q.Done(got[1]) // 50 pending: half the limit
	assert.Equal(t, int32(1), resumes.Load(), "the consumer lifts the pause")
	assert.False(t, q.Push(seg(t, a, 0, 10)), "no pause stands")
	q.Done(got[2])
	rest, err := q.Take(nil, nil, true)
	require.NoError(t, err)
	for _, s := range rest {
		q.Done(s)
	}
	q.Close()
	assert.Zero(t, a.InUse())
}

// TestWaitingConsumerLiftsPause: a consumer that finds the queue empty needs
// more than it holds, so a paused producer must go on.
func TestWaitingConsumerLiftsPause(t *testing.T) {
	a := newArena(t, 8)
	var resumes atomic.Int32
	q := segq.New(segq.Config{Arena: a, Limit: 100, OnResume: func() { resumes.Add(1) }})
	assert.True(t, q.Push(seg(t, a, 0, 100)))
	got, err := q.Take(nil, nil, true)
	require.NoError(t, err)
	assert.Zero(t, resumes.Load(), "segments were queued")
	_, err = q.Take(nil, got[:0:0], true)
	assert.ErrorIs(t, err, segq.ErrWouldBlock)
	assert.Equal(t, int32(1), resumes.Load(), "empty queue lifts the pause")
	q.Done(got[0])
	q.Close()
	assert.Zero(t, a.InUse())
}

func TestFinishKeepsQueuedThenEnds(t *testing.T) {
	a := newArena(t, 4)
	q := segq.New(segq.Config{Arena: a})
	q.Push(seg(t, a, 0, 5))
	boom := errors.New("boom")
	q.Finish(boom)
	q.Finish(nil) // only the first counts
	assert.True(t, q.Push(seg(t, a, 0, 5)), "push after Finish")
	assert.Equal(t, 1, a.InUse(), "late segment given back")
	got, err := q.Take(nil, nil, false)
	require.NoError(t, err)
	require.Len(t, got, 1)
	q.Done(got[0])
	_, err = q.Take(nil, nil, false)
	assert.ErrorIs(t, err, boom)
	_, err = q.Take(nil, nil, false)
	assert.ErrorIs(t, err, boom, "sticky")
	q.Close()
	assert.Zero(t, a.InUse())
}

func TestFinishNilIsEOF(t *testing.T) {
	a := newArena(t, 1)
	q := segq.New(segq.Config{Arena: a})
	q.Finish(nil)
	_, err := q.Take(context.Background(), nil, false)
	assert.ErrorIs(t, err, io.EOF)
	q.Close()
}

func TestCloseGivesBack(t *testing.T) {
	a := newArena(t, 4)
	var released atomic.Int32
	q := segq.New(segq.Config{Arena: a, OnRelease: func(r arena.Ref) { released.Add(1); a.Release(r) }})
	q.Push(seg(t, a, 0, 5))
	q.Push(seg(t, a, 0, 5))
	q.Close()
	q.Close()
	assert.True(t, q.Closed())
	assert.Equal(t, int32(2), released.Load(), "through OnRelease")
	assert.Zero(t, a.InUse())
	assert.True(t, q.Push(seg(t, a, 0, 5)), "push after Close asks to pause")
	assert.Zero(t, a.InUse())
	_, err := q.Take(nil, nil, false)
	assert.ErrorIs(t, err, segq.ErrClosed)
}

func TestTakeWaitsForPush(t *testing.T) {
	a := newArena(t, 2)
	q := segq.New(segq.Config{Arena: a})
	s := seg(t, a, 0, 3)
	go func() { time.Sleep(5 * time.Millisecond); q.Push(s) }()
	got, err := q.Take(context.Background(), nil, false)
	require.NoError(t, err)
	require.Equal(t, []segq.Segment{s}, got)
	q.Done(got[0])
	q.Close()
	assert.Zero(t, a.InUse())
}

func TestDeadline(t *testing.T) {
	a := newArena(t, 1)
	q := segq.New(segq.Config{Arena: a})
	q.SetDeadline(time.Now().Add(10 * time.Millisecond))
	_, err := q.Take(nil, nil, false)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	_, err = q.Take(nil, nil, false)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "past deadline fails at once")

	// A new deadline reaches a Take already waiting.
	q.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, err := q.Take(nil, nil, false); errc <- err }()
	time.Sleep(5 * time.Millisecond)
	q.SetDeadline(time.Now().Add(-time.Second))
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	case <-time.After(5 * time.Second):
		t.Fatal("waiting Take did not see the new deadline")
	}
	q.Close()
}

func TestContextCancel(t *testing.T) {
	a := newArena(t, 1)
	q := segq.New(segq.Config{Arena: a})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := q.Take(ctx, nil, false)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	q.Close()
}

// TestProducerConsumer runs a producer that honours pause/resume against a
// consumer on another goroutine, and checks order, bound and give-back.
func TestProducerConsumer(t *testing.T) {
	a := newArena(t, 64)
	resume := make(chan struct{}, 1)
	const limit = 8 * arena.MinBlockSize
	q := segq.New(segq.Config{Arena: a, Limit: limit, OnResume: func() {
		select {
		case resume <- struct{}{}:
		default:
		}
	}})
	const total = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		deadline := time.Now().Add(20 * time.Second)
		for i := range total {
			ref, ok := a.Take()
			for !ok && time.Now().Before(deadline) {
				time.Sleep(10 * time.Microsecond)
				ref, ok = a.Take()
			}
			if !ok {
				t.Error("arena dry")
				q.Finish(errors.New("dry"))
				return
			}
			a.Bytes(ref.ID())[0] = byte(i)
			if q.Push(segq.Segment{Ref: ref, Len: uint32(1 + i%arena.MinBlockSize)}) {
				select {
				case <-resume:
				case <-time.After(10 * time.Second):
					t.Error("never resumed")
					q.Finish(errors.New("stuck"))
					return
				}
			}
		}
		q.Finish(nil)
	}()
	var buf []segq.Segment
	next, maxPending := 0, 0
	var err error
	for {
		buf, err = q.Take(context.Background(), buf[:0], false)
		if err != nil {
			break
		}
		maxPending = max(maxPending, q.Pending())
		for _, s := range buf {
			if byte(next) != s.Bytes(a)[0] {
				t.Fatalf("segment %d out of order", next)
			}
			next++
			q.Done(s)
		}
	}
	wg.Wait()
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, total, next)
	// A push reaching the limit pauses; a give-back racing a new pause may
	// let one more segment through.
	assert.LessOrEqual(t, maxPending, limit+2*arena.MinBlockSize, "pending bounded by the limit plus the segments in flight")
	q.Close()
	assert.Zero(t, a.InUse())
}

func TestSteadyStateAllocs(t *testing.T) {
	a := newArena(t, 4)
	q := segq.New(segq.Config{Arena: a})
	buf := make([]segq.Segment, 0, 4)
	allocs := testing.AllocsPerRun(1000, func() {
		ref, _ := a.Take()
		q.Push(segq.Segment{Ref: ref, Len: 10})
		buf, _ = q.Take(nil, buf[:0], true)
		q.Done(buf[0])
	})
	assert.Zero(t, allocs)
	q.Close()
	assert.Zero(t, a.InUse())
}

// TestPollLeavesPause: asking what arrived is not asking for more.
func TestPollLeavesPause(t *testing.T) {
	a := newArena(t, 4)
	var resumes atomic.Int32
	q := segq.New(segq.Config{Arena: a, Limit: 10, OnResume: func() { resumes.Add(1) }})
	assert.True(t, q.Push(seg(t, a, 0, 10)))
	got := q.Poll(nil)
	require.Len(t, got, 1)
	assert.Empty(t, q.Poll(nil))
	assert.Zero(t, resumes.Load(), "Poll on an empty queue keeps the producer paused")
	q.Done(got[0])
	assert.Equal(t, int32(1), resumes.Load())
	q.Close()
	assert.Zero(t, a.InUse())
}

// TakeOrPark hands the plain wait to its caller: ErrPark with nothing taken,
// then Park returns once something happened, at once if it already has.
func TestTakeOrParkThenPark(t *testing.T) {
	a := newArena(t, 4)
	q := segq.New(segq.Config{Arena: a})
	got, err := q.TakeOrPark(nil, nil, false)
	require.ErrorIs(t, err, segq.ErrPark)
	assert.Empty(t, got)

	// A push between TakeOrPark and Park: Park must not wait.
	s1 := seg(t, a, 0, 10)
	q.Push(s1)
	done := make(chan struct{})
	go func() { q.Park(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Park waited for a push that had already come")
	}
	got, err = q.TakeOrPark(nil, nil, false)
	require.NoError(t, err)
	require.Equal(t, []segq.Segment{s1}, got)
	q.Done(got[0])

	// Park waits for the next push.
	_, err = q.TakeOrPark(nil, nil, false)
	require.ErrorIs(t, err, segq.ErrPark)
	done = make(chan struct{})
	go func() { q.Park(); close(done) }()
	select {
	case <-done:
		t.Fatal("Park returned with nothing pushed")
	case <-time.After(20 * time.Millisecond):
	}
	s2 := seg(t, a, 0, 5)
	q.Push(s2)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Park did not return after a push")
	}
	got, err = q.TakeOrPark(nil, nil, false)
	require.NoError(t, err)
	require.Equal(t, []segq.Segment{s2}, got)
	q.Done(got[0])

	// Close wakes a parked consumer too.
	_, err = q.TakeOrPark(nil, nil, false)
	require.ErrorIs(t, err, segq.ErrPark)
	done = make(chan struct{})
	go func() { q.Park(); close(done) }()
	q.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Park did not return after Close")
	}
	_, err = q.TakeOrPark(nil, nil, false)
	assert.ErrorIs(t, err, segq.ErrClosed)
	assert.Zero(t, a.InUse())
}

// A wait with a deadline after plain waits (and the reverse) still wakes.
func TestTimedAndPlainWaitsMix(t *testing.T) {
	a := newArena(t, 4)
	q := segq.New(segq.Config{Arena: a})
	q.SetDeadline(time.Now().Add(10 * time.Millisecond))
	_, err := q.Take(nil, nil, false)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	q.SetDeadline(time.Time{})
	s3, s4 := seg(t, a, 0, 3), seg(t, a, 0, 4)
	go func() {
		time.Sleep(10 * time.Millisecond)
		q.Push(s3)
	}()
	got, err := q.Take(nil, nil, false)
	require.NoError(t, err)
	require.Len(t, got, 1)
	q.Done(got[0])
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(10 * time.Millisecond)
		q.Push(s4)
	}()
	got, err = q.Take(ctx, nil, false)
	cancel()
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.EqualValues(t, 4, got[0].Len)
	q.Done(got[0])
	assert.Zero(t, a.InUse())
}

// Every connection of an engine has a Queue, idle or not: keep it in the
// 112-byte size class (what waits and the end of stream need is made apart).
func TestQueueIsSmall(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(segq.Queue{}), uintptr(112))
}

// After PrepareWait the first plain wait allocates nothing: a blocked
// consumer's first wait happens deep in its stack, where an allocation
// could outgrow a goroutine's starting stack.
func TestPrepareWaitMovesTheAllocation(t *testing.T) {
	a := newArena(t, 4)
	fresh := func(prepared bool) *segq.Queue {
		q := segq.New(segq.Config{Arena: a})
		if prepared {
			q.PrepareWait()
		}
		return q
	}
	for _, prepared := range []bool{false, true} {
		qs := make([]*segq.Queue, 0, 8)
		for range 8 {
			qs = append(qs, fresh(prepared))
		}
		i := 0
		allocs := testing.AllocsPerRun(7, func() {
			_, err := qs[i].TakeOrPark(nil, nil, false)
			i++
			require.ErrorIs(t, err, segq.ErrPark)
		})
		if prepared {
			assert.Zero(t, allocs, "the first plain wait of a prepared queue allocated")
		} else {
			assert.Positive(t, allocs, "the first plain wait of a fresh queue makes its condition variable")
		}
		for _, q := range qs {
			q.Close()
		}
	}
}

// pushUntilPause pushes one-byte segments, each in a block of its own, until
// Push asks to pause; it returns how many blocks went in. The segments stay
// queued (Close gives them back).
func pushUntilPause(t *testing.T, a *arena.Arena, q *segq.Queue, most int) int {
	t.Helper()
	for n := 1; n <= most; n++ {
		if q.Push(seg(t, a, 0, 1)) {
			return n
		}
	}
	return most + 1
}

// MaxBlocks counts every block, the first block of a fresh arena (id 0,
// generation 0, the zero Ref) included.
func TestMaxBlocksCountsTheFirstBlock(t *testing.T) {
	a := newArena(t, 8)
	q := segq.New(segq.Config{Arena: a, MaxBlocks: 2})
	assert.Equal(t, 2, pushUntilPause(t, a, q, 6), "blocks queued before Push asked to pause (MaxBlocks 2)")
	q.Close()
	assert.Zero(t, a.InUse())
}

// A spilled segment (Adopt) counts as a run until it is given back, so that
// spills do not loosen MaxBlocks: after any number of spills, the queue still
// pauses at MaxBlocks blocks.
func TestSpillsKeepMaxBlocks(t *testing.T) {
	a := newArena(t, 16)
	q := segq.New(segq.Config{Arena: a, MaxBlocks: 2, Spiller: segq.NewSpiller(a)})
	for range 5 {
		// Two blocks queued and taken, then spilled: given back with Done,
		// replaced by one copy that the consumer then consumes.
		require.False(t, q.Push(seg(t, a, 0, 10)))
		q.Push(seg(t, a, 0, 10))
		got, err := q.Take(nil, nil, true)
		require.NoError(t, err)
		spilled := seg(t, a, 0, 20) // stands for the Spiller's copy
		for _, s := range got {
			q.Done(s)
		}
		q.Adopt(spilled)
		q.Done(spilled)
	}
	assert.Zero(t, q.Pending())
	assert.Equal(t, 2, pushUntilPause(t, a, q, 6), "blocks queued before Push asked to pause after 5 spills (MaxBlocks 2)")
	q.Close()
	assert.Zero(t, a.InUse())
}

// The same when the producer goes on in the block the consumer held part
// of when it spilled: that block's rest (queued, or pushed after the spill)
// is a run again after the spilled copy.
func TestMidBlockSpillsKeepMaxBlocks(t *testing.T) {
	for _, pushAfter := range []bool{false, true} {
		a := newArena(t, 16)
		q := segq.New(segq.Config{Arena: a, MaxBlocks: 2, Spiller: segq.NewSpiller(a)})
		for range 5 {
			first := seg(t, a, 0, 10) // block A, its first part
			require.False(t, q.Push(first))
			got, err := q.Take(nil, nil, true)
			require.NoError(t, err)
			a.Retain(first.Ref) // the producer goes on in block A
			rest := segq.Segment{Ref: first.Ref, Off: 10, Len: 10}
			if !pushAfter {
				q.Push(rest)
			}
			spilled := seg(t, a, 0, 10) // the consumer spills A[0:10]
			for _, s := range got {
				q.Done(s)
			}
			q.Adopt(spilled)
			if pushAfter {
				q.Push(rest)
			}
			q.Done(spilled)
			more, err := q.Take(nil, nil, true)
			require.NoError(t, err)
			for _, s := range more {
				q.Done(s)
			}
		}
		assert.Zero(t, q.Pending())
		assert.Equal(t, 2, pushUntilPause(t, a, q, 12), "blocks queued before Push asked to pause after 5 mid-block spills (MaxBlocks 2, rest pushed after the spill: %v)", pushAfter)
		q.Close()
		assert.Zero(t, a.InUse())
	}
}

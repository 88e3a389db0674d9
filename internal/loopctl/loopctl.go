// Package loopctl is the control side of an engine's event loop, shared by
// the io_uring engine and the epoll fallback: the commands other goroutines
// queue for the loop, the eventfd write that wakes it (coalesced: one write
// until the loop takes the commands), and the loop's OS thread, so that code
// can tell whether it runs on the loop.
package loopctl

import (
	"sync"
	"sync/atomic"

	"github.com/zcio/zcio/internal/unix"
)

// Control queues commands of type C for one loop. The zero value is not
// usable: call Init.
type Control[C any] struct {
	// Mu guards the queue and the closing flag. An engine's Attach holds it
	// while it registers a connection, so that a shutdown either sees the
	// connection or makes Attach fail.
	Mu      sync.Mutex
	cmds    []C
	work    []C // the loop's batch, swapped with cmds by Take
	closing bool

	woken atomic.Bool // an eventfd write is pending
	efd   int
	// fdMu orders the eventfd's writes before its close: a Wake after the
	// loop closed it must not write to whatever file reused the number.
	fdMu     sync.RWMutex
	fdClosed bool
	tid      atomic.Int64
}

// Init sets the eventfd that wakes the loop; it stays the caller's.
func (l *Control[C]) Init(efd int) { l.efd = efd }

// BindLoop records the calling OS thread as the loop's; the loop calls it
// with runtime.LockOSThread held, and calls UnbindLoop before it unlocks the
// thread.
func (l *Control[C]) BindLoop() {
	tid := int64(unix.Gettid())
	l.tid.Store(tid)
	loops.Lock()
	if loops.tids == nil {
		loops.tids = make(map[int64]int)
	}
	loops.tids[tid]++
	loops.publishLocked()
	loops.Unlock()
}

// UnbindLoop forgets the loop's thread: it is about to serve other
// goroutines again.
func (l *Control[C]) UnbindLoop() {
	tid := l.tid.Swap(0)
	loops.Lock()
	if loops.tids[tid]--; loops.tids[tid] <= 0 {
		delete(loops.tids, tid)
	}
	loops.publishLocked()
	loops.Unlock()
}

// loops holds the OS threads of every engine loop of the process.
var loops loopSet

// loopSet counts loop threads under its lock and publishes them as an
// immutable set that OnAnyLoop reads without it: loops start and stop
// rarely, and OnAnyLoop runs on data paths.
type loopSet struct {
	sync.Mutex
	tids map[int64]int
	set  atomic.Pointer[map[int64]struct{}]
}

// publishLocked publishes a copy of the counted threads. The caller holds
// the lock.
func (l *loopSet) publishLocked() {
	set := make(map[int64]struct{}, len(l.tids))
	for tid := range l.tids {
		set[tid] = struct{}{}
	}
	l.set.Store(&set)
}

// OnAnyLoop reports whether the caller runs on the loop of any engine of
// the process: a handler of one engine calling into a connection of
// another, say. Code that would wait for a loop must not wait there (two
// loops waiting for each other deadlock). It costs a gettid(2) and a map
// lookup, and takes no lock.
func OnAnyLoop() bool {
	set := loops.set.Load()
	if set == nil || len(*set) == 0 {
		return false
	}
	_, ok := (*set)[int64(unix.Gettid())]
	return ok
}

// OnLoop reports whether the caller runs on the loop. It costs one gettid(2).
func (l *Control[C]) OnLoop() bool { return int64(unix.Gettid()) == l.tid.Load() }

// Closing reports whether Shutdown was called. The caller holds Mu.
func (l *Control[C]) Closing() bool { return l.closing }

// QueueLocked queues c and wakes the loop. The caller holds Mu.
func (l *Control[C]) QueueLocked(c C) {
	l.cmds = append(l.cmds, c)
	l.Wake()
}

// Send queues c and wakes the loop. After Shutdown it drops c and returns
// false: the shutdown takes care of every connection.
func (l *Control[C]) Send(c C) bool {
	l.Mu.Lock()
	if l.closing {
		l.Mu.Unlock()
		return false
	}
	l.cmds = append(l.cmds, c)
	l.Mu.Unlock()
	l.Wake()
	return true
}

// Shutdown marks the loop closing, queues its last command c and wakes it.
// It returns false, queuing nothing, when called again.
func (l *Control[C]) Shutdown(c C) bool {
	l.Mu.Lock()
	if l.closing {
		l.Mu.Unlock()
		return false
	}
	l.closing = true
	l.cmds = append(l.cmds, c)
	l.Mu.Unlock()
	l.Wake()
	return true
}

var one = [8]byte{1}

// Wake makes the loop look at its commands soon. It writes the eventfd
// once until the loop's next Take.
func (l *Control[C]) Wake() {
	if l.woken.CompareAndSwap(false, true) {
		l.fdMu.RLock()
		if !l.fdClosed {
			_, _ = unix.Write(l.efd, one[:]) // EAGAIN only if the counter is full: the loop is awake then
		}
		l.fdMu.RUnlock()
	}
}

// CloseFD closes the eventfd, for the loop as it stops; later Wakes write
// nothing.
func (l *Control[C]) CloseFD() {
	l.fdMu.Lock()
	if !l.fdClosed {
		l.fdClosed = true
		_ = unix.Close(l.efd)
	}
	l.fdMu.Unlock()
}

// ForgetFD makes later Wakes and CloseFD leave the eventfd's number alone,
// without closing it: for a loop that found its fds closed behind its back,
// whose number may name someone else's file by now.
func (l *Control[C]) ForgetFD() {
	l.fdMu.Lock()
	l.fdClosed = true
	l.fdMu.Unlock()
}

// Take returns the queued commands, for the loop alone; the slice is reused
// by the next Take, and the caller should zero each entry it is done with.
func (l *Control[C]) Take() []C {
	l.woken.Store(false)
	l.Mu.Lock()
	l.work, l.cmds = l.cmds, l.work[:0]
	l.Mu.Unlock()
	return l.work
}

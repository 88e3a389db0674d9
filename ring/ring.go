package ring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/zcio/zcio/internal/unix"
)

// Defaults of a Config.
const (
	DefaultEntries = 256 // submission queue entries
	CQFactor       = 16  // completion queue entries per submission queue entry, by default
	MaxEntries     = 32768
)

// Config describes a ring. The zero value is valid.
type Config struct {
	// Entries is the size of the submission queue: a power of two up to
	// MaxEntries. Zero means DefaultEntries.
	Entries uint32
	// CQEntries is the size of the completion queue, a power of two at least
	// Entries. Zero means CQFactor × Entries: multishot requests post many
	// completions per submission, so the CQ must be well above the SQ.
	CQEntries uint32
	// Shared skips IORING_SETUP_SINGLE_ISSUER and IORING_SETUP_DEFER_TASKRUN.
	// Without them the ring may be used from any thread (calls must still be
	// serialised by the caller) and its fd polls readable when completions
	// arrive; with them (the default where the kernel has them, Linux 6.1)
	// completions are posted only when the owner thread enters the kernel,
	// which batches work and saves interrupts.
	Shared bool
	// NoRegisteredFd skips IORING_REGISTER_RING_FDS (5.18), which lets each
	// io_uring_enter skip the file-table lookup of the ring fd.
	NoRegisteredFd bool
}

func (c Config) normalize() (Config, error) {
	if c.Entries == 0 {
		c.Entries = DefaultEntries
	}
	if c.CQEntries == 0 {
		c.CQEntries = c.Entries * CQFactor
	}
	if !powerOfTwo(c.Entries) || c.Entries > MaxEntries || !powerOfTwo(c.CQEntries) || c.CQEntries < c.Entries {
		return c, fmt.Errorf("%w: entries %d, cq entries %d (powers of two, entries <= %d, cq >= entries)",
			ErrInvalidConfig, c.Entries, c.CQEntries, MaxEntries)
	}
	return c, nil
}

// Stats counts a ring's activity. Only the owner goroutine updates it.
type Stats struct {
	Enters    uint64 // io_uring_enter calls
	Submitted uint64 // SQEs the kernel consumed
	Reaped    uint64 // CQEs copied out by Reap
	Overflows uint64 // times Reap found IORING_SQ_CQ_OVERFLOW set and flushed the kernel's backlog
	Dropped   uint32 // CQEs the kernel dropped (cq overflow counter); stays 0 with IORING_FEAT_NODROP
}

// Ring is one io_uring instance: a submission queue and a completion queue
// shared with the kernel through mmap'd memory, never Go heap.
//
// A Ring has one owner goroutine. Unless it was set up with Config.Shared,
// the owner must hold runtime.LockOSThread from before New until after Close:
// with IORING_SETUP_SINGLE_ISSUER the kernel refuses (EEXIST) io_uring_enter
// from any other thread, and the registered ring fd belongs to the thread
// that registered it (EINVAL elsewhere); both are reported as
// [ErrWrongThread]. No method is safe for
// concurrent use.
type Ring struct {
	fd         int    // ring file descriptor
	enterFd    int    // fd or registered index passed to io_uring_enter
	enterFlags uint32 // IORING_ENTER_REGISTERED_RING when enterFd is an index
	regIndex   int    // registered ring index, -1 if none
	regTid     int    // the thread the ring fd is registered with
	setupFlags uint32
	features   uint32

	ringMem []byte // SQ and CQ rings (one mapping: IORING_FEAT_SINGLE_MMAP)
	sqeMem  []byte // the SQE array

	sq submissionQueue
	cq completionQueue

	bufRings []*BufRing
	eventfd  int // registered eventfd, -1 if none

	waitTS  kernelTimespec // heap-resident arguments of a timed wait: never moved by the GC
	waitArg geteventsArg

	stats  Stats
	closed bool
}

type submissionQueue struct {
	head    *uint32 // written by the kernel as it consumes SQEs
	tail    *uint32 // written by us: SQEs up to here are submitted
	flags   *uint32 // IORING_SQ_* written by the kernel
	mask    uint32
	entries uint32
	sqes    []SQE
	next    uint32 // SQEs handed out by GetSQE, published to tail by Submit
}

type completionQueue struct {
	head     *uint32 // written by us as we reap
	tail     *uint32 // written by the kernel as it posts CQEs
	overflow *uint32 // CQEs dropped by the kernel
	mask     uint32
	entries  uint32
	cqes     []CQE
}

// setupFault, when set by a test, makes every io_uring_setup fail with the
// error it returns: the seam that tests the unsupported path on a kernel that
// has io_uring.
var setupFault func(flags uint32) error

// sysSetup calls io_uring_setup, or the test seam.
func sysSetup(entries uint32, p *params) (int, error) {
	if setupFault != nil {
		if err := setupFault(p.flags); err != nil {
			return -1, err
		}
	}
	fd, err := unix.IoUringSetup(entries, unsafe.Pointer(p))
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// unsupported wraps a setup error so that it matches ErrUnsupported when it
// means io_uring cannot be used here.
func unsupported(op string, err error) error {
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ErrNotSupported) {
		return fmt.Errorf("%s: %w: %w", op, ErrUnsupported, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// New sets up a ring described by cfg with the best flags the kernel offers
// (see [Probe]): IORING_SETUP_CQSIZE and CLAMP always, SUBMIT_ALL and
// COOP_TASKRUN where present, SINGLE_ISSUER, DEFER_TASKRUN and TASKRUN_FLAG
// unless cfg.Shared, then registers the ring fd. It fails with an error
// wrapping [ErrUnsupported] and the cause where io_uring is unavailable.
//
// Unless cfg.Shared, call New on the goroutine that will own the ring, with
// runtime.LockOSThread held (see [Ring]).
func New(cfg Config) (*Ring, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	f := Probe()
	if f.Err != nil {
		return nil, f.Err
	}
	flags := uint32(setupCQSize | setupClamp | setupSubmitAll)
	if f.CoopTaskrun.OK {
		flags |= setupCoopTaskrun | setupTaskrunFlag
	}
	if !cfg.Shared && f.DeferTaskrun.OK {
		flags |= setupSingleIssuer | setupDeferTaskrun | setupTaskrunFlag
	}
	r, err := newRing(cfg.Entries, cfg.CQEntries, flags)
	if err != nil {
		return nil, err
	}
	if !cfg.NoRegisteredFd && f.RegisteredRing.OK {
		if err := r.registerRingFd(); err != nil {
			return nil, errors.Join(err, r.Close())
		}
	}
	return r, nil
}

// newRing sets up and maps a ring with exactly these flags.
func newRing(entries, cqEntries, flags uint32) (*Ring, error) {
	p := params{flags: flags, cqEntries: cqEntries}
	fd, err := sysSetup(entries, &p)
	if err != nil {
		return nil, unsupported("io_uring_setup", err)
	}
	r := &Ring{fd: fd, enterFd: fd, regIndex: -1, eventfd: -1, setupFlags: p.flags, features: p.features}
	if err := r.mapQueues(&p); err != nil {
		return nil, errors.Join(err, unix.Close(fd))
	}
	return r, nil
}

// mapQueues maps the rings (one mapping for SQ and CQ) and the SQE array, and
// points the queues' fields into them.
func (r *Ring) mapQueues(p *params) error {
	if p.features&featSingleMmap == 0 {
		return fmt.Errorf("io_uring_setup: %w: IORING_FEAT_SINGLE_MMAP missing (Linux 5.4)", ErrUnsupported)
	}
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*cqeSize
	size := max(sqSize, cqSize)
	mem, err := unix.Mmap(r.fd, offSQRing, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap io_uring rings: %w", err)
	}
	sqes, err := unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*sqeSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return errors.Join(fmt.Errorf("mmap io_uring sqes: %w", err), unix.Munmap(mem))
	}
	r.ringMem, r.sqeMem = mem, sqes
	base := unsafe.Pointer(&mem[0])
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Add(base, off)) }
	r.sq = submissionQueue{
		head: u32(p.sqOff.head), tail: u32(p.sqOff.tail), flags: u32(p.sqOff.flags),
		mask: *u32(p.sqOff.ringMask), entries: *u32(p.sqOff.ringEntries),
		sqes: unsafe.Slice((*SQE)(unsafe.Pointer(&sqes[0])), p.sqEntries),
	}
	r.sq.next = atomic.LoadUint32(r.sq.tail)
	// The indirection array maps SQ slots to SQEs; zcio keeps it the
	// identity, so it is written once here.
	array := unsafe.Slice((*uint32)(unsafe.Add(base, p.sqOff.array)), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.cq = completionQueue{
		head: u32(p.cqOff.head), tail: u32(p.cqOff.tail), overflow: u32(p.cqOff.overflow),
		mask: *u32(p.cqOff.ringMask), entries: *u32(p.cqOff.ringEntries),
		cqes: unsafe.Slice((*CQE)(unsafe.Add(base, p.cqOff.cqes)), p.cqEntries),
	}
	return nil
}

// registerRingFd registers the ring fd with the calling thread
// (IORING_REGISTER_RING_FDS) so that io_uring_enter takes an index.
func (r *Ring) registerRingFd() error {
	up := rsrcUpdate{offset: ^uint32(0), data: uint64(r.fd)}
	_, err := unix.IoUringRegister(r.fd, registerRingFds, unsafe.Pointer(&up), 1)
	if err != nil {
		return fmt.Errorf("io_uring_register(IORING_REGISTER_RING_FDS): %w", err)
	}
	r.regIndex = int(up.offset)
	r.regTid = unix.Gettid()
	r.enterFd, r.enterFlags = r.regIndex, enterRegisteredRing
	return nil
}

// Fd returns the ring's file descriptor. It stays owned by the Ring.
func (r *Ring) Fd() int { return r.fd }

// SQEntries and CQEntries return the queue sizes the kernel granted.
func (r *Ring) SQEntries() uint32 { return r.sq.entries }

// CQEntries returns the completion queue size the kernel granted.
func (r *Ring) CQEntries() uint32 { return r.cq.entries }

// SetupFlags returns the IORING_SETUP_* flags the ring was created with.
func (r *Ring) SetupFlags() uint32 { return r.setupFlags }

// DeferTaskrun reports whether the ring runs with IORING_SETUP_DEFER_TASKRUN:
// completions are posted only inside io_uring_enter with GETEVENTS, which
// every Submit and Wait passes.
func (r *Ring) DeferTaskrun() bool { return r.setupFlags&setupDeferTaskrun != 0 }

// RegisteredFd reports whether io_uring_enter goes through a registered ring fd.
func (r *Ring) RegisteredFd() bool { return r.regIndex >= 0 }

// Stats returns the ring's counters.
func (r *Ring) Stats() Stats {
	s := r.stats
	if r.cq.overflow != nil && !r.closed {
		s.Dropped = atomic.LoadUint32(r.cq.overflow)
	}
	return s
}

// GetSQE returns the next free submission queue entry, zeroed, or nil when
// the queue is full (submit, then try again). The SQE is memory shared with
// the kernel: fill it before the next Submit and do not keep the pointer
// after it. It never allocates and makes no system call.
func (r *Ring) GetSQE() *SQE {
	if r.closed {
		return nil
	}
	// Pairs with the kernel's release store of the SQ head as it consumes SQEs.
	head := atomic.LoadUint32(r.sq.head)
	if free(head, r.sq.next, r.sq.entries) == 0 {
		return nil
	}
	sqe := &r.sq.sqes[slot(r.sq.next, r.sq.mask)]
	*sqe = SQE{}
	r.sq.next++
	return sqe
}

// Pending returns the SQEs handed out and not yet consumed by the kernel.
func (r *Ring) Pending() uint32 {
	if r.closed {
		return 0
	}
	return queued(atomic.LoadUint32(r.sq.head), r.sq.next)
}

// flushSQ publishes the SQEs handed out so far and returns how many the
// kernel has yet to consume. The release store of the tail pairs with the
// kernel's acquire load of it in io_submit_sqes: the SQE contents written
// before are visible to the kernel once it sees the tail.
func (r *Ring) flushSQ() uint32 {
	atomic.StoreUint32(r.sq.tail, r.sq.next)
	return r.Pending()
}

// Submit hands the queued SQEs to the kernel and posts whatever has already
// completed to the completion queue, without waiting. It returns the number
// of SQEs the kernel consumed.
func (r *Ring) Submit() (int, error) { return r.enter(0, false) }

// SubmitAndWait is Submit, then waits until at least minComplete CQEs are
// ready to reap. The wait blocks the calling OS thread in io_uring_enter;
// the Go runtime hands the thread's P to other goroutines meanwhile, so an
// idle ring spins no CPU and stalls no other goroutine.
func (r *Ring) SubmitAndWait(minComplete uint32) (int, error) { return r.enter(minComplete, false) }

// SubmitAndWaitTimeout is SubmitAndWait bounded by d (IORING_ENTER_EXT_ARG,
// Linux 5.11). A timeout is not an error: it returns with fewer CQEs ready.
func (r *Ring) SubmitAndWaitTimeout(minComplete uint32, d time.Duration) (int, error) {
	if d <= 0 {
		return r.enter(0, false)
	}
	deadline := time.Now().Add(d)
	submitted := 0
	for {
		r.waitTS = kernelTimespec{sec: int64(d / time.Second), nsec: int64(d % time.Second)}
		r.waitArg = geteventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.waitTS)))}
		n, err := r.enter(minComplete, true)
		submitted += n
		if !errors.Is(err, unix.EINTR) {
			return submitted, err
		}
		if d = time.Until(deadline); d <= 0 {
			return submitted, nil
		}
	}
}

// enter calls io_uring_enter with GETEVENTS: it submits the queued SQEs,
// runs deferred task work, flushes an overflow backlog, and waits for
// minComplete CQEs. EINTR is retried (Go's preemption signals interrupt
// waits often) except for a timed wait, whose caller recomputes the timeout.
func (r *Ring) enter(minComplete uint32, timed bool) (int, error) {
	if r.closed {
		return 0, ErrClosed
	}
	submitted := 0
	for {
		toSubmit := r.flushSQ()
		flags := r.enterFlags | enterGetEvents
		var arg unsafe.Pointer
		var argSize uintptr
		if timed {
			flags |= enterExtArg
			arg, argSize = unsafe.Pointer(&r.waitArg), unsafe.Sizeof(r.waitArg)
		}
		if minComplete > 0 && r.Ready() >= minComplete && toSubmit == 0 {
			return submitted, nil
		}
		r.stats.Enters++
		n, err := unix.IoUringEnter(r.enterFd, toSubmit, minComplete, flags, arg, argSize)
		if n > 0 {
			submitted += n
			r.stats.Submitted += uint64(n)
		}
		switch {
		case err == nil:
			return submitted, nil
		case errors.Is(err, unix.EINTR):
			if timed {
				return submitted, err
			}
			continue
		case errors.Is(err, unix.ETIME):
			return submitted, nil
		case errors.Is(err, unix.EBUSY), errors.Is(err, unix.EAGAIN):
			return submitted, fmt.Errorf("io_uring_enter: %w: %w", ErrBusy, err)
		case errors.Is(err, unix.EEXIST), r.foreignThread(err):
			return submitted, fmt.Errorf("io_uring_enter: %w: %w", ErrWrongThread, err)
		default:
			return submitted, fmt.Errorf("io_uring_enter: %w", err)
		}
	}
}

// foreignThread reports whether err from io_uring_enter comes from a call
// on another thread than the one the ring fd is registered with: the
// registered index means nothing there (the kernel answers EINVAL or EBADF).
// It asks for the thread id only on that error path.
func (r *Ring) foreignThread(err error) bool {
	if r.regIndex < 0 || !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EBADF) {
		return false
	}
	return unix.Gettid() != r.regTid
}

// Ready returns the number of CQEs posted and not yet reaped.
func (r *Ring) Ready() uint32 {
	if r.closed {
		return 0
	}
	return queued(*r.cq.head, atomic.LoadUint32(r.cq.tail))
}

// Overflowed reports IORING_SQ_CQ_OVERFLOW: completions did not fit in the
// CQ and wait in a kernel backlog (kept, with IORING_FEAT_NODROP) until the
// next io_uring_enter with GETEVENTS flushes them.
func (r *Ring) Overflowed() bool { return !r.closed && atomic.LoadUint32(r.sq.flags)&sqCQOverflow != 0 }

// Reap copies up to len(out) completions into out, in order, frees their
// slots for the kernel, and returns how many. When the CQ runs empty while
// the kernel flags an overflow backlog or pending task work, Reap enters the
// kernel once (no waiting) to flush them and goes on copying; if the kernel
// cannot flush just then (EBUSY, EAGAIN) Reap returns what it copied, with
// no error, and the next enter flushes the rest. It allocates nothing; the
// CQEs in out are the caller's.
func (r *Ring) Reap(out []CQE) (int, error) {
	if r.closed {
		return 0, ErrClosed
	}
	n := r.reapOnce(out)
	if n == len(out) {
		return n, nil
	}
	sqFlags := atomic.LoadUint32(r.sq.flags)
	if sqFlags&(sqCQOverflow|sqTaskrun) == 0 {
		return n, nil
	}
	if sqFlags&sqCQOverflow != 0 {
		r.stats.Overflows++
	}
	if _, err := r.enter(0, false); err != nil {
		if errors.Is(err, ErrBusy) {
			// The kernel could not flush its backlog now (EBUSY, EAGAIN):
			// what was reaped is good, and the next enter flushes the rest.
			return n, nil
		}
		return n, err
	}
	return n + r.reapOnce(out[n:]), nil
}

// reapOnce copies the CQEs between our head and the kernel's tail. The
// acquire load of the tail pairs with the kernel's release store after it
// writes a CQE; the release store of the head tells the kernel the slots are
// free again (it reads the head with acquire before posting).
func (r *Ring) reapOnce(out []CQE) int {
	head := *r.cq.head // only we write it
	tail := atomic.LoadUint32(r.cq.tail)
	n := min(queued(head, tail), uint32(len(out)))
	for i := uint32(0); i < n; i++ {
		out[i] = r.cq.cqes[slot(head+i, r.cq.mask)]
	}
	if n > 0 {
		atomic.StoreUint32(r.cq.head, head+n)
		r.stats.Reaped += uint64(n)
	}
	return int(n)
}

// RegisterEventfd makes the kernel signal efd (an eventfd(2) the caller owns
// and keeps open) when completions are posted (IORING_REGISTER_EVENTFD). An
// eventfd registered this way can be parked on in Go's netpoller, which the
// ring fd of a DEFER_TASKRUN ring cannot.
func (r *Ring) RegisterEventfd(efd int) error {
	if r.closed {
		return ErrClosed
	}
	fd := int32(efd)
	if _, err := unix.IoUringRegister(r.fd, registerEventfd, unsafe.Pointer(&fd), 1); err != nil {
		return fmt.Errorf("io_uring_register(IORING_REGISTER_EVENTFD): %w", err)
	}
	r.eventfd = efd
	return nil
}

// UnregisterEventfd undoes RegisterEventfd; the eventfd stays the caller's.
func (r *Ring) UnregisterEventfd() error {
	if r.closed {
		return ErrClosed
	}
	if _, err := unix.IoUringRegister(r.fd, unregisterEventfd, nil, 0); err != nil {
		return fmt.Errorf("io_uring_register(IORING_UNREGISTER_EVENTFD): %w", err)
	}
	r.eventfd = -1
	return nil
}

// Close closes the ring's buffer rings (their blocks go back to the arena),
// unregisters the ring fd, unmaps the queues and closes the ring fd, once;
// it returns ErrClosed after that. In-flight requests are cancelled by the
// kernel. Call it on the owner goroutine: the registered ring fd belongs to
// its thread.
func (r *Ring) Close() error {
	if r.closed {
		return ErrClosed
	}
	var errs []error
	for len(r.bufRings) > 0 {
		errs = append(errs, r.bufRings[len(r.bufRings)-1].Close())
	}
	if r.regIndex >= 0 {
		up := rsrcUpdate{offset: uint32(r.regIndex)}
		if _, err := unix.IoUringRegister(r.fd, unregisterRingFds, unsafe.Pointer(&up), 1); err != nil {
			errs = append(errs, fmt.Errorf("io_uring_register(IORING_UNREGISTER_RING_FDS): %w", err))
		}
		r.regIndex = -1
	}
	r.closed = true
	if err := unix.Munmap(r.sqeMem); err != nil {
		errs = append(errs, fmt.Errorf("munmap io_uring sqes: %w", err))
	}
	if err := unix.Munmap(r.ringMem); err != nil {
		errs = append(errs, fmt.Errorf("munmap io_uring rings: %w", err))
	}
	r.sq, r.cq = submissionQueue{}, completionQueue{}
	if err := unix.Close(r.fd); err != nil {
		errs = append(errs, fmt.Errorf("close io_uring fd: %w", err))
	}
	return errors.Join(errs...)
}

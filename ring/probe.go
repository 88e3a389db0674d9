package ring

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/zcio/zcio/internal/unix"
)

// Feature is one kernel capability, named with the Linux version that
// brought it.
type Feature struct {
	Name  string // what it is, e.g. "buffer rings"
	Since string // the Linux version that brought it, e.g. "5.19"
	OK    bool
	// Err says why the feature is missing: the call that failed and its
	// errno (match with errors.Is). Nil when OK.
	Err error
}

func (f Feature) String() string {
	if f.OK {
		return fmt.Sprintf("%s (Linux %s): yes", f.Name, f.Since)
	}
	return fmt.Sprintf("%s (Linux %s): no: %v", f.Name, f.Since, f.Err)
}

// Features is what [Probe] found out about this kernel. It is read-only.
type Features struct {
	// Err is nil when io_uring works at all; otherwise it wraps
	// ErrUnsupported and the cause (ENOSYS, EPERM, EINVAL...), and every
	// feature below is missing with the same error.
	Err error
	// SetupFeatures are the IORING_FEAT_* bits io_uring_setup reported.
	SetupFeatures uint32
	// LastOp is the last opcode the kernel knows (IORING_REGISTER_PROBE).
	LastOp uint8
	ops    [4]uint64 // bit per supported opcode

	CoopTaskrun        Feature // IORING_SETUP_COOP_TASKRUN, 5.19
	SingleIssuer       Feature // IORING_SETUP_SINGLE_ISSUER, 6.0
	DeferTaskrun       Feature // IORING_SETUP_DEFER_TASKRUN, 6.1
	RegisteredRing     Feature // IORING_REGISTER_RING_FDS, 5.18
	BufRing            Feature // IORING_REGISTER_PBUF_RING, 5.19
	MultishotRecv      Feature // IORING_RECV_MULTISHOT, 6.0
	Bundle             Feature // IORING_RECVSEND_BUNDLE, 6.10
	IncrementalBuffers Feature // IOU_PBUF_RING_INC, 6.12
	RecvCap            Feature // a byte cap on a multishot receive (sqe optlen), 6.17
}

// Available reports whether io_uring can be set up at all.
func (f *Features) Available() bool { return f.Err == nil }

// Op reports whether the kernel supports opcode op (IO_URING_OP_SUPPORTED).
func (f *Features) Op(op uint8) bool { return f.ops[op/64]&(1<<(op%64)) != 0 }

// List returns the named features in a fixed order, for reports and tests.
func (f *Features) List() []Feature {
	return []Feature{f.CoopTaskrun, f.SingleIssuer, f.DeferTaskrun, f.RegisteredRing, f.BufRing,
		f.MultishotRecv, f.Bundle, f.IncrementalBuffers, f.RecvCap}
}

// ZeroCopyReceive reports whether everything zcio's io_uring engine needs is
// here: io_uring, buffer rings and multishot receive.
func (f *Features) ZeroCopyReceive() bool {
	return f.Available() && f.BufRing.OK && f.MultishotRecv.OK
}

var (
	probeOnce   sync.Once
	probeResult *Features
)

// Probe finds out, once per process, what io_uring offers on this kernel: it
// sets up small rings with each flag, asks for the opcode table, registers
// buffer rings with and without incremental consumption, and runs a
// multishot receive over a socketpair, plain and then with a byte cap.
// Later calls return the same result.
// The probe takes a few hundred microseconds and leaves nothing open.
func Probe() *Features {
	probeOnce.Do(func() { probeResult = probe() })
	return probeResult
}

func newFeatures() *Features {
	return &Features{
		CoopTaskrun:        Feature{Name: "cooperative task running", Since: "5.19"},
		SingleIssuer:       Feature{Name: "single issuer", Since: "6.0"},
		DeferTaskrun:       Feature{Name: "deferred task running", Since: "6.1"},
		RegisteredRing:     Feature{Name: "registered ring fd", Since: "5.18"},
		BufRing:            Feature{Name: "buffer rings", Since: "5.19"},
		MultishotRecv:      Feature{Name: "multishot receive", Since: "6.0"},
		Bundle:             Feature{Name: "receive bundles", Since: "6.10"},
		IncrementalBuffers: Feature{Name: "incremental buffer consumption", Since: "6.12"},
		RecvCap:            Feature{Name: "capped multishot receive", Since: "6.17"},
	}
}

// each calls fn for every named feature.
func (f *Features) each(fn func(*Feature)) {
	for _, p := range []*Feature{&f.CoopTaskrun, &f.SingleIssuer, &f.DeferTaskrun, &f.RegisteredRing,
		&f.BufRing, &f.MultishotRecv, &f.Bundle, &f.IncrementalBuffers, &f.RecvCap} {
		fn(p)
	}
}

func (f *Feature) set(err error) {
	f.OK, f.Err = err == nil, err
	if err != nil {
		f.Err = fmt.Errorf("%s needs Linux %s: %w", f.Name, f.Since, err)
	}
}

// probe runs the probe without the cache; tests call it with the setup seam.
func probe() *Features {
	// Rings with SINGLE_ISSUER belong to the thread that made them.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	f := newFeatures()
	base, err := newRing(8, 16, 0)
	if err != nil {
		f.Err = err
		if !errors.Is(err, ErrUnsupported) {
			f.Err = fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
		f.each(func(ft *Feature) { ft.set(f.Err) })
		return f
	}
	defer base.Close()
	f.SetupFeatures = base.features
	f.probeOps(base)
	f.CoopTaskrun.set(trySetup(setupCoopTaskrun | setupTaskrunFlag))
	f.SingleIssuer.set(trySetup(setupSingleIssuer))
	f.DeferTaskrun.set(trySetup(setupSingleIssuer | setupDeferTaskrun))
	f.RegisteredRing.set(probeRegisteredRing(base))
	f.BufRing.set(probeBufRing(base, 0))
	f.IncrementalBuffers.set(probeBufRing(base, pbufRingInc))
	if f.BufRing.OK {
		f.MultishotRecv.set(probeMultishotRecv(base, 0))
	} else {
		f.MultishotRecv.set(fmt.Errorf("no buffer rings to receive into: %w", f.BufRing.Err))
	}
	if f.MultishotRecv.OK {
		f.RecvCap.set(probeMultishotRecv(base, uint32(unix.Getpagesize())))
	} else {
		f.RecvCap.set(fmt.Errorf("no multishot receive to cap: %w", f.MultishotRecv.Err))
	}
	if f.SetupFeatures&featRecvSendBundle != 0 {
		f.Bundle.set(nil)
	} else {
		f.Bundle.set(fmt.Errorf("io_uring_setup: IORING_FEAT_RECVSEND_BUNDLE not in features %#x: %w",
			f.SetupFeatures, unix.EINVAL))
	}
	return f
}

// trySetup sets up and closes a ring with flags, returning the setup error.
func trySetup(flags uint32) error {
	r, err := newRing(8, 16, flags|setupCQSize)
	if err != nil {
		return err
	}
	return r.Close()
}

// probeOps fills the opcode table (IORING_REGISTER_PROBE, 5.6). The kernel
// copies the table out during the call.
func (f *Features) probeOps(r *Ring) {
	var buf [unsafe.Sizeof(probeHeader{}) + probeOps*unsafe.Sizeof(probeOp{})]byte
	if _, err := unix.IoUringRegister(r.fd, registerProbe, unsafe.Pointer(&buf[0]), probeOps); err != nil {
		return
	}
	hdr := (*probeHeader)(unsafe.Pointer(&buf[0]))
	f.LastOp = hdr.lastOp
	ops := unsafe.Slice((*probeOp)(unsafe.Pointer(&buf[unsafe.Sizeof(probeHeader{})])), probeOps)
	for _, op := range ops[:hdr.opsLen] {
		if op.flags&opSupported != 0 {
			f.ops[op.op/64] |= 1 << (op.op % 64)
		}
	}
}

func probeRegisteredRing(r *Ring) error {
	if err := r.registerRingFd(); err != nil {
		return err
	}
	up := rsrcUpdate{offset: uint32(r.regIndex)}
	_, err := unix.IoUringRegister(r.fd, unregisterRingFds, unsafe.Pointer(&up), 1)
	r.regIndex, r.enterFd, r.enterFlags = -1, r.fd, 0
	if err != nil {
		return fmt.Errorf("io_uring_register(IORING_UNREGISTER_RING_FDS): %w", err)
	}
	return nil
}

// probeWait bounds each wait of the probe.
const probeWait = time.Second

// probeGroup is the buffer group the probe registers on its private ring.
const probeGroup = 7

// probeBufRing registers and unregisters a one-entry buffer ring with flags.
func probeBufRing(r *Ring, flags uint16) error {
	mem, err := unix.Mmap(-1, 0, unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(mem)
	reg := bufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), ringEntries: 1, bgid: probeGroup, flags: flags}
	if _, err := unix.IoUringRegister(r.fd, registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		return fmt.Errorf("io_uring_register(IORING_REGISTER_PBUF_RING, flags %#x): %w", flags, err)
	}
	reg = bufReg{bgid: probeGroup}
	if _, err := unix.IoUringRegister(r.fd, unregisterPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		return fmt.Errorf("io_uring_register(IORING_UNREGISTER_PBUF_RING): %w", err)
	}
	return nil
}

// probeMultishotRecv arms a multishot receive on a socketpair, capped at
// capBytes in all unless 0 (sqe optlen), sends one byte, and checks that the
// completion carries the byte in a provided buffer with IORING_CQE_F_MORE
// set. Kernels before 6.0 reject the request (EINVAL), and before 6.17 the
// cap.
func probeMultishotRecv(r *Ring, capBytes uint32) (err error) {
	mem, err := unix.Mmap(-1, 0, 2*unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(mem)
	page := unix.Getpagesize()
	entry := (*bufEntry)(unsafe.Pointer(&mem[0]))
	entry.addr, entry.len, entry.bid = uint64(uintptr(unsafe.Pointer(&mem[page]))), uint32(page), 0
	*(*uint16)(unsafe.Pointer(&mem[bufTailOff])) = 1
	reg := bufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), ringEntries: 1, bgid: probeGroup}
	if _, err := unix.IoUringRegister(r.fd, registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		return fmt.Errorf("io_uring_register(IORING_REGISTER_PBUF_RING): %w", err)
	}
	defer func() {
		reg := bufReg{bgid: probeGroup}
		_, _ = unix.IoUringRegister(r.fd, unregisterPbufRing, unsafe.Pointer(&reg), 1)
	}()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	defer unix.Close(fds[1])
	s := r.GetSQE()
	s.PrepRecvMultishot(fds[0], probeGroup, 1)
	s.FileIndex = capBytes
	if _, err := unix.Write(fds[1], []byte{42}); err != nil {
		unix.Close(fds[0])
		return fmt.Errorf("write: %w", err)
	}
	var cqes [4]CQE
	got, err := r.waitOne(cqes[:], 1)
	unix.Close(fds[0])
	// Closing our end does not end a request on it: cancel it and drain.
	if sqe := r.GetSQE(); sqe != nil {
		sqe.PrepCancel(1, 2)
	}
	for i, done := 0, !got.More(); i < 8 && !done; i++ {
		_, _ = r.SubmitAndWaitTimeout(1, probeWait)
		n, _ := r.Reap(cqes[:])
		for _, c := range cqes[:n] {
			done = done || (c.UserData == 1 && !c.More())
		}
	}
	if err != nil {
		return err
	}
	rv := DecodeRecv(got)
	switch {
	case rv.Errno != 0:
		return fmt.Errorf("IORING_OP_RECV with IORING_RECV_MULTISHOT: %w", rv.Errno)
	case rv.N != 1 || !rv.HasBuf || mem[page] != 42:
		return fmt.Errorf("IORING_OP_RECV with IORING_RECV_MULTISHOT: unexpected completion res %d flags %#x: %w",
			got.Res, got.Flags, unix.EINVAL)
	case !rv.More:
		return fmt.Errorf("IORING_OP_RECV with IORING_RECV_MULTISHOT: completion without IORING_CQE_F_MORE: %w",
			unix.EOPNOTSUPP)
	}
	return nil
}

// waitOne submits and waits for the completion of the request with
// userData and returns it, passing over any other (a late completion of an
// earlier probe's cancel, say). It gives up after a few waits.
func (r *Ring) waitOne(out []CQE, userData uint64) (CQE, error) {
	for range 4 {
		if _, err := r.SubmitAndWaitTimeout(1, probeWait); err != nil {
			return CQE{}, err
		}
		n, err := r.Reap(out[:1])
		if err != nil {
			return CQE{}, err
		}
		if n == 1 && out[0].UserData == userData {
			return out[0], nil
		}
	}
	return CQE{}, fmt.Errorf("no completion within %v: %w", probeWait, unix.ETIME)
}

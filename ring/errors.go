package ring

import "errors"

// Errors returned by this package; match them with errors.Is. Errors from the
// kernel wrap its errno (unix.Errno), so errors.Is(err, unix.EINVAL) works too.
var (
	// ErrUnsupported is wrapped by every error that means io_uring (or a
	// feature this package needs) cannot be used on this system. The error
	// also wraps the cause: ENOSYS (no io_uring in the kernel), EPERM
	// (kernel.io_uring_disabled, or a seccomp filter as in Docker's default
	// profile), EINVAL (a kernel too old for the flags asked).
	ErrUnsupported = errors.New("zcio/ring: io_uring unsupported")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("zcio/ring: ring closed")
	// ErrBusy wraps EBUSY or EAGAIN from io_uring_enter: the kernel took no
	// submission because completions are backed up or it lacks resources.
	// The queued SQEs stay queued; reap completions and submit again.
	ErrBusy = errors.New("zcio/ring: kernel busy, reap completions and retry")
	// ErrWrongThread wraps EEXIST from io_uring_enter on a ring set up with
	// IORING_SETUP_SINGLE_ISSUER, or EINVAL/EBADF for a ring fd registered
	// with another thread: the call came from another OS thread than the
	// one that created the ring. The owner goroutine must hold
	// runtime.LockOSThread for the ring's whole life.
	ErrWrongThread = errors.New("zcio/ring: ring used from another OS thread than its creator")
	// ErrInvalidConfig is returned for a configuration out of range.
	ErrInvalidConfig = errors.New("zcio/ring: invalid config")
	// ErrTooManyConns is returned by Engine.Attach when the engine already
	// serves EngineConfig.MaxConns connections. Nothing was attached.
	ErrTooManyConns = errors.New("zcio/ring: too many connections")
	// ErrEngineFailed is wrapped, with the kernel's error, by the End of
	// every connection of an Engine whose ring failed (io_uring_enter
	// returned an error it cannot recover from, such as EBADR when the
	// kernel dropped completions under memory pressure), by Attach after
	// that, and by Close. The loop ends that engine's connections, gives
	// every block back and stops, instead of taking the process down;
	// other engines are not touched. After EBADR the bytes delivered before
	// that End may follow a gap (the kernel dropped completions, some with
	// bytes): a consumer should not act on a partial last message.
	ErrEngineFailed = errors.New("zcio/ring: engine failed")
)

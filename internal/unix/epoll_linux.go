//go:build linux

package unix

import (
	"unsafe"

	linux "golang.org/x/sys/unix"
)

// Epoll and eventfd constants (epoll_ctl(2), eventfd(2)).
const (
	EPOLLIN       = linux.EPOLLIN
	EPOLLOUT      = linux.EPOLLOUT
	EPOLLERR      = linux.EPOLLERR
	EPOLLHUP      = linux.EPOLLHUP
	EPOLLRDHUP    = linux.EPOLLRDHUP
	EPOLLET       = linux.EPOLLET
	EPOLL_CLOEXEC = linux.EPOLL_CLOEXEC
	EPOLL_CTL_ADD = linux.EPOLL_CTL_ADD
	EPOLL_CTL_MOD = linux.EPOLL_CTL_MOD
	EPOLL_CTL_DEL = linux.EPOLL_CTL_DEL
	EFD_CLOEXEC   = linux.EFD_CLOEXEC
	EFD_NONBLOCK  = linux.EFD_NONBLOCK
)

// EpollEvent is struct epoll_event; its layout differs between
// architectures, so zcio uses only its Events and Fd fields.
type EpollEvent = linux.EpollEvent

// EpollCreate1 creates an epoll instance.
func EpollCreate1(flags int) (int, error) { return linux.EpollCreate1(flags) }

// EpollCtl adds, changes or removes fd in the interest list of epfd.
func EpollCtl(epfd, op, fd int, ev *EpollEvent) error { return linux.EpollCtl(epfd, op, fd, ev) }

// EpollWait waits for events on epfd. It blocks in a system call that lets
// the Go runtime hand the P to another thread.
func EpollWait(epfd int, events []EpollEvent, msec int) (int, error) {
	return linux.EpollWait(epfd, events, msec)
}

// Eventfd creates an eventfd object.
func Eventfd(initval uint, flags int) (int, error) { return linux.Eventfd(initval, flags) }

// Read reads from fd into p (read(2)).
func Read(fd int, p []byte) (int, error) { return linux.Read(fd, p) }

// MaxReadv is the most buffers one [Readv] fills: the fallback's tail block
// and 32 blocks after it, 512 KiB with 16 KiB blocks.
const MaxReadv = 33

// Readv reads from fd into the buffers in order with one readv(2), like
// Read into their concatenation. It reads into at most MaxReadv of them and
// does not allocate: the iovec array lives on the stack for the call, and
// the kernel writes only into the buffers themselves, which the caller owns.
// With no room at all it returns 0, nil without a system call, as read(2)
// of zero bytes does: callers must not take that for the end of the stream.
//
// It goes through Syscall, as Read does, so the runtime may hand the
// thread's P to other goroutines during a long read. (RawSyscall, which
// keeps the P, saved a wake-up per read in handler mode but cost blocking
// mode up to 20% at 1,000 connections: its reader goroutines waited for a
// P.)
func Readv(fd int, bufs [][]byte) (int, error) {
	var iov [MaxReadv]linux.Iovec
	k := 0
	for _, b := range bufs {
		if k == len(iov) {
			break
		}
		if len(b) == 0 {
			continue
		}
		iov[k].Base = unsafe.SliceData(b)
		iov[k].SetLen(len(b))
		k++
	}
	if k == 0 {
		return 0, nil
	}
	n, _, e := linux.Syscall(linux.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(n), nil
}

// Write writes p to fd (write(2)).
func Write(fd int, p []byte) (int, error) { return linux.Write(fd, p) }

// Writev writes the buffers to fd in order with one writev(2).
func Writev(fd int, iovs [][]byte) (int, error) { return linux.Writev(fd, iovs) }

// Close closes fd.
func Close(fd int) error { return linux.Close(fd) }

// Dup duplicates fd with FD_CLOEXEC set.
func Dup(fd int) (int, error) { return linux.FcntlInt(uintptr(fd), linux.F_DUPFD_CLOEXEC, 0) }

// IsOpen reports whether fd names an open file (fcntl(F_GETFD) does not
// fail with EBADF).
func IsOpen(fd int) bool {
	_, err := linux.FcntlInt(uintptr(fd), linux.F_GETFD, 0)
	return err != linux.EBADF
}

// SetNonblock sets or clears O_NONBLOCK on fd.
func SetNonblock(fd int, nonblocking bool) error { return linux.SetNonblock(fd, nonblocking) }

// Shutdown shuts down part of a full-duplex connection (SHUT_RD, SHUT_WR, SHUT_RDWR).
func Shutdown(fd, how int) error { return linux.Shutdown(fd, how) }

// Shutdown directions.
const (
	SHUT_RD   = linux.SHUT_RD
	SHUT_WR   = linux.SHUT_WR
	SHUT_RDWR = linux.SHUT_RDWR
)

// Gettid returns the caller's OS thread id.
func Gettid() int { return linux.Gettid() }

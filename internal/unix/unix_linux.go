//go:build linux

package unix

import (
	"io"
	"os"
	"syscall"
	"unsafe"

	linux "golang.org/x/sys/unix"
)

// Memory protection, mapping and advice constants (mmap(2), mprotect(2), madvise(2)).
const (
	PROT_NONE     = linux.PROT_NONE
	PROT_READ     = linux.PROT_READ
	PROT_WRITE    = linux.PROT_WRITE
	MAP_PRIVATE   = linux.MAP_PRIVATE
	MAP_SHARED    = linux.MAP_SHARED
	MAP_ANONYMOUS = linux.MAP_ANONYMOUS
	MAP_POPULATE  = linux.MAP_POPULATE
	MADV_HUGEPAGE = linux.MADV_HUGEPAGE
	MADV_DONTNEED = linux.MADV_DONTNEED
	MADV_DONTDUMP = linux.MADV_DONTDUMP
	MADV_DODUMP   = linux.MADV_DODUMP
)

// Errno values zcio matches with errors.Is.
const (
	EAGAIN     = syscall.EAGAIN
	EBADF      = syscall.EBADF
	EBUSY      = syscall.EBUSY
	ECANCELED  = syscall.ECANCELED
	ECONNRESET = syscall.ECONNRESET
	EEXIST     = syscall.EEXIST
	EINTR      = syscall.EINTR
	EINVAL     = syscall.EINVAL
	ENOBUFS    = syscall.ENOBUFS
	ENOENT     = syscall.ENOENT
	ENOMEM     = syscall.ENOMEM
	ENOSYS     = syscall.ENOSYS
	EOPNOTSUPP = syscall.EOPNOTSUPP
	EPERM      = syscall.EPERM
	EPIPE      = syscall.EPIPE
	ETIME      = syscall.ETIME
)

// Errno is the system error number type.
type Errno = syscall.Errno

// Mmap maps length bytes of fd at offset (see mmap(2)).
func Mmap(fd int, offset int64, length int, prot int, flags int) ([]byte, error) {
	return linux.Mmap(fd, offset, length, prot, flags)
}

// Munmap unmaps a region returned by [Mmap].
func Munmap(b []byte) error { return linux.Munmap(b) }

// Mprotect changes the protection of the pages that b covers.
func Mprotect(b []byte, prot int) error { return linux.Mprotect(b, prot) }

// Madvise gives the kernel advice about the pages that b covers.
func Madvise(b []byte, advice int) error { return linux.Madvise(b, advice) }

// ResidentPages reports how many of the pages that b covers are resident
// (mincore(2)); b must start on a page boundary. It does not allocate.
func ResidentPages(b []byte) (int, error) { return residentPages(b, false) }

// Resident reports whether any page that b covers is resident
// (mincore(2)); b must start on a page boundary. It does not allocate.
func Resident(b []byte) (bool, error) {
	n, err := residentPages(b, true)
	return n > 0, err
}

// residentPages counts the resident pages of b with mincore(2), 256 pages
// a call; first: stop at the first one found.
func residentPages(b []byte, first bool) (int, error) {
	page := linux.Getpagesize()
	var vec [256]byte
	count := 0
	for len(b) > 0 {
		n := min(len(b), len(vec)*page)
		_, _, errno := linux.Syscall(linux.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(n), uintptr(unsafe.Pointer(&vec[0])))
		if errno != 0 {
			return count, errno
		}
		for _, v := range vec[:(n+page-1)/page] {
			count += int(v & 1)
			if first && count > 0 {
				return count, nil
			}
		}
		b = b[n:]
	}
	return count, nil
}

// Getpagesize returns the system page size.
func Getpagesize() int { return linux.Getpagesize() }

// PeekEnd looks, without reading, at what a non-blocking stream socket has
// to read: end is io.EOF when the peer ended the stream with nothing left,
// or the socket's error (a reset, say) as an *os.SyscallError; waiting
// reports bytes ready. Neither: nothing yet. It allocates nothing but the
// error (no address is asked for): the engines call it on their loops when
// the arena is dry, where an end must not wait for a block.
func PeekEnd(fd int) (end error, waiting bool) {
	var b [1]byte
	for {
		n, _, errno := syscall.RawSyscall6(linux.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1,
			uintptr(linux.MSG_PEEK|linux.MSG_DONTWAIT), 0, 0)
		switch errno {
		case 0:
			if n == 0 {
				return io.EOF, false
			}
			return nil, true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return nil, false
		default:
			return os.NewSyscallError("recv", errno), false
		}
	}
}

// RecvDontWait reads what stream socket fd has queued into p, without
// waiting (recv(2) with MSG_DONTWAIT, whatever the socket's own mode): n is
// 0 with a nil error at the end of the stream, and the error wraps EAGAIN
// when nothing is queued; an empty p is EINVAL (0 bytes would read as the
// end). It allocates nothing, and retries EINTR. The io_uring engine reads
// this way, on its loop, for a connection its buffer ring keeps starving.
func RecvDontWait(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, syscall.EINVAL
	}
	for {
		n, _, errno := syscall.Syscall6(linux.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
			uintptr(linux.MSG_DONTWAIT), 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case syscall.EINTR:
		default:
			return 0, errnoErr(errno)
		}
	}
}

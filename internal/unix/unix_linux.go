//go:build linux

package unix

import (
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
// (mincore(2)); b must start on a page boundary.
func ResidentPages(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	page := linux.Getpagesize()
	vec := make([]byte, (len(b)+page-1)/page)
	_, _, errno := linux.Syscall(linux.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return 0, errno
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n, nil
}

// Getpagesize returns the system page size.
func Getpagesize() int { return linux.Getpagesize() }

// PeekByte looks at what a non-blocking stream socket has to read without
// taking it: 1 when bytes wait, 0 when the peer ended the stream and nothing
// is left, an error (EAGAIN: nothing yet; ECONNRESET...) otherwise.
// It allocates nothing (no address is asked for): engines call it on their
// loops whenever the arena is dry.
func PeekByte(fd int) (int, error) {
	var b [1]byte
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1,
			uintptr(linux.MSG_PEEK|linux.MSG_DONTWAIT), 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case syscall.EINTR:
		default:
			return 0, errno
		}
	}
}

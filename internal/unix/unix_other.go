//go:build !linux

package unix

import (
	"fmt"
	"syscall"
)

// Values mirror Linux's so that code shared across systems compiles; the
// calls that take them are stubs here.
const (
	PROT_NONE     = 0x0
	PROT_READ     = 0x1
	PROT_WRITE    = 0x2
	MAP_SHARED    = 0x1
	MAP_PRIVATE   = 0x2
	MAP_ANONYMOUS = 0x20
	MAP_POPULATE  = 0x8000
	MADV_DONTNEED = 0x4
	MADV_HUGEPAGE = 0xe
	MADV_DONTDUMP = 0x10
	MADV_DODUMP   = 0x11
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
	ETIME      = syscall.Errno(0x3e) // Linux's number: only io_uring (Linux) returns it; not every OS has one
)

// Errno is the system error number type.
type Errno = syscall.Errno

func notSupported(fn string) error {
	return fmt.Errorf("%s: %w", fn, ErrNotSupported)
}

// Mmap is not supported on this OS.
func Mmap(fd int, offset int64, length int, prot int, flags int) ([]byte, error) {
	return nil, notSupported("mmap")
}

// Munmap is not supported on this OS.
func Munmap(b []byte) error { return notSupported("munmap") }

// Mprotect is not supported on this OS.
func Mprotect(b []byte, prot int) error { return notSupported("mprotect") }

// ResidentPages is not supported on this OS.
func ResidentPages(b []byte) (int, error) { return 0, notSupported("mincore") }

// Resident is not supported on this OS.
func Resident(b []byte) (bool, error) { return false, notSupported("mincore") }

// Madvise is not supported on this OS.
func Madvise(b []byte, advice int) error { return notSupported("madvise") }

// Getpagesize returns the system page size.
func Getpagesize() int { return syscall.Getpagesize() }

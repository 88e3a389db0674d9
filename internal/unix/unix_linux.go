//go:build linux

package unix

import (
	"syscall"

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

// Getpagesize returns the system page size.
func Getpagesize() int { return linux.Getpagesize() }

//go:build !linux

package unix

import (
	"syscall"
	"unsafe"
)

// System call numbers of io_uring (Linux amd64 values, so shared code
// compiles; the calls below are stubs here).
const (
	SYS_IO_URING_SETUP    = 425
	SYS_IO_URING_ENTER    = 426
	SYS_IO_URING_REGISTER = 427
)

// Errno values used by io_uring callers, beyond those in unix_other.go.
const (
	EALREADY = syscall.EALREADY
	EFAULT   = syscall.EFAULT
	ENXIO    = syscall.ENXIO
)

// IoUringSetup is not supported on this OS.
func IoUringSetup(entries uint32, params unsafe.Pointer) (int, error) {
	return -1, notSupported("io_uring_setup")
}

// IoUringEnter is not supported on this OS.
func IoUringEnter(fd int, toSubmit, minComplete, flags uint32, arg unsafe.Pointer, argSize uintptr) (int, error) {
	return 0, notSupported("io_uring_enter")
}

// IoUringRegister is not supported on this OS.
func IoUringRegister(fd int, op uint32, arg unsafe.Pointer, nrArgs uint32) (int, error) {
	return 0, notSupported("io_uring_register")
}

//go:build linux

package unix

import (
	"syscall"
	"unsafe"

	linux "golang.org/x/sys/unix"
)

// System call numbers of io_uring_setup(2), io_uring_enter(2) and
// io_uring_register(2). x/sys/unix has the numbers but no io_uring types:
// package ring writes the ABI itself.
const (
	SYS_IO_URING_SETUP    = linux.SYS_IO_URING_SETUP
	SYS_IO_URING_ENTER    = linux.SYS_IO_URING_ENTER
	SYS_IO_URING_REGISTER = linux.SYS_IO_URING_REGISTER
)

// Errno values used by io_uring callers, beyond those in unix_linux.go.
const (
	EALREADY = syscall.EALREADY
	EFAULT   = syscall.EFAULT
	ENXIO    = syscall.ENXIO
)

// errnoErr turns a raw errno into an error, nil for 0, without allocating.
func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// IoUringSetup calls io_uring_setup(2). params points at a struct
// io_uring_params that the kernel reads and fills in before returning.
func IoUringSetup(entries uint32, params unsafe.Pointer) (int, error) {
	fd, _, e := linux.Syscall(SYS_IO_URING_SETUP, uintptr(entries), uintptr(params), 0)
	return int(fd), errnoErr(e)
}

// IoUringEnter calls io_uring_enter(2). It goes through Syscall6, not
// RawSyscall6: a call that waits for completions blocks its thread, and the Go
// runtime must be told so that it hands the P to another thread meanwhile.
// arg and argSize are the optional extended argument (IORING_ENTER_EXT_ARG).
func IoUringEnter(fd int, toSubmit, minComplete, flags uint32, arg unsafe.Pointer, argSize uintptr) (int, error) {
	n, _, e := linux.Syscall6(SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit), uintptr(minComplete),
		uintptr(flags), uintptr(arg), argSize)
	return int(n), errnoErr(e)
}

// IoUringRegister calls io_uring_register(2) with opcode op; arg and nrArgs
// depend on op. The kernel copies arg during the call.
func IoUringRegister(fd int, op uint32, arg unsafe.Pointer, nrArgs uint32) (int, error) {
	n, _, e := linux.Syscall6(SYS_IO_URING_REGISTER, uintptr(fd), uintptr(op), uintptr(arg), uintptr(nrArgs), 0, 0)
	return int(n), errnoErr(e)
}

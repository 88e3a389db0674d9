//go:build !linux

package unix

// Epoll and eventfd constants: Linux values, so shared code compiles.
const (
	EPOLLIN       = 0x1
	EPOLLOUT      = 0x4
	EPOLLERR      = 0x8
	EPOLLHUP      = 0x10
	EPOLLRDHUP    = 0x2000
	EPOLLET       = 0x80000000
	EPOLL_CLOEXEC = 0x80000
	EPOLL_CTL_ADD = 0x1
	EPOLL_CTL_DEL = 0x2
	EPOLL_CTL_MOD = 0x3
	EFD_CLOEXEC   = 0x80000
	EFD_NONBLOCK  = 0x800
	SHUT_RD       = 0x0
	SHUT_WR       = 0x1
	SHUT_RDWR     = 0x2
)

// EpollEvent mirrors the fields of struct epoll_event that zcio uses.
type EpollEvent struct {
	Events uint32
	Fd     int32
	Pad    int32
}

// EpollCreate1 is not supported on this OS.
func EpollCreate1(flags int) (int, error) { return -1, notSupported("epoll_create1") }

// EpollCtl is not supported on this OS.
func EpollCtl(epfd, op, fd int, ev *EpollEvent) error { return notSupported("epoll_ctl") }

// EpollWait is not supported on this OS.
func EpollWait(epfd int, events []EpollEvent, msec int) (int, error) {
	return 0, notSupported("epoll_wait")
}

// Eventfd is not supported on this OS.
func Eventfd(initval uint, flags int) (int, error) { return -1, notSupported("eventfd") }

// Read is not supported on this OS through this shim.
func Read(fd int, p []byte) (int, error) { return 0, notSupported("read") }

// Write is not supported on this OS through this shim.
func Write(fd int, p []byte) (int, error) { return 0, notSupported("write") }

// Writev is not supported on this OS.
func Writev(fd int, iovs [][]byte) (int, error) { return 0, notSupported("writev") }

// Close is not supported on this OS through this shim.
func Close(fd int) error { return notSupported("close") }

// Dup is not supported on this OS through this shim.
func Dup(fd int) (int, error) { return -1, notSupported("dup") }

// IsOpen reports false: there is no such call on this OS.
func IsOpen(int) bool { return false }

// SetNonblock is not supported on this OS through this shim.
func SetNonblock(fd int, nonblocking bool) error { return notSupported("setnonblock") }

// Shutdown is not supported on this OS through this shim.
func Shutdown(fd, how int) error { return notSupported("shutdown") }

// Gettid returns -1: thread ids are not available through this shim.
func Gettid() int { return -1 }

//go:build !linux

package unix

import "net"

// Socket constants: Linux values, so shared code compiles.
const (
	AF_UNIX        = 0x1
	SOCK_STREAM    = 0x1
	SOCK_SEQPACKET = 0x5
	SOCK_CLOEXEC   = 0x80000
	SOCK_NONBLOCK  = 0x800
	SOL_SOCKET     = 0x1
	SO_RCVBUF      = 0x8
	SO_SNDBUF      = 0x7
)

// Socketpair is not supported on this OS through this shim.
func Socketpair(domain, typ, proto int) ([2]int, error) {
	return [2]int{-1, -1}, notSupported("socketpair")
}

// SetsockoptInt is not supported on this OS through this shim.
func SetsockoptInt(fd, level, opt, value int) error { return notSupported("setsockopt") }

// LocalAddr is not supported here.
func LocalAddr(fd int) (net.Addr, error) { return nil, notSupported("getsockname") }

// PeerAddr is not supported here.
func PeerAddr(fd int) (net.Addr, error) { return nil, notSupported("getpeername") }

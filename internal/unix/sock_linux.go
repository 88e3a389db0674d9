//go:build linux

package unix

import linux "golang.org/x/sys/unix"

// Socket constants for socketpair(2) and setsockopt(2).
const (
	AF_UNIX        = linux.AF_UNIX
	SOCK_STREAM    = linux.SOCK_STREAM
	SOCK_SEQPACKET = linux.SOCK_SEQPACKET
	SOCK_CLOEXEC   = linux.SOCK_CLOEXEC
	SOCK_NONBLOCK  = linux.SOCK_NONBLOCK
	SOL_SOCKET     = linux.SOL_SOCKET
	SO_RCVBUF      = linux.SO_RCVBUF
	SO_SNDBUF      = linux.SO_SNDBUF
)

// Socketpair creates a pair of connected sockets (socketpair(2)).
func Socketpair(domain, typ, proto int) ([2]int, error) { return linux.Socketpair(domain, typ, proto) }

// SetsockoptInt sets an integer socket option.
func SetsockoptInt(fd, level, opt, value int) error {
	return linux.SetsockoptInt(fd, level, opt, value)
}

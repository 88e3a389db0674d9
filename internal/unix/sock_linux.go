//go:build linux

package unix

import (
	"net"
	"strconv"
	"syscall"
	"unsafe"

	linux "golang.org/x/sys/unix"
)

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

// TCP options set on accepted connections, as net.Listen's connections have
// them (TCP_NODELAY, keep-alive probes).
const (
	IPPROTO_TCP   = linux.IPPROTO_TCP
	TCP_NODELAY   = linux.TCP_NODELAY
	SO_KEEPALIVE  = linux.SO_KEEPALIVE
	TCP_KEEPIDLE  = linux.TCP_KEEPIDLE
	TCP_KEEPINTVL = linux.TCP_KEEPINTVL
	TCP_KEEPCNT   = linux.TCP_KEEPCNT
	ECONNABORTED  = syscall.ECONNABORTED
	EMFILE        = syscall.EMFILE
	ENFILE        = syscall.ENFILE
)

// Accept4 accepts a connection on the listening socket fd without asking
// for the peer's address (accept4(2) with NULL addr), so nothing is
// allocated. flags are SOCK_NONBLOCK and SOCK_CLOEXEC. The syscall numbers
// here come from x/sys/unix, which has i386's direct socket syscalls (Linux
// 4.3 and later) where package syscall has only socketcall(2).
func Accept4(fd, flags int) (int, error) {
	for {
		nfd, _, e := syscall.Syscall6(linux.SYS_ACCEPT4, uintptr(fd), 0, 0, uintptr(flags), 0, 0)
		switch e {
		case 0:
			return int(nfd), nil
		case syscall.EINTR:
			continue
		}
		return -1, e
	}
}

// LocalAddr returns the address fd is bound to, as a *net.TCPAddr or a
// *net.UnixAddr.
func LocalAddr(fd int) (net.Addr, error) {
	sa, err := linux.Getsockname(fd)
	if err != nil {
		return nil, err
	}
	return toAddr(sa)
}

// PeerAddr returns the address of fd's peer, as a *net.TCPAddr or a
// *net.UnixAddr.
func PeerAddr(fd int) (net.Addr, error) {
	sa, err := linux.Getpeername(fd)
	if err == linux.ENOTCONN {
		// A TCP socket its peer reset is closed: getpeername(2) refuses it,
		// but the kernel still has the peer's address, and SO_PEERNAME
		// reports it for a closed socket.
		sa, err = closedPeerName(fd)
	}
	if err != nil {
		return nil, err
	}
	return toAddr(sa)
}

// closedPeerName reads an IP socket's peer address with SO_PEERNAME. The
// kernel fails it with EINVAL when the buffer is longer than the address:
// the length is that of the socket's own family.
func closedPeerName(fd int) (linux.Sockaddr, error) {
	local, err := linux.Getsockname(fd)
	if err != nil {
		return nil, err
	}
	var rsa linux.RawSockaddrAny
	var n uint32
	switch local.(type) {
	case *linux.SockaddrInet4:
		n = linux.SizeofSockaddrInet4
	case *linux.SockaddrInet6:
		n = linux.SizeofSockaddrInet6
	default:
		return nil, linux.ENOTCONN
	}
	_, _, e := syscall.Syscall6(linux.SYS_GETSOCKOPT, uintptr(fd), linux.SOL_SOCKET, linux.SO_PEERNAME,
		uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return nil, e
	}
	switch rsa.Addr.Family {
	case linux.AF_INET:
		pp := (*linux.RawSockaddrInet4)(unsafe.Pointer(&rsa))
		port := (*[2]byte)(unsafe.Pointer(&pp.Port)) // network byte order
		return &linux.SockaddrInet4{Port: int(port[0])<<8 | int(port[1]), Addr: pp.Addr}, nil
	case linux.AF_INET6:
		pp := (*linux.RawSockaddrInet6)(unsafe.Pointer(&rsa))
		port := (*[2]byte)(unsafe.Pointer(&pp.Port))
		return &linux.SockaddrInet6{Port: int(port[0])<<8 | int(port[1]), ZoneId: pp.Scope_id, Addr: pp.Addr}, nil
	}
	return nil, linux.ENOTCONN
}

func toAddr(sa linux.Sockaddr) (net.Addr, error) {
	switch a := sa.(type) {
	case *linux.SockaddrInet4:
		// 4 bytes, as net has them: a 16-byte form is ::ffff:a.b.c.d to
		// netip (TCPAddr.AddrPort), which IPv4 prefixes do not contain.
		ip := make(net.IP, net.IPv4len)
		copy(ip, a.Addr[:])
		return &net.TCPAddr{IP: ip, Port: a.Port}, nil
	case *linux.SockaddrInet6:
		ip := make(net.IP, net.IPv6len)
		copy(ip, a.Addr[:])
		zone := ""
		if a.ZoneId != 0 {
			// The interface's name, or its index where the lookup
			// fails, as net writes a zone.
			zone = strconv.FormatUint(uint64(a.ZoneId), 10)
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		return &net.TCPAddr{IP: ip, Port: a.Port, Zone: zone}, nil
	case *linux.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}, nil
	}
	return nil, syscall.EAFNOSUPPORT
}

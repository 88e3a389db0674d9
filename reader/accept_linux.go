//go:build linux

package reader

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/zcio/zcio/internal/unix"
)

// openAccept prepares bare accepts. Go's poller will not wait on a
// listener's own descriptor for anything but its Accept (a listener's
// RawConn refuses Read), so the Listener waits on a duplicate of it: the
// same socket, registered with the poller under a second descriptor.
func (l *Listener) openAccept() error {
	rc, err := l.ln.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	var dfd int
	var derr error
	if err := rc.Control(func(s uintptr) { dfd, derr = unix.Dup(int(s)) }); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("dup: %w", derr)
	}
	// The socket is non-blocking (net made it so), so the file is pollable.
	l.lf = os.NewFile(uintptr(dfd), "zcio-listener")
	rc, err = l.lf.SyscallConn()
	if err != nil {
		_ = l.lf.Close()
		return err
	}
	l.rc = rc
	a := &acceptState{}
	a.fn = func(s uintptr) bool {
		a.fd, a.err = unix.Accept4(int(s), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return a.err != unix.EAGAIN
	}
	l.acc = a
	return nil
}

// acceptState is one accept4 attempt's result, and the function the poller
// calls to make it: made once per Listener, so that an accept allocates
// nothing (a closure per call would, and the garbage of thousands of
// accepts is resident memory until the next collection).
type acceptState struct {
	mu  sync.Mutex // one accept at a time: they share fd and err
	fd  int
	err error
	fn  func(s uintptr) bool
}

// acceptConn accepts the next connection as a bare non-blocking socket (no
// net.Conn: see Conn), waiting in Go's poller. TCP connections get the
// options net.Listen's connections have: no Nagle delay, and keep-alive
// probes after 15 s idle, every 15 s, 9 at most.
func (l *Listener) acceptConn() (net.Conn, int, error) {
	a := l.acc
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		a.fd, a.err = -1, nil
		err := l.rc.Read(a.fn)
		fd, aerr := a.fd, a.err
		switch {
		case err != nil:
			if l.closed.Load() {
				err = net.ErrClosed // report the Listener's Close as net does
			}
		case aerr != nil:
			if errors.Is(aerr, unix.ECONNABORTED) {
				continue // the peer gave up before we got to it
			}
			err = os.NewSyscallError("accept4", aerr)
		}
		if err != nil {
			return nil, -1, &net.OpError{Op: "accept", Net: l.ln.Addr().Network(), Addr: l.ln.Addr(), Err: err}
		}
		if l.kind == connTCP {
			setTCPOptions(fd)
		}
		return nil, fd, nil
	}
}

// setTCPOptions sets an accepted TCP socket's options; a failure leaves the
// kernel's default, as net does.
func setTCPOptions(fd int) {
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9)
}

// setNonblock makes sure a wrapped connection's socket is non-blocking, as
// the engines read it: os.File.Fd on a duplicate of it (TCPConn.File) puts
// the file description both descriptors share in blocking mode, and a read
// that blocks would stall the engine's loop and every connection on it.
func setNonblock(fd int) error {
	if err := unix.SetNonblock(fd, true); err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	return nil
}

// closeFD closes a bare socket that could not be attached.
func closeFD(fd int) { _ = unix.Close(fd) }

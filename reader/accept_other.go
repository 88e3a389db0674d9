//go:build !linux

package reader

import "net"

// acceptState is unused here: connections are accepted through the listener.
type acceptState struct{}

// openAccept does nothing: connections are accepted through the listener.
func (l *Listener) openAccept() error { return nil }

// acceptConn accepts the next connection as a net.Conn: the portable engine
// reads through it.
func (l *Listener) acceptConn() (net.Conn, int, error) {
	nc, err := l.ln.Accept()
	if err != nil {
		return nil, -1, err
	}
	fd, err := connFD(nc)
	if err != nil {
		_ = nc.Close()
		return nil, -1, err
	}
	return nc, fd, nil
}

// setNonblock does nothing: the portable engine reads through the net.Conn.
func setNonblock(int) error { return nil }

// closeFD does nothing: a Conn here always has its net.Conn, which owns fd.
func closeFD(int) {}

//go:build linux

package reader

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Connections a Listener accepts on Linux are bare sockets (no net.Conn):
// these tests check that they still behave as net.Conn promises.

func TestBareConnAddresses(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			leakCheck(t)
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = t.TempDir() + "/s"
			}
			ln, err := Listen(network, addr, WithEngine(Fallback))
			require.NoError(t, err)
			defer ln.Close()
			peer, err := net.Dial(network, ln.Addr().String())
			require.NoError(t, err)
			defer peer.Close()
			c, err := ln.Accept()
			require.NoError(t, err)
			require.Nil(t, c.nc, "a Listener's connection is a bare socket")

			assert.Equal(t, ln.Addr().String(), c.LocalAddr().String())
			assert.Equal(t, network, c.LocalAddr().Network())
			if network == "tcp" {
				assert.Equal(t, peer.LocalAddr().String(), c.RemoteAddr().String())
				_, isTCP := c.RemoteAddr().(*net.TCPAddr)
				assert.True(t, isTCP)
			}
			remote := c.RemoteAddr().String()
			require.NoError(t, c.Close())
			// Looked up before Close: still reported after it.
			assert.Equal(t, ln.Addr().String(), c.LocalAddr().String())
			assert.Equal(t, remote, c.RemoteAddr().String())

			// Never looked up before Close: an empty address of the right
			// kind, not nil.
			peer2, err := net.Dial(network, ln.Addr().String())
			require.NoError(t, err)
			defer peer2.Close()
			c2, err := ln.Accept()
			require.NoError(t, err)
			require.NoError(t, c2.Close())
			require.NotNil(t, c2.LocalAddr())
			assert.Equal(t, network, c2.LocalAddr().Network())
			require.NotNil(t, c2.RemoteAddr())
		})
	}
}

func TestBareConnTCPOptions(t *testing.T) {
	leakCheck(t)
	_, c := acceptedPair(t, Fallback)
	defer c.Close()
	nodelay, err := syscall.GetsockoptInt(c.fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
	require.NoError(t, err)
	assert.Equal(t, 1, nodelay)
	keepalive, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	require.NoError(t, err)
	assert.Equal(t, 1, keepalive)
	fl, err := fcntlFlags(c.fd)
	require.NoError(t, err)
	assert.NotZero(t, fl&syscall.O_NONBLOCK, "accepted sockets are non-blocking")
}

// acceptedPair returns a dialled peer and the Conn a Listener of the given
// engine accepted for it; the peer and the Listener are closed at cleanup.
func acceptedPair(t *testing.T, kind EngineKind) (net.Conn, *Conn) {
	t.Helper()
	ln := listen(t, kind)
	t.Cleanup(func() { _ = ln.Close() })
	peer := dial(t, ln)
	t.Cleanup(func() { _ = peer.Close() })
	c, err := ln.Accept()
	require.NoError(t, err)
	return peer, c
}

func fcntlFlags(fd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// A Write larger than the socket buffers waits for the peer, in order, and
// a write deadline cuts it short with os.ErrDeadlineExceeded; the bytes it
// did write are the ones the peer gets.
func TestBareConnWriteWaitsAndDeadline(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			peer, c := acceptedPair(t, kind)

			// The peer does not read: the deadline ends the write.
			big := pattern(32<<20, 1)
			require.NoError(t, c.SetWriteDeadline(time.Now().Add(200*time.Millisecond)))
			n, err := c.Write(big)
			require.Error(t, err)
			assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
			var oe *net.OpError
			require.True(t, errors.As(err, &oe))
			assert.Equal(t, "write", oe.Op)
			assert.Less(t, n, len(big))
			assert.Positive(t, n)

			// No deadline: the peer reads while Write waits for room.
			require.NoError(t, c.SetWriteDeadline(time.Time{}))
			more := pattern(4<<20, 2)
			got := make(chan []byte, 1)
			go func() {
				b := make([]byte, n+len(more))
				_, _ = io.ReadFull(peer, b)
				got <- b
			}()
			m, err := c.Write(more)
			require.NoError(t, err)
			assert.Equal(t, len(more), m)
			select {
			case b := <-got:
				assert.True(t, bytes.Equal(big[:n], b[:n]), "the bytes written before the deadline")
				assert.True(t, bytes.Equal(more, b[n:]), "the bytes written after it")
			case <-time.After(10 * time.Second):
				t.Fatal("peer did not get the writes")
			}
			require.NoError(t, c.Close())
			_, err = c.Write([]byte("x"))
			assert.ErrorIs(t, err, net.ErrClosed)
			assert.ErrorIs(t, c.SetWriteDeadline(time.Now()), net.ErrClosed)
		})
	}
}

// CloseWrite sends the peer EOF; reading from the peer goes on.
func TestBareConnCloseWrite(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			peer, c := acceptedPair(t, kind)
			_, err := c.Write([]byte("bye"))
			require.NoError(t, err)
			require.NoError(t, c.CloseWrite())
			b, err := io.ReadAll(peer)
			require.NoError(t, err)
			assert.Equal(t, "bye", string(b))

			_, err = peer.Write([]byte("still reading"))
			require.NoError(t, err)
			var got []byte
			require.NoError(t, c.Reader().ReadRange(13, func(p []byte) { got = append(got, p...) }))
			assert.Equal(t, "still reading", string(got))
			require.NoError(t, c.Close())
			assert.ErrorIs(t, c.CloseWrite(), net.ErrClosed)
		})
	}
}

// Close wakes a waiting Accept with net.ErrClosed, later Accepts fail the
// same way, and the listening socket (both its descriptors) is gone.
func TestListenerCloseWakesAccept(t *testing.T) {
	leakCheck(t)
	ln := listen(t, Fallback)
	addr := ln.Addr().String()
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, ln.Close())
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, net.ErrClosed)
		var oe *net.OpError
		assert.True(t, errors.As(err, &oe))
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Accept")
	}
	_, err := ln.Accept()
	assert.ErrorIs(t, err, net.ErrClosed)
	_, err = net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "nothing listens after Close")
}

// Close racing a Write from another goroutine never lets the write reach
// another connection: the bare fd is closed only once no raw write(2) is on
// it, and the fd numbers freed are reused by the next accepts at once.
func TestBareConnCloseRacesWrite(t *testing.T) {
	leakCheck(t)
	ln := listen(t, Fallback)
	defer ln.Close()
	msg := bytes.Repeat([]byte{'x'}, 512)
	for range 100 {
		peer := dial(t, ln)
		c, err := ln.Accept()
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() {
			for {
				if _, err := c.Write(msg); err != nil {
					done <- err
					return
				}
			}
		}()
		require.NoError(t, c.Close())
		select {
		case err := <-done:
			assert.ErrorIs(t, err, net.ErrClosed)
		case <-time.After(5 * time.Second):
			t.Fatal("a Write outlived Close")
		}
		// The next connection likely gets the same fd number: nothing of the
		// closed one's writes may show up on it.
		peer2 := dial(t, ln)
		c2, err := ln.Accept()
		require.NoError(t, err)
		require.NoError(t, c2.Close())
		require.NoError(t, peer2.SetReadDeadline(time.Now().Add(time.Second)))
		b, err := io.ReadAll(peer2)
		require.NoError(t, err)
		require.Empty(t, b, "bytes of a closed connection's Write reached another one")
		_ = peer2.Close()
		_ = peer.Close()
	}
}

// addrHandler reports, from OnClose, the addresses its connection gives.
type addrHandler struct{ closed chan [2]string }

func (h *addrHandler) OnOpen(*Conn) {}

func (h *addrHandler) OnData(c *Conn) {
	r := c.Reader()
	_, _ = r.Discard(r.Buffered())
}

func (h *addrHandler) OnClose(c *Conn, _ error) {
	h.closed <- [2]string{c.LocalAddr().String(), c.RemoteAddr().String()}
}

// A peer that resets the connection (RST) before the addresses were first
// asked for: the Conn still reports the peer's address, as a net.Conn does
// (a handler logging who went away in OnClose, say), in handler mode and in
// blocking mode, on both engines.
func TestBareConnRemoteAddrAfterPeerReset(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			t.Run("handler", func(t *testing.T) {
				h := &addrHandler{closed: make(chan [2]string, 1)}
				ln, served := serve(t, kind, h, WithEngines(1), WithMemory(1<<20))
				peer := dial(t, ln)
				want := [2]string{ln.Addr().String(), peer.LocalAddr().String()}
				_, err := peer.Write([]byte("hi"))
				require.NoError(t, err)
				require.NoError(t, peer.(*net.TCPConn).SetLinger(0))
				require.NoError(t, peer.Close()) // RST
				select {
				case got := <-h.closed:
					assert.Equal(t, want, got, "local and remote address in OnClose after a reset")
				case <-time.After(5 * time.Second):
					t.Fatal("OnClose not called")
				}
				require.NoError(t, ln.Close())
				assert.ErrorIs(t, <-served, net.ErrClosed)
			})
			t.Run("blocking", func(t *testing.T) {
				ln := listen(t, kind, WithEngines(1), WithMemory(1<<20))
				defer ln.Close()
				peer := dial(t, ln)
				want := peer.LocalAddr().String()
				require.NoError(t, peer.(*net.TCPConn).SetLinger(0))
				require.NoError(t, peer.Close()) // RST, before or after the accept
				c, err := ln.Accept()
				require.NoError(t, err)
				defer c.Close()
				_, err = c.Read(make([]byte, 1))
				require.ErrorIs(t, err, syscall.ECONNRESET)
				assert.Equal(t, want, c.RemoteAddr().String())
				assert.Equal(t, ln.Addr().String(), c.LocalAddr().String())
			})
		})
	}
}

// The addresses of a bare socket are the ones net gives the same
// connection: an IPv4 address is 4 bytes long (net.TCPAddr.AddrPort is then
// an IPv4 address, not ::ffff:a.b.c.d, and IPv4 prefixes contain it); an
// IPv6 one 16; an IPv4 peer of a dual-stack socket is v4-mapped, as in net.
func TestBareConnAddrsAsNet(t *testing.T) {
	leakCheck(t)
	for _, tc := range []struct{ network, addr, dialNet string }{
		{"tcp4", "127.0.0.1:0", "tcp4"},
		{"tcp", "127.0.0.1:0", "tcp"},
		{"tcp6", "[::1]:0", "tcp6"},
		{"tcp", "[::]:0", "tcp4"},
	} {
		t.Run(tc.network+"_"+tc.addr+"_"+tc.dialNet, func(t *testing.T) {
			zl, err := Listen(tc.network, tc.addr, WithEngine(Fallback), WithEngines(1), WithMemory(1<<20))
			if err != nil && tc.dialNet == "tcp6" {
				t.Skipf("no IPv6 loopback: %v", err)
			}
			require.NoError(t, err)
			defer zl.Close()
			nl, err := net.Listen(tc.network, tc.addr)
			require.NoError(t, err)
			defer nl.Close()
			accept := func(la net.Addr, acc func() (net.Conn, error)) (local, remote, peer *net.TCPAddr) {
				_, port, _ := net.SplitHostPort(la.String())
				host := "127.0.0.1"
				if tc.dialNet == "tcp6" {
					host = "::1"
				}
				p, err := net.Dial(tc.dialNet, net.JoinHostPort(host, port))
				require.NoError(t, err)
				defer p.Close()
				c, err := acc()
				require.NoError(t, err)
				defer c.Close()
				return c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr), p.LocalAddr().(*net.TCPAddr)
			}
			zlocal, zremote, zpeer := accept(zl.Addr(), func() (net.Conn, error) { return zl.Accept() })
			nlocal, nremote, npeer := accept(nl.Addr(), func() (net.Conn, error) { return nl.Accept() })
			assert.Equal(t, len(nlocal.IP), len(zlocal.IP), "local IP length: net %v, zcio %v", nlocal.IP, zlocal.IP)
			assert.Equal(t, len(nremote.IP), len(zremote.IP), "remote IP length: net %v, zcio %v", nremote.IP, zremote.IP)
			assert.Equal(t, zpeer.AddrPort().Addr().Unmap(), zremote.AddrPort().Addr().Unmap())
			assert.Equal(t, npeer.AddrPort().Addr().Unmap(), nremote.AddrPort().Addr().Unmap())
			assert.Equal(t, nremote.AddrPort().Addr().Is4(), zremote.AddrPort().Addr().Is4(), "remote AddrPort: net %v, zcio %v", nremote.AddrPort(), zremote.AddrPort())
			assert.Equal(t, nlocal.AddrPort().Addr().Is4(), zlocal.AddrPort().Addr().Is4(), "local AddrPort: net %v, zcio %v", nlocal.AddrPort(), zlocal.AddrPort())
		})
	}
}

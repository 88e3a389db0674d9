//go:build linux && iouringgo

package main

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/iceber/iouring-go"

	"github.com/zcio/zcio/bench/internal/server"
)

// The iouring-go contender: one ring, one-shot IORING_OP_RECV per
// connection into that connection's reused 64 KiB buffer (the library has no
// buffer rings or multishot receive), completions handled on one dispatcher
// goroutine that re-arms the receive. Responses and forwarded frames are
// written with write(2) on the connection's fd.
const name = "iouring-go"

func init() { server.Register(name, start) }

type iouConn struct {
	f   *os.File
	fd  int
	buf []byte
	s   *server.Session
}

func start(cfg server.Config) (string, func() error, error) {
	iour, err := iouring.New(4096)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = iour.Close()
		return "", nil, err
	}
	results := make(chan iouring.Result, 4096)
	var (
		mu    sync.Mutex
		conns = map[*iouConn]struct{}{}
		wg    sync.WaitGroup
	)
	closeConn := func(c *iouConn) {
		mu.Lock()
		_, ok := conns[c]
		delete(conns, c)
		mu.Unlock()
		if ok {
			c.s.Close()
			_ = c.f.Close()
		}
	}
	arm := func(c *iouConn) {
		if _, err := iour.SubmitRequest(iouring.Recv(c.fd, c.buf, 0).WithInfo(c), results); err != nil {
			closeConn(c)
		}
	}
	wg.Add(2)
	go func() { // dispatcher: one goroutine handles every completion
		defer wg.Done()
		for res := range results {
			c := res.GetRequestInfo().(*iouConn)
			n, err := res.(iouring.Request).GetRes() // res as the kernel wrote it: -errno on failure
			if err == nil && n < 0 {
				err = syscall.Errno(-n)
			}
			switch {
			case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR):
				arm(c)
			case err != nil || n <= 0:
				closeConn(c)
			default:
				out := c.s.Feed(c.buf[:n], c.s.Out())
				c.s.KeepOut(out)
				if len(out) > 0 {
					if _, err := c.f.Write(out); err != nil {
						closeConn(c)
						continue
					}
				}
				arm(c)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			f, err := nc.(*net.TCPConn).File()
			_ = nc.Close()
			if err != nil {
				continue
			}
			c := &iouConn{f: f, fd: int(f.Fd()), buf: make([]byte, 64<<10)}
			c.s = server.NewSession(cfg.Scenario, func() server.Writer {
				return func(b []byte) error { _, err := f.Write(b); return err }
			})
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			arm(c)
		}
	}()
	stop := func() error {
		err := ln.Close()
		mu.Lock()
		open := make([]*iouConn, 0, len(conns))
		for c := range conns {
			open = append(open, c)
		}
		mu.Unlock()
		for _, c := range open {
			closeConn(c)
		}
		err = errors.Join(err, iour.Close())
		close(results)
		wg.Wait()
		return err
	}
	return ln.Addr().String(), stop, nil
}

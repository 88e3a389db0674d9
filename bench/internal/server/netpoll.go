package server

import (
	"context"
	"sync"
	"time"

	"github.com/cloudwego/netpoll"
)

// Netpoll is github.com/cloudwego/netpoll: epoll pollers feeding a linked
// buffer per connection, requests handled on pooled goroutines.
const Netpoll = "netpoll"

func init() { Register(Netpoll, startNetpoll) }

type netpollKey struct{}

type netpollConn struct {
	s *Session
	w Writer // netpoll's Writer is not safe for concurrent use: w locks
}

func startNetpoll(cfg Config) (string, func() error, error) {
	if cfg.Engines > 0 {
		if err := netpoll.Configure(netpoll.Config{PollerNum: cfg.Engines}); err != nil {
			return "", nil, err
		}
	}
	ln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	prepare := func(conn netpoll.Connection) context.Context {
		var mu sync.Mutex // netpoll's Writer is not safe for concurrent use
		w := func(b []byte) error {
			mu.Lock()
			defer mu.Unlock()
			if _, err := conn.Writer().WriteBinary(b); err != nil {
				return err
			}
			return conn.Writer().Flush()
		}
		nc := &netpollConn{w: w}
		nc.s = NewSession(cfg.Scenario, func() Writer { return w })
		_ = conn.AddCloseCallback(func(netpoll.Connection) error { nc.s.Close(); return nil })
		return context.WithValue(context.Background(), netpollKey{}, nc)
	}
	onRequest := func(ctx context.Context, conn netpoll.Connection) error {
		nc := ctx.Value(netpollKey{}).(*netpollConn)
		r := conn.Reader()
		n := r.Len()
		if n == 0 {
			return nil
		}
		buf, err := r.Next(n)
		if err != nil {
			return err
		}
		out := nc.s.Feed(buf, nc.s.Out())
		nc.s.KeepOut(out)
		if err := r.Release(); err != nil {
			return err
		}
		if len(out) > 0 {
			if err := nc.w(out); err != nil {
				return err
			}
		}
		if nc.s.Broken() {
			return conn.Close()
		}
		return nil
	}
	loop, err := netpoll.NewEventLoop(onRequest, netpoll.WithOnPrepare(prepare))
	if err != nil {
		_ = ln.Close()
		return "", nil, err
	}
	done := make(chan error, 1)
	go func() { done <- loop.Serve(ln) }()
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return loop.Shutdown(ctx)
	}
	return ln.Addr().String(), stop, nil
}

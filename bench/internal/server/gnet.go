package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
)

// Gnet is github.com/panjf2000/gnet/v2: event loops over epoll with a ring
// buffer per connection.
const Gnet = "gnet"

func init() { Register(Gnet, startGnet) }

type gnetServer struct {
	gnet.BuiltinEventEngine
	scenario string
	booted   chan struct{}
	eng      gnet.Engine // set in OnBoot, read after booted is closed
}

func (g *gnetServer) OnBoot(e gnet.Engine) gnet.Action {
	g.eng = e
	close(g.booted)
	return gnet.None
}

func (g *gnetServer) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	// Writes from other event loops (fan-out) must go through AsyncWrite,
	// which keeps the slice until it runs: hand it a copy.
	w := func() Writer {
		return func(b []byte) error { return c.AsyncWrite(append([]byte(nil), b...), nil) }
	}
	c.SetContext(NewSession(g.scenario, w))
	return nil, gnet.None
}

func (g *gnetServer) OnClose(c gnet.Conn, _ error) gnet.Action {
	if s, ok := c.Context().(*Session); ok {
		s.Close()
	}
	return gnet.None
}

func (g *gnetServer) OnTraffic(c gnet.Conn) gnet.Action {
	s := c.Context().(*Session)
	buf, err := c.Next(-1)
	if err != nil {
		return gnet.Close
	}
	out := s.Feed(buf, s.Out())
	s.KeepOut(out)
	if len(out) > 0 {
		if _, err := c.Write(out); err != nil {
			return gnet.Close
		}
	}
	if s.Broken() {
		return gnet.Close
	}
	return gnet.None
}

// freePort finds a loopback port for libraries that take an address rather
// than a listener.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func startGnet(cfg Config) (string, func() error, error) {
	addr, err := freePort()
	if err != nil {
		return "", nil, err
	}
	g := &gnetServer{scenario: cfg.Scenario, booted: make(chan struct{})}
	opts := []gnet.Option{gnet.WithMulticore(true), gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithLogLevel(logging.ErrorLevel)}
	if cfg.Engines > 0 {
		opts = append(opts, gnet.WithNumEventLoop(cfg.Engines))
	}
	done := make(chan error, 1)
	go func() { done <- gnet.Run(g, "tcp://"+addr, opts...) }()
	select {
	case <-g.booted:
	case err := <-done:
		return "", nil, fmt.Errorf("gnet run: %w", err)
	case <-time.After(10 * time.Second):
		return "", nil, errors.New("gnet did not boot in 10s")
	}
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := g.eng.Stop(ctx)
		return errors.Join(err, <-done)
	}
	return addr, stop, nil
}

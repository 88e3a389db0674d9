//go:build linux

package server

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/zcio/zcio/reader"
)

// zcio contenders: engine x delivery model.
const (
	ZcioUringHandler     = "zcio-uring-handler"
	ZcioUringBlocking    = "zcio-uring-blocking"
	ZcioFallbackHandler  = "zcio-fallback-handler"
	ZcioFallbackBlocking = "zcio-fallback-blocking"
)

func init() {
	uring := func() string {
		if err := reader.Probe().IOUring; err != nil {
			return "io_uring unavailable: " + err.Error()
		}
		return ""
	}
	RegisterCheck(ZcioUringHandler, uring)
	RegisterCheck(ZcioUringBlocking, uring)
	Register(ZcioUringHandler, func(cfg Config) (string, func() error, error) {
		return startZcio(cfg, reader.WithEngine(reader.IOUring), true)
	})
	Register(ZcioUringBlocking, func(cfg Config) (string, func() error, error) {
		return startZcio(cfg, reader.WithEngine(reader.IOUring), false)
	})
	Register(ZcioFallbackHandler, func(cfg Config) (string, func() error, error) {
		return startZcio(cfg, reader.WithEngine(reader.Fallback), true)
	})
	Register(ZcioFallbackBlocking, func(cfg Config) (string, func() error, error) {
		return startZcio(cfg, reader.WithEngine(reader.Fallback), false)
	})
}

// zcioHandler runs the scenario on the engine loops: it consumes everything
// buffered on each OnData call, in place, and never waits. Each connection's
// state is its Conn's Value.
type zcioHandler struct {
	scenario string
}

func (h *zcioHandler) OnOpen(c *reader.Conn) {
	c.SetValue(NewSession(h.scenario, func() Writer { return func(b []byte) error { _, err := c.Write(b); return err } }))
}

func (h *zcioHandler) OnData(c *reader.Conn) {
	s, ok := c.Value().(*Session)
	if !ok {
		return
	}
	r := c.Reader()
	n := r.Buffered()
	if n == 0 {
		return
	}
	out := s.Out()
	err := r.ReadRange(n, func(b []byte) { out = s.Feed(b, out) })
	s.KeepOut(out)
	if err != nil {
		if !errors.Is(err, reader.ErrWouldBlock) {
			_ = c.Close()
		}
		return
	}
	if len(out) > 0 {
		if _, err := c.Write(out); err != nil {
			_ = c.Close()
		}
	}
	if s.Broken() {
		_ = c.Close()
	}
}

func (h *zcioHandler) OnClose(c *reader.Conn, _ error) {
	if s, ok := c.Value().(*Session); ok {
		s.Close()
	}
}

func startZcio(cfg Config, engine reader.Option, handler bool) (string, func() error, error) {
	opts := []reader.Option{engine}
	if cfg.Engines > 0 {
		opts = append(opts, reader.WithEngines(cfg.Engines))
	}
	if cfg.Memory > 0 {
		opts = append(opts, reader.WithMemory(int(cfg.Memory)))
	}
	ln, err := reader.Listen("tcp", "127.0.0.1:0", opts...)
	if err != nil {
		return "", nil, err
	}
	done := make(chan error, 1)
	var wg sync.WaitGroup
	if handler {
		go func() { done <- reader.Serve(ln, &zcioHandler{scenario: cfg.Scenario}) }()
	} else {
		var mu sync.Mutex
		open := map[*reader.Conn]struct{}{}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					mu.Lock()
					for c := range open {
						_ = c.Close()
					}
					mu.Unlock()
					wg.Wait()
					done <- nil
					return
				}
				mu.Lock()
				open[c] = struct{}{}
				mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					serveZcioBlocking(c, cfg.Scenario)
					mu.Lock()
					delete(open, c)
					mu.Unlock()
				}()
			}
		}()
	}
	stop := func() error {
		err := ln.Close()
		select {
		case serr := <-done:
			if errors.Is(serr, net.ErrClosed) {
				serr = nil // Serve ends with Accept's error once ln is closed
			}
			return errors.Join(err, serr)
		case <-time.After(5 * time.Second):
			return errors.Join(err, errors.New("zcio server did not stop in 5s"))
		}
	}
	return ln.Addr().String(), stop, nil
}

// serveZcioBlocking is the goroutine-per-connection model: wait for at least
// one byte, then consume everything buffered in place.
func serveZcioBlocking(c *reader.Conn, scenario string) {
	defer c.Close()
	s := NewSession(scenario, func() Writer { return func(b []byte) error { _, err := c.Write(b); return err } })
	defer s.Close()
	r := c.Reader()
	var out []byte
	feed := func(b []byte) { out = s.Feed(b, out) }
	for {
		if err := r.Peek(1, func([][]byte) {}); err != nil {
			return
		}
		out = out[:0]
		if err := r.ReadRange(r.Buffered(), feed); err != nil {
			return
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
		if s.Broken() {
			return
		}
	}
}

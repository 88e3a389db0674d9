//go:build linux

package reader

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchServer is one contender of BenchmarkServe: it accepts conns
// connections and reads size-byte messages from them until the clients
// close, counting messages.
type benchServer interface {
	addr() string
	// expect arms the count of messages that ends a run; done is closed
	// when they have all been read.
	expect(msgs int64) (done <-chan struct{})
	close()
}

// counter counts messages read and signals when a target is reached.
type msgCounter struct {
	n      atomic.Int64
	target atomic.Int64
	mu     sync.Mutex
	done   chan struct{}
}

func (m *msgCounter) expect(msgs int64) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n.Store(0)
	m.done = make(chan struct{})
	m.target.Store(msgs)
	if msgs == 0 {
		close(m.done)
	}
	return m.done
}

// addBytes counts n more bytes of size-byte messages: whole messages are
// added, the rest of a partial one is carried in *rest.
func (m *msgCounter) addBytes(rest *int, n, size int) {
	*rest += n
	if k := *rest / size; k > 0 {
		*rest -= k * size
		m.add(int64(k))
	}
}

func (m *msgCounter) add(k int64) {
	if m.n.Add(k) == m.target.Load() {
		m.mu.Lock()
		close(m.done)
		m.mu.Unlock()
	}
}

// zcioServer runs a zcio Listener in blocking or handler mode. Like the
// standard servers it consumes whatever has arrived and counts whole
// messages by bytes: a server that waits for whole messages holds them in
// the arena (see the README on sizing).
type zcioServer struct {
	msgCounter
	ln   *Listener
	size int
	wg   sync.WaitGroup
}

func newZcioServer(b *testing.B, kind EngineKind, handler bool, size int) *zcioServer {
	ln, err := Listen("tcp", "127.0.0.1:0", WithEngine(kind))
	if err != nil {
		b.Fatal(err)
	}
	s := &zcioServer{ln: ln, size: size}
	s.wg.Add(1)
	if handler {
		go func() { defer s.wg.Done(); _ = Serve(ln, (*countHandler)(s)) }()
		return s
	}
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				// Like the standard servers: consume what has arrived and
				// count whole messages by bytes, holding no message.
				r := c.Reader()
				pending := 0
				for {
					k, err := r.Discard(min(max(1, r.Buffered()), r.Limit()))
					s.addBytes(&pending, k, size)
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *zcioServer) addr() string { return s.ln.Addr().String() }

// noBufs returns the ENOBUFS completions of the server's io_uring engines
// so far (0 on the fallback).
// sum adds up stat over the server's engines.
func (s *zcioServer) sum(stat func(engine) int) int {
	n := 0
	for _, e := range s.ln.g.engines {
		n += stat(e)
	}
	return n
}
func (s *zcioServer) close() { _ = s.ln.Close(); s.wg.Wait() }

// countHandler consumes every complete message on the engine loop.
type countHandler zcioServer

// OnOpen gives the connection its remainder counter: state of its own, so
// the loops share nothing but the message count.
func (h *countHandler) OnOpen(c *Conn) { c.SetValue(new(int)) }

func (h *countHandler) OnData(c *Conn) {
	r := c.Reader()
	n := 0
	for b := r.Buffered(); b > 0; b = r.Buffered() {
		k, err := r.Discard(min(b, r.Limit()))
		n += k
		if err != nil {
			break
		}
	}
	// The remainder of a partial message, kept by the handler.
	h.addBytes(c.Value().(*int), n, h.size)
}
func (h *countHandler) OnClose(*Conn, error) {}

// stdServer is the standard library, a goroutine per connection: reading
// into one reused 64 KiB buffer, or (the seed articles' baseline) bufio with
// a make per message.
type stdServer struct {
	msgCounter
	ln   net.Listener
	size int
	wg   sync.WaitGroup
}

func newStdServer(b *testing.B, makePerMsg bool, size int) *stdServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &stdServer{ln: ln, size: size}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				if makePerMsg {
					br := bufio.NewReader(c)
					for {
						msg := make([]byte, size)
						if _, err := io.ReadFull(br, msg); err != nil {
							return
						}
						s.add(1)
					}
				}
				buf := make([]byte, 64<<10)
				pending := 0
				for {
					n, err := c.Read(buf)
					s.addBytes(&pending, n, size)
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *stdServer) addr() string { return s.ln.Addr().String() }
func (s *stdServer) close()       { _ = s.ln.Close(); s.wg.Wait() }

// BenchmarkServe: loopback TCP, senders in this process, one op = one
// message of size bytes received and consumed by the server, across conns
// connections. Contenders: zcio engine={io_uring,fallback} ×
// model={blocking,handler}, the standard library with one reused 64 KiB
// buffer per connection (std-reused) and bufio with a make per message
// (std-bufio-make).
func BenchmarkServe(b *testing.B) {
	impls := []string{"std-reused", "std-bufio-make"}
	for _, k := range []EngineKind{IOUring, Fallback} {
		if k == IOUring && Probe().IOUring != nil {
			continue
		}
		impls = append(impls, k.String()+"-blocking", k.String()+"-handler")
	}
	for _, size := range []int{64, 1 << 10, 16 << 10, 64 << 10} {
		for _, conns := range []int{1, 64, 1000} {
			for _, impl := range impls {
				name := fmt.Sprintf("size=%s/conns=%d/impl=%s", sizeName(size), conns, impl)
				b.Run(name, func(b *testing.B) { benchServe(b, impl, size, conns) })
			}
		}
	}
}

// sendAll has the clients write msgs messages of size bytes in all, spread
// evenly, perWrite at most per write, and waits until s has read them.
func sendAll(b *testing.B, s benchServer, clients []net.Conn, batch []byte, size, msgs int) {
	done := s.expect(int64(msgs))
	perWrite := len(batch) / size
	var wg sync.WaitGroup
	for i, c := range clients {
		mine := msgs / len(clients)
		if i < msgs%len(clients) {
			mine++
		}
		if mine == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetWriteDeadline(time.Now().Add(2 * time.Minute))
			for mine > 0 {
				k := min(mine, perWrite)
				if _, err := c.Write(batch[:k*size]); err != nil {
					return
				}
				mine -= k
			}
		}()
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("server did not read every message")
	}
}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func benchServe(b *testing.B, impl string, size, conns int) {
	var s benchServer
	switch impl {
	case "std-reused":
		s = newStdServer(b, false, size)
	case "std-bufio-make":
		s = newStdServer(b, true, size)
	case "io_uring-blocking":
		s = newZcioServer(b, IOUring, false, size)
	case "io_uring-handler":
		s = newZcioServer(b, IOUring, true, size)
	case "fallback-blocking":
		s = newZcioServer(b, Fallback, false, size)
	case "fallback-handler":
		s = newZcioServer(b, Fallback, true, size)
	}
	defer s.close()
	clients := make([]net.Conn, conns)
	for i := range clients {
		c, err := net.Dial("tcp", s.addr())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	// Each client writes batches of messages with one write each.
	const perWrite = 16
	batch := make([]byte, size*perWrite)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	// Warm up: new connections take a while to reach a steady state (the
	// kernel autotunes their socket buffers; at 1,000 connections the first
	// second is a dip). A quarter of the messages again goes before the
	// timer, each server alike.
	sendAll(b, s, clients, batch, size, b.N/4)
	var gc0, gc1 runtime.MemStats
	runtime.ReadMemStats(&gc0)
	zs, _ := s.(*zcioServer)
	nobufs0, recv0 := 0, 0
	if zs != nil {
		nobufs0, recv0 = zs.sum(engineNoBufs), zs.sum(engineReceives)
	}
	b.ResetTimer()
	sendAll(b, s, clients, batch, size, b.N)
	b.StopTimer()
	runtime.ReadMemStats(&gc1)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(gc1.NumGC-gc0.NumGC), "GCs")
	if zs != nil && strings.HasPrefix(impl, "io_uring") {
		// Receives the kernel ended for want of a block, per 1000 messages:
		// each costs a re-arm.
		b.ReportMetric(float64(zs.sum(engineNoBufs)-nobufs0)*1000/float64(b.N), "ENOBUFS/kmsg")
		// Bytes per receive completion: about 64 KiB for read(2) into a
		// 64 KiB buffer; more where one receive is a bundle of blocks.
		if n := zs.sum(engineReceives) - recv0; n > 0 {
			b.ReportMetric(float64(b.N)*float64(size)/1024/float64(n), "KiB/recv")
		}
	}
}

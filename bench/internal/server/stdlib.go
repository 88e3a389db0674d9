package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/zcio/zcio/bench/internal/proto"
)

// Standard-library contenders: a goroutine per connection on net.Conn.
const (
	StdlibBufio  = "stdlib-bufio"  // bufio.Reader + make per message (the seed articles' baseline)
	StdlibReused = "stdlib-reused" // one reused 64 KiB buffer per connection (the reference)
	StdlibPool   = "stdlib-pool"   // a 64 KiB buffer from a sync.Pool for each read
)

// stdlibBufSize is the read buffer of the reused-buffer and pool contenders.
const stdlibBufSize = 64 << 10

func init() {
	Register(StdlibBufio, func(cfg Config) (string, func() error, error) {
		return serveStdlib(cfg, handleBufio)
	})
	Register(StdlibReused, func(cfg Config) (string, func() error, error) {
		return serveStdlib(cfg, handleReused)
	})
	Register(StdlibPool, func(cfg Config) (string, func() error, error) {
		return serveStdlib(cfg, handlePool)
	})
}

// serveStdlib accepts on a loopback port and runs handle on a goroutine per
// connection. stop closes the listener and every open connection and waits
// for their goroutines.
func serveStdlib(cfg Config, handle func(net.Conn, *Session)) (string, func() error, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := NewSession(cfg.Scenario, func() Writer { return func(b []byte) error { _, err := c.Write(b); return err } })
				handle(c, s)
				s.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				_ = c.Close()
			}()
		}
	}()
	stop := func() error {
		err := ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
		return err
	}
	return ln.Addr().String(), stop, nil
}

func handleReused(c net.Conn, s *Session) {
	buf := make([]byte, stdlibBufSize)
	var out []byte
	for {
		n, err := c.Read(buf)
		if n > 0 {
			out = s.Feed(buf[:n], out[:0])
			if !flush(c, s, out) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, stdlibBufSize); return &b }}

func handlePool(c net.Conn, s *Session) {
	var out []byte
	for {
		bp := bufPool.Get().(*[]byte)
		n, err := c.Read(*bp)
		if n > 0 {
			out = s.Feed((*bp)[:n], out[:0])
		}
		bufPool.Put(bp)
		if n > 0 && !flush(c, s, out) {
			return
		}
		if err != nil {
			return
		}
	}
}

func flush(c net.Conn, s *Session, out []byte) bool {
	if len(out) > 0 {
		if _, err := c.Write(out); err != nil {
			return false
		}
	}
	return !s.Broken()
}

// handleBufio reads message by message through a bufio.Reader and allocates
// each message's payload with make, as the articles this benchmark answers did.
func handleBufio(c net.Conn, s *Session) {
	br := bufio.NewReader(c)
	switch s.Scenario() {
	case ScenarioReqResp:
		bw := bufio.NewWriter(c)
		for {
			size, cmd, err := readRESPRequest(br)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					Global.Errors.Add(1)
				}
				return
			}
			_, _ = bw.Write(s.CountRequest(size, cmd, nil))
			if br.Buffered() == 0 && bw.Flush() != nil {
				return
			}
		}
	case ScenarioFanout:
		hello := make([]byte, proto.HelloSize)
		if _, err := io.ReadFull(br, hello); err != nil {
			return
		}
		s.SetHello(hello)
		if _, role := s.HelloDone(); role != proto.RolePublisher {
			_, _ = io.Copy(io.Discard, br)
			return
		}
		for {
			payload, err := readFrame(br)
			if err != nil {
				return
			}
			s.CountFrame(payload)
			s.ForwardFrame(payload)
		}
	default:
		for {
			payload, err := readFrame(br)
			if err != nil {
				return
			}
			s.CountFrame(payload)
		}
	}
}

func readFrame(br *bufio.Reader) ([]byte, error) {
	var hdr [proto.HeaderSize]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, err
	}
	payload := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	_, err := io.ReadFull(br, payload)
	return payload, err
}

var errRESP = errors.New("bench/server: malformed RESP request")

// readRESPRequest reads one array of bulk strings, allocating each argument.
// It returns the request's size in bytes and its first argument.
func readRESPRequest(br *bufio.Reader) (int, []byte, error) {
	n, size, err := readRESPLen(br, '*')
	if err != nil {
		return 0, nil, err
	}
	var cmd []byte
	for i := range n {
		l, hs, err := readRESPLen(br, '$')
		if err != nil {
			return 0, nil, err
		}
		arg := make([]byte, l+2)
		if _, err := io.ReadFull(br, arg); err != nil {
			return 0, nil, err
		}
		size += hs + l + 2
		if i == 0 {
			cmd = arg[:l]
		}
	}
	return size, cmd, nil
}

func readRESPLen(br *bufio.Reader, prefix byte) (int, int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, err
	}
	if len(line) < 4 || line[0] != prefix || line[len(line)-2] != '\r' {
		return 0, 0, errRESP
	}
	n, err := strconv.Atoi(string(line[1 : len(line)-2]))
	if err != nil || n < 0 {
		return 0, 0, errRESP
	}
	return n, len(line), nil
}

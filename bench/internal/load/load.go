package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zcio/zcio/bench/internal/proto"
	"github.com/zcio/zcio/bench/internal/server"
	"github.com/zcio/zcio/bench/internal/stats"
)

// ErrNotLoopback refuses a target outside 127.0.0.0/8 and ::1.
var ErrNotLoopback = errors.New("bench/load: target is not a loopback address")

// Config describes one load run.
type Config struct {
	Scenario  string
	Addr      string
	Conns     int
	Size      int           // payload bytes per frame
	Warmup    time.Duration // load before the measured window
	Window    time.Duration // measured window (latencies are recorded only here)
	Pipeline  int           // requests in flight per connection (reqresp)
	Streams   int           // publishers (fanout)
	Subs      int           // subscribers per stream (fanout)
	Timeout   time.Duration // hard bound for the whole run
	DialLimit int           // concurrent dials
}

// Result is what the load generator reports.
type Result struct {
	Conns      int     `json:"conns"`
	SentBytes  uint64  `json:"sent_bytes"`
	RecvBytes  uint64  `json:"recv_bytes"`
	Requests   uint64  `json:"requests"` // completed inside the window
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	Errors     uint64  `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
}

// Main parses flags, runs the scenario and prints the Result as JSON.
// The idle scenario also talks on stdin/stdout: see runIdle.
func Main(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var c Config
	fs.StringVar(&c.Scenario, "scenario", server.ScenarioStream, "scenario to drive")
	fs.StringVar(&c.Addr, "addr", "", "server address (loopback only)")
	fs.IntVar(&c.Conns, "conns", 64, "connections")
	fs.IntVar(&c.Size, "size", 1024, "payload bytes per frame")
	fs.DurationVar(&c.Warmup, "warmup", 500*time.Millisecond, "load before the measured window")
	fs.DurationVar(&c.Window, "window", 2*time.Second, "measured window")
	fs.IntVar(&c.Pipeline, "pipeline", 16, "requests in flight per connection (reqresp)")
	fs.IntVar(&c.Streams, "streams", 100, "publishers (fanout)")
	fs.IntVar(&c.Subs, "subs", 1, "subscribers per stream (fanout)")
	fs.DurationVar(&c.Timeout, "timeout", time.Minute, "hard bound for the whole run")
	fs.IntVar(&c.DialLimit, "dial-limit", 128, "concurrent dials")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := CheckLoopback(c.Addr); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	var (
		res Result
		err error
	)
	switch c.Scenario {
	case server.ScenarioStream, server.ScenarioGC:
		res, err = runStream(ctx, c, stdout)
	case server.ScenarioReqResp:
		res, err = runReqResp(ctx, c, stdout)
	case server.ScenarioFanout:
		res, err = runFanout(ctx, c, stdout)
	case server.ScenarioIdle:
		res, err = runIdle(ctx, c, stdin, stdout)
	default:
		return fmt.Errorf("load: unknown scenario %q", c.Scenario)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

// CheckLoopback accepts only host:port addresses on a loopback IP.
func CheckLoopback(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("parse target %q: %w", addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return fmt.Errorf("target %s: %w", addr, ErrNotLoopback)
	}
	return nil
}

// errs collects failures without stopping the run.
type errs struct {
	n     atomic.Uint64
	mu    sync.Mutex
	first error
}

func (e *errs) add(err error) {
	if e.n.Add(1) == 1 {
		e.mu.Lock()
		e.first = err
		e.mu.Unlock()
	}
}

func (e *errs) fill(r *Result) {
	r.Errors = e.n.Load()
	e.mu.Lock()
	if e.first != nil {
		r.FirstError = e.first.Error()
	}
	e.mu.Unlock()
}

// dialAll opens n connections with at most limit dials in flight.
func dialAll(ctx context.Context, addr string, n, limit int, e *errs) []net.Conn {
	conns := make([]net.Conn, n)
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	var d net.Dialer
	for i := range conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				e.add(fmt.Errorf("dial: %w", err))
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	return slices.DeleteFunc(conns, func(c net.Conn) bool { return c == nil })
}

// closeAll closes connections with an immediate reset so that thousands of
// them leave no TIME_WAIT entries behind between runs.
func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

// frames returns about 256 KiB of back-to-back frames of size payload bytes
// (at least one frame).
func frames(size int) []byte {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	one := proto.AppendFrame(nil, payload)
	k := max(1, (256<<10)/len(one))
	return slices.Repeat(one, k)
}

func runStream(ctx context.Context, c Config, stdout io.Writer) (Result, error) {
	var e errs
	conns := dialAll(ctx, c.Addr, c.Conns, c.DialLimit, &e)
	defer closeAll(conns)
	buf := frames(c.Size)
	deadline := started(stdout).Add(c.Warmup + c.Window + tail)
	var sent atomic.Uint64
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = conn.SetWriteDeadline(deadline)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				n, err := conn.Write(buf)
				sent.Add(uint64(n))
				if err != nil {
					if !isTimeout(err) {
						e.add(err)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	r := Result{Conns: len(conns), SentBytes: sent.Load()}
	e.fill(&r)
	return r, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// runReqResp keeps Pipeline requests in flight on each connection: it writes
// a batch, then reads until every response of the batch has arrived, and
// records each request's latency (batch sent -> its response complete).
func runReqResp(ctx context.Context, c Config, stdout io.Writer) (Result, error) {
	var e errs
	conns := dialAll(ctx, c.Addr, c.Conns, c.DialLimit, &e)
	defer closeAll(conns)
	var batch []byte
	var ends []int // cumulative end offset of each response in the batch
	total := 0
	for i := range max(c.Pipeline, 1) {
		if i%2 == 0 {
			batch = append(batch, proto.PingRequest...)
			total += len(proto.PongResponse)
		} else {
			batch = append(batch, proto.GetRequest...)
			total += len(proto.GetResponse)
		}
		ends = append(ends, total)
	}
	start := started(stdout)
	winStart, winEnd := start.Add(c.Warmup), start.Add(c.Warmup+c.Window)
	const maxSamples = 1 << 21
	perConn := max(maxSamples/max(len(conns), 1), 1)
	lat := make([][]float64, len(conns))
	var sent, recv, reqs atomic.Uint64
	var wg sync.WaitGroup
	for ci, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = conn.SetDeadline(winEnd.Add(tail + 2*time.Second))
			samples := make([]float64, 0, min(perConn, 1<<16))
			buf := make([]byte, 64<<10)
			for time.Now().Before(winEnd.Add(tail)) && ctx.Err() == nil {
				t0 := time.Now()
				if _, err := conn.Write(batch); err != nil {
					e.add(err)
					return
				}
				sent.Add(uint64(len(batch)))
				got, next := 0, 0
				for got < total {
					n, err := conn.Read(buf)
					got += n
					now := time.Now()
					for next < len(ends) && ends[next] <= got {
						if !t0.Before(winStart) && now.Before(winEnd) {
							reqs.Add(1)
							if len(samples) < perConn {
								samples = append(samples, float64(now.Sub(t0).Nanoseconds())/1e3)
							}
						}
						next++
					}
					if err != nil {
						e.add(err)
						return
					}
				}
				recv.Add(uint64(got))
			}
			lat[ci] = samples
		}()
	}
	wg.Wait()
	all := slices.Concat(lat...)
	slices.Sort(all)
	r := Result{Conns: len(conns), SentBytes: sent.Load(), RecvBytes: recv.Load(), Requests: reqs.Load()}
	if len(all) > 0 {
		r.P50us, r.P99us = stats.Percentile(all, 50), stats.Percentile(all, 99)
	}
	e.fill(&r)
	return r, nil
}

// runFanout connects Subs subscribers to each of Streams streams, then one
// publisher per stream that writes frames for the whole run; subscribers
// count what the server forwards to them.
func runFanout(ctx context.Context, c Config, stdout io.Writer) (Result, error) {
	var e errs
	nsub := c.Streams * c.Subs
	subs := dialAll(ctx, c.Addr, nsub, c.DialLimit, &e)
	defer closeAll(subs)
	for i, s := range subs {
		if _, err := s.Write(proto.AppendHello(nil, proto.RoleSubscriber, uint32(i%c.Streams))); err != nil {
			e.add(err)
		}
	}
	// Give the server a moment to register every subscriber before frames flow.
	time.Sleep(200 * time.Millisecond)
	pubs := dialAll(ctx, c.Addr, c.Streams, c.DialLimit, &e)
	defer closeAll(pubs)
	deadline := started(stdout).Add(c.Warmup + c.Window + tail)
	buf := frames(c.Size)
	var sent, recv atomic.Uint64
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.SetReadDeadline(deadline.Add(time.Second))
			b := make([]byte, 64<<10)
			for {
				n, err := s.Read(b)
				recv.Add(uint64(n))
				if err != nil {
					return
				}
			}
		}()
	}
	var pwg sync.WaitGroup
	for i, p := range pubs {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			_ = p.SetWriteDeadline(deadline)
			if _, err := p.Write(proto.AppendHello(nil, proto.RolePublisher, uint32(i))); err != nil {
				e.add(err)
				return
			}
			for time.Now().Before(deadline) && ctx.Err() == nil {
				n, err := p.Write(buf)
				sent.Add(uint64(n))
				if err != nil {
					if !isTimeout(err) {
						e.add(err)
					}
					return
				}
			}
		}()
	}
	pwg.Wait()
	closeAll(pubs)
	closeAll(subs)
	wg.Wait()
	r := Result{Conns: len(subs) + len(pubs), SentBytes: sent.Load(), RecvBytes: recv.Load()}
	e.fill(&r)
	return r, nil
}

// Started is the line a timed scenario (stream, gc, reqresp, fanout) prints
// once every connection is dialed, as its load begins: the harness starts
// the warm-up then, so that neither the dials nor the server's accepts fall
// in the measured window (at 1,000 connections they took most of a 300 ms
// warm-up).
const Started = "STARTED"

// tail is how long a timed load goes on past its warm-up and window: the
// harness's window opens a little after Started reaches it (it samples the
// CPU of every process and asks the server for a snapshot first), so a
// load that stopped exactly on time would leave the window's last
// milliseconds without load.
const tail = 200 * time.Millisecond

// started prints Started and returns the time the load begins.
func started(stdout io.Writer) time.Time {
	fmt.Fprintln(stdout, Started)
	return time.Now()
}

// Lines the idle scenario exchanges with the harness.
const (
	IdleConnected = "CONNECTED"
	IdleSend      = "send"
	IdleSent      = "SENT"
)

// runIdle opens Conns connections, prints "CONNECTED <n>", waits for "send"
// on stdin, writes one frame of Size bytes on every connection, prints
// "SENT", and holds the connections until stdin closes (or the timeout).
func runIdle(ctx context.Context, c Config, stdin io.Reader, stdout io.Writer) (Result, error) {
	var e errs
	conns := dialAll(ctx, c.Addr, c.Conns, c.DialLimit, &e)
	defer closeAll(conns)
	fmt.Fprintf(stdout, "%s %d\n", IdleConnected, len(conns))
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- strings.TrimSpace(sc.Text())
		}
	}()
	frame := proto.AppendFrame(nil, make([]byte, c.Size))
	var sent uint64
	for {
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("idle: %w", ctx.Err())
		case l, ok := <-lines:
			if !ok {
				r := Result{Conns: len(conns), SentBytes: sent}
				e.fill(&r)
				return r, nil
			}
			if l != IdleSend {
				continue
			}
			for _, conn := range conns {
				n, err := conn.Write(frame)
				sent += uint64(n)
				if err != nil {
					e.add(err)
				}
			}
			fmt.Fprintln(stdout, IdleSent)
		}
	}
}

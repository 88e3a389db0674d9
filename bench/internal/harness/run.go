package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zcio/zcio/bench/internal/load"
	"github.com/zcio/zcio/bench/internal/procfs"
	"github.com/zcio/zcio/bench/internal/server"
)

// RoleEnv tells a re-executed harness binary which child it is.
const RoleEnv = "ZCIOBENCH_ROLE"

// Reference is the contender every ratio is computed against.
const Reference = server.StdlibReused

// IouringGo is the peer contender built as its own binary.
const IouringGo = "iouring-go"

// ChildMain runs this process as a server or load-generator child when the
// harness started it as one. It reports whether it did.
func ChildMain() (bool, error) {
	switch os.Getenv(RoleEnv) {
	case "serve":
		return true, server.Main(os.Args[1:], os.Stdin, os.Stdout)
	case "load":
		return true, load.Main(os.Args[1:], os.Stdin, os.Stdout)
	}
	return false, nil
}

// Case is one measured configuration of a scenario.
type Case struct {
	Scenario string `json:"scenario"`
	Size     int    `json:"size,omitempty"`
	Conns    int    `json:"conns,omitempty"`
	Pipeline int    `json:"pipeline,omitempty"`
	Streams  int    `json:"streams,omitempty"`
	Subs     int    `json:"subs,omitempty"`
	Ballast  int    `json:"ballast_mib,omitempty"`
}

func (c Case) String() string {
	switch c.Scenario {
	case server.ScenarioIdle:
		return fmt.Sprintf("idle conns=%d msg=%s", c.Conns, FormatSize(c.Size))
	case server.ScenarioReqResp:
		return fmt.Sprintf("reqresp conns=%d pipeline=%d", c.Conns, c.Pipeline)
	case server.ScenarioGC:
		return fmt.Sprintf("gc size=%s conns=%d ballast=%dMiB", FormatSize(c.Size), c.Conns, c.Ballast)
	case server.ScenarioFanout:
		return fmt.Sprintf("fanout streams=%d subs=%d size=%s", c.Streams, c.Subs, FormatSize(c.Size))
	}
	return fmt.Sprintf("stream size=%s conns=%d", FormatSize(c.Size), c.Conns)
}

// Cases expands the options into the cases to run, in order.
func (o Options) Cases() []Case {
	var cs []Case
	for _, s := range o.Scenarios {
		switch s {
		case server.ScenarioStream:
			for _, size := range o.Sizes {
				for _, n := range o.Conns {
					cs = append(cs, Case{Scenario: s, Size: size, Conns: n})
				}
			}
		case server.ScenarioIdle:
			cs = append(cs, Case{Scenario: s, Size: o.IdleSize, Conns: o.IdleConns})
		case server.ScenarioReqResp:
			cs = append(cs, Case{Scenario: s, Conns: o.RRConns, Pipeline: o.Pipeline})
		case server.ScenarioGC:
			cs = append(cs, Case{Scenario: s, Size: o.GCSize, Conns: o.GCConns, Ballast: o.BallastMiB})
		case server.ScenarioFanout:
			cs = append(cs, Case{Scenario: s, Size: o.FanoutSize, Streams: o.Streams, Subs: o.Subs})
		}
	}
	return cs
}

// Contender is how to start one server process.
type Contender struct {
	Name string
	Path string
	Args []string
	Env  []string
	Skip string // why it cannot run here (then Path is empty)
}

// Run is one measured repetition of one contender on one case.
type Run struct {
	Case        Case               `json:"case"`
	Contender   string             `json:"contender"`
	Rep         int                `json:"rep"`
	Metrics     map[string]float64 `json:"-"`
	OthersCores float64            `json:"others_cores"`  // CPU used by other processes during the window, in cores
	ForksPerSec float64            `json:"forks_per_sec"` // processes and threads created on the machine during the window
	Disturbed   bool               `json:"disturbed"`
	Error       string             `json:"error,omitempty"`
	Load        *load.Result       `json:"load,omitempty"`
	PeakRSS     uint64             `json:"peak_rss"` // getrusage of the reaped server
	ServerCPU   time.Duration      `json:"server_cpu_ns"`
}

// MarshalJSON writes metrics with NaN as null.
func (r Run) MarshalJSON() ([]byte, error) {
	type plain Run
	m := make(map[string]*float64, len(r.Metrics))
	for k, v := range r.Metrics {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			m[k] = &v
		} else {
			m[k] = nil
		}
	}
	return json.Marshal(struct {
		plain
		Metrics map[string]*float64 `json:"metrics"`
	}{plain(r), m})
}

// runner carries what every run needs.
type runner struct {
	o    Options
	self string
	tmp  string
	log  io.Writer
}

func (r *runner) serverArgs(c Contender, cs Case) []string {
	args := append([]string{}, c.Args...)
	args = append(args, "-contender", c.Name, "-scenario", cs.Scenario)
	if cs.Scenario == server.ScenarioGC {
		args = append(args, "-ballast", strconv.Itoa(cs.Ballast))
	}
	if r.o.Engines > 0 {
		args = append(args, "-engines", strconv.Itoa(r.o.Engines))
	}
	if r.o.Memory > 0 {
		args = append(args, "-memory", strconv.FormatInt(r.o.Memory, 10))
	}
	return args
}

func (r *runner) startServer(c Contender, cs Case) (*Child, string, error) {
	srv, err := StartChild("server "+c.Name, c.Path, r.serverArgs(c, cs), c.Env)
	if err != nil {
		return nil, "", err
	}
	// Libraries may log on stdout: skip lines until READY.
	deadline := time.Now().Add(30 * time.Second)
	var line string
	for !strings.HasPrefix(line, server.ReadyPrefix) {
		line, err = srv.ReadLine(time.Until(deadline))
		if err != nil {
			_, _ = srv.Stop(time.Second)
			return nil, "", err
		}
	}
	addr := strings.TrimPrefix(line, server.ReadyPrefix)
	if err := load.CheckLoopback(addr); err != nil {
		_, _ = srv.Stop(time.Second)
		return nil, "", err
	}
	return srv, addr, nil
}

func snapshot(srv *Child) (server.Snapshot, error) {
	var s server.Snapshot
	if err := srv.Send("stats"); err != nil {
		return s, err
	}
	// Skip anything but the JSON line (a library's log output).
	deadline := time.Now().Add(10 * time.Second)
	var line string
	for !strings.HasPrefix(line, "{") {
		l, err := srv.ReadLine(time.Until(deadline))
		if err != nil {
			return s, err
		}
		line = l
	}
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		return s, fmt.Errorf("%s: stats %q: %w", srv.Name, line, err)
	}
	return s, nil
}

// cpuSample is the CPU time of every user-space process at one instant.
type cpuSample struct {
	at     time.Time
	tasks  map[int]procfs.Stat
	ours   map[int]bool
	forks  uint64
	cpu    procfs.CPUTimes   // the machine's, softirq included
	net    map[string]uint64 // the machine's TCP counters (nil if unreadable)
	tcpMem uint64            // bytes the machine's TCP sockets hold in the kernel (0 if unreadable)
}

func sampleCPU(pids ...int) cpuSample {
	s := cpuSample{at: time.Now(), ours: map[int]bool{os.Getpid(): true, os.Getppid(): true}}
	for _, p := range pids {
		s.ours[p] = true
	}
	s.tasks, _ = procfs.Tasks()
	s.forks, _ = procfs.Forks()
	s.cpu, _ = procfs.MachineCPU()
	s.net, _ = procfs.NetCounters()
	s.tcpMem, _ = procfs.TCPMemory()
	return s
}

// othersCores is the CPU, in cores, that user-space processes other than
// ours (server, load generator, harness and its parent) used between a and b.
// Each process counts its own CPU time over the interval (a process that
// appeared meanwhile counts in full). Processes that ended meanwhile are
// seen through their parents: the growth of a parent's reaped-children time,
// less what those children had already used at a, is the CPU of children
// that ended inside the interval — a compiler run or a test binary that came
// and went between the samples. Kernel threads are left out: the run's own
// loopback traffic is processed there (softirq).
func othersCores(a, b cpuSample) float64 {
	dt := b.at.Sub(a.at).Seconds()
	if dt <= 0 {
		return 0
	}
	return max(0, othersCPU(a, b).Seconds()/dt)
}

// othersCPU is othersCores's sum before it is divided and clamped: it can be
// negative when a process that ended was reaped by one of ours, or not yet.
func othersCPU(a, b cpuSample) time.Duration {
	ours := func(pid int) bool { return a.ours[pid] || b.ours[pid] }
	var other time.Duration
	for pid, st := range b.tasks {
		if ours(pid) {
			continue
		}
		prev := a.tasks[pid] // zero for a process that appeared meanwhile
		other += max(0, st.CPU-prev.CPU) + max(0, st.Children-prev.Children)
	}
	for pid, st := range a.tasks {
		if _, alive := b.tasks[pid]; !alive && !ours(pid) {
			other -= st.CPU + st.Children // already used before a: not in the interval
		}
	}
	return other
}

// forksPerSec is how many processes and threads the machine created per
// second between a and b. Processes and threads of our own that appeared
// meanwhile are not counted.
func forksPerSec(a, b cpuSample) float64 {
	dt := b.at.Sub(a.at).Seconds()
	if dt <= 0 || b.forks < a.forks {
		return 0
	}
	n := int64(b.forks - a.forks)
	for pid, st := range b.tasks {
		if !a.ours[pid] && !b.ours[pid] {
			continue
		}
		if before, ok := a.tasks[pid]; ok {
			n -= int64(max(0, st.Threads-before.Threads))
		} else {
			n -= int64(st.Threads) // a process of ours started meanwhile
		}
	}
	return float64(max(n, 0)) / dt
}

// maxForksPerSec is the process-creation rate above which a run is marked
// disturbed even if the CPU it cost was not seen (an orphan nobody reaped
// in time). Other programs' thread pools alone stay well below it.
const maxForksPerSec = 200

// judge records outside activity during a run and marks it disturbed.
func (r *runner) judge(run *Run, a, b cpuSample) {
	run.OthersCores = othersCores(a, b)
	run.ForksPerSec = forksPerSec(a, b)
	run.Disturbed = run.OthersCores > r.o.Disturbed || run.ForksPerSec > maxForksPerSec
}

// loadArgs builds the load generator's command line for a case.
func (r *runner) loadArgs(cs Case, addr string) []string {
	a := []string{
		"-scenario", cs.Scenario, "-addr", addr,
		"-warmup", r.o.Warmup.String(), "-window", r.o.Window.String(),
		"-timeout", (r.o.Warmup + r.o.Window + 90*time.Second).String(),
	}
	switch cs.Scenario {
	case server.ScenarioReqResp:
		a = append(a, "-conns", strconv.Itoa(cs.Conns), "-pipeline", strconv.Itoa(cs.Pipeline))
	case server.ScenarioFanout:
		a = append(a, "-streams", strconv.Itoa(cs.Streams), "-subs", strconv.Itoa(cs.Subs), "-size", strconv.Itoa(cs.Size))
	default:
		a = append(a, "-conns", strconv.Itoa(cs.Conns), "-size", strconv.Itoa(cs.Size))
	}
	return a
}

// runOnce measures one contender on one case. Every child it starts is
// reaped before it returns.
func (r *runner) runOnce(c Contender, cs Case, rep int) (run Run) {
	run = Run{Case: cs, Contender: c.Name, Rep: rep, Metrics: map[string]float64{}}
	if cs.Scenario == server.ScenarioIdle {
		err := r.runIdle(c, cs, &run)
		if err != nil {
			run.Error = err.Error()
		}
		return run
	}
	err := r.runTimed(c, cs, &run)
	if err != nil {
		run.Error = err.Error()
	}
	return run
}

func (r *runner) runTimed(c Contender, cs Case, run *Run) (err error) {
	srv, addr, err := r.startServer(c, cs)
	if err != nil {
		return err
	}
	defer func() {
		st, werr := srv.Stop(10 * time.Second)
		run.ServerCPU, run.PeakRSS = RusageOf(st)
		run.Metrics["peak RSS MiB"] = float64(run.PeakRSS) / (1 << 20)
		if err == nil {
			err = werr
		}
	}()
	ld, err := StartChild("load", r.self, r.loadArgs(cs, addr), []string{RoleEnv + "=load"})
	if err != nil {
		return err
	}
	defer func() {
		if _, werr := ld.Stop(5 * time.Second); err == nil && werr != nil {
			err = werr
		}
	}()
	// The warm-up begins once the load has dialed every connection.
	if line, err := ld.ReadLine(90 * time.Second); err != nil {
		return fmt.Errorf("load did not start: %w", err)
	} else if line != load.Started {
		return fmt.Errorf("load did not start: it printed %q", line)
	}
	time.Sleep(r.o.Warmup)
	c0 := sampleCPU(srv.Pid(), ld.Pid())
	s0, err := snapshot(srv)
	if err != nil {
		return err
	}
	time.Sleep(r.o.Window)
	s1, err := snapshot(srv)
	if err != nil {
		return err
	}
	c1 := sampleCPU(srv.Pid(), ld.Pid())
	r.judge(run, c0, c1)
	line, err := ld.ReadLine(r.o.Warmup + r.o.Window + 60*time.Second)
	if err != nil {
		return err
	}
	var lr load.Result
	if err := json.Unmarshal([]byte(line), &lr); err != nil {
		return fmt.Errorf("load result %q: %w", line, err)
	}
	run.Load = &lr
	timedMetrics(cs, s0, s1, lr, run.Metrics)
	machineMetrics(c0, c1, s1.Bytes-s0.Bytes, run.Metrics)
	if s1.Msgs == s0.Msgs {
		return fmt.Errorf("server handled no message in the window (load errors: %d %s)", lr.Errors, lr.FirstError)
	}
	return nil
}

// timedMetrics derives a timed run's figures from two server snapshots.
func timedMetrics(cs Case, s0, s1 server.Snapshot, lr load.Result, m map[string]float64) {
	dt := s1.At.Sub(s0.At).Seconds()
	bytes := float64(s1.Bytes - s0.Bytes)
	msgs := float64(s1.Msgs - s0.Msgs)
	cpu := (s1.CPU - s0.CPU).Seconds()
	allocs := float64(s1.Allocs - s0.Allocs)
	m["server CPU %"] = 100 * cpu / dt
	m["GC/s"] = float64(s1.GCCycles-s0.GCCycles) / dt
	m["end RSS MiB"] = float64(s1.RSS) / (1 << 20)
	switch cs.Scenario {
	case server.ScenarioReqResp:
		m["req/s"] = msgs / dt
		m["p50 us"] = lr.P50us
		m["p99 us"] = lr.P99us
		m["CPU us/req"] = 1e6 * cpu / msgs
		m["allocs/req"] = allocs / msgs
	case server.ScenarioFanout:
		fwd := float64(s1.Forwarded - s0.Forwarded)
		m["fwd MB/s"] = fwd / dt / 1e6
		m["frames/s"] = msgs / dt
		m["CPU s/GB"] = cpu / (fwd / 1e9)
		m["allocs/frame"] = allocs / msgs
	default:
		m["MB/s"] = bytes / dt / 1e6
		m["msgs/s"] = msgs / dt
		m["CPU s/GB"] = cpu / (bytes / 1e9)
		m["allocs/msg"] = allocs / msgs
		m["GC CPU %"] = 100 * (s1.GCCPU - s0.GCCPU) / dt
	}
}

// machineMetrics adds what the whole machine did during a timed run's
// window: CPU per GB received (busy time of every CPU, so the load
// generator's and the softirqs' too) and the part of it spent in softirqs
// (the network stack's receive path; this kernel accounts it to no process,
// so "CPU s/GB", the server's own, leaves it out), and the TCP
// retransmissions and retransmission timeouts, and the kernel memory of the
// machine's TCP sockets at the window's end (on loopback both ends' queues:
// how much the server leaves queued, and how far autotuning has grown the
// sockets' buffers). The counters are the machine's: on loopback the run's
// traffic is most of it, and "others CPU" says when something else ran.
func machineMetrics(a, b cpuSample, bytes uint64, m map[string]float64) {
	dt := b.at.Sub(a.at).Seconds()
	if dt <= 0 {
		return
	}
	if gb := float64(bytes) / 1e9; gb > 0 && b.cpu.Total > a.cpu.Total {
		busy := (b.cpu.Total - b.cpu.Idle) - (a.cpu.Total - a.cpu.Idle)
		m["machine CPU s/GB"] = busy.Seconds() / gb
		m["softirq s/GB"] = (b.cpu.SoftIRQ - a.cpu.SoftIRQ).Seconds() / gb
	}
	if b.tcpMem > 0 {
		m["TCP mem MiB"] = float64(b.tcpMem) / (1 << 20)
	}
	if a.net == nil || b.net == nil {
		return
	}
	delta := func(k string) float64 { return float64(b.net[k] - a.net[k]) }
	if out := delta("Tcp.OutSegs"); out > 0 {
		m["retrans %"] = 100 * delta("Tcp.RetransSegs") / out
	}
	m["RTO/s"] = delta("TcpExt.TCPTimeouts") / dt
}

// runIdle measures resident memory per connection: before any connection,
// with Conns idle connections, and after each has received one message.
func (r *runner) runIdle(c Contender, cs Case, run *Run) (err error) {
	srv, addr, err := r.startServer(c, cs)
	if err != nil {
		return err
	}
	defer func() {
		st, werr := srv.Stop(10 * time.Second)
		run.ServerCPU, run.PeakRSS = RusageOf(st)
		run.Metrics["peak RSS MiB"] = float64(run.PeakRSS) / (1 << 20)
		if err == nil {
			err = werr
		}
	}()
	time.Sleep(100 * time.Millisecond)
	base, err := snapshot(srv)
	if err != nil {
		return err
	}
	args := []string{"-scenario", cs.Scenario, "-addr", addr, "-conns", strconv.Itoa(cs.Conns),
		"-size", strconv.Itoa(cs.Size), "-timeout", "2m"}
	c0 := sampleCPU(srv.Pid())
	ld, err := StartChild("load", r.self, args, []string{RoleEnv + "=load"})
	if err != nil {
		return err
	}
	defer func() {
		if _, werr := ld.Stop(20 * time.Second); err == nil && werr != nil {
			err = werr
		}
	}()
	t0 := time.Now()
	line, err := ld.ReadLine(90 * time.Second)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(line, load.IdleConnected+" "))
	if err != nil || n != cs.Conns {
		return fmt.Errorf("idle load connected %q of %d", line, cs.Conns)
	}
	idle, err := waitFor(srv, func(s server.Snapshot) bool { return s.Conns >= int64(n) })
	if err != nil {
		return err
	}
	run.Metrics["connect s"] = time.Since(t0).Seconds()
	if err := ld.Send(load.IdleSend); err != nil {
		return err
	}
	if line, err := ld.ReadLine(60 * time.Second); err != nil || line != load.IdleSent {
		return fmt.Errorf("idle load did not send (%q): %w", line, err)
	}
	after, err := waitFor(srv, func(s server.Snapshot) bool { return s.Msgs >= base.Msgs+uint64(n) })
	if err != nil {
		return err
	}
	r.judge(run, c0, sampleCPU(srv.Pid(), ld.Pid()))
	// The same connections after a longer quiet: what a server still holds
	// once any delayed trimming of its own has run.
	time.Sleep(idleSettle)
	settled, err := snapshot(srv)
	if err != nil {
		return err
	}
	ld.CloseInput() // the load generator closes its connections and reports
	if line, err = ld.ReadLine(30 * time.Second); err != nil {
		return err
	}
	var lr load.Result
	if err := json.Unmarshal([]byte(line), &lr); err != nil {
		return fmt.Errorf("load result %q: %w", line, err)
	}
	run.Load = &lr
	per := func(s server.Snapshot) float64 { return (float64(s.RSS) - float64(base.RSS)) / float64(n) }
	run.Metrics["idle B/conn"] = per(idle)
	run.Metrics["after B/conn"] = per(after)
	run.Metrics["settled B/conn"] = per(settled)
	run.Metrics["base RSS MiB"] = float64(base.RSS) / (1 << 20)
	run.Metrics["heap B/conn"] = (float64(after.HeapLive) - float64(base.HeapLive)) / float64(n)
	run.Metrics["idle heap B/conn"] = (float64(idle.HeapLive) - float64(base.HeapLive)) / float64(n)
	// What the server allocated between the idle and the after snapshots
	// (its polling by waitFor included), live or garbage: with no GC in
	// between, garbage is resident memory too.
	run.Metrics["alloc B/conn"] = (float64(after.AllocBytes) - float64(idle.AllocBytes)) / float64(n)
	run.Metrics["stack B/conn"] = (float64(after.Stacks) - float64(base.Stacks)) / float64(n)
	run.Metrics["idle stack B/conn"] = (float64(idle.Stacks) - float64(base.Stacks)) / float64(n)
	run.Metrics["goroutines"] = float64(after.Goroutines)
	return nil
}

// idleSettle is how long the idle scenario waits after its "after" snapshot
// before it measures again ("settled"): longer than zcio's deep trim
// (DeepTrimFactor × its default idle trim, 1 s).
const idleSettle = 1500 * time.Millisecond

// Bounds of waitFor: the whole wait, and how long the server may make no
// progress at all before the run is declared stalled.
const (
	waitLimit = 60 * time.Second
	stallTime = 10 * time.Second
)

// waitFor polls the server's stats until cond holds, lets it settle briefly
// and returns a fresh snapshot. It gives up after waitLimit, or earlier when
// neither the connection nor the message count moved for stallTime.
func waitFor(srv *Child, cond func(server.Snapshot) bool) (server.Snapshot, error) {
	start := time.Now()
	last, lastMove := server.Snapshot{Conns: -1}, start
	for {
		s, err := snapshot(srv)
		if err != nil {
			return s, err
		}
		if cond(s) {
			time.Sleep(200 * time.Millisecond)
			return snapshot(srv)
		}
		if s.Conns != last.Conns || s.Msgs != last.Msgs {
			last, lastMove = s, time.Now()
		}
		switch {
		case time.Since(lastMove) > stallTime:
			return s, fmt.Errorf("%s: stalled for %v at %d connections, %d messages: %w", srv.Name, stallTime, s.Conns, s.Msgs, ErrChildTimeout)
		case time.Since(start) > waitLimit:
			return s, fmt.Errorf("%s: condition not reached in %v (conns %d, msgs %d): %w", srv.Name, waitLimit, s.Conns, s.Msgs, ErrChildTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// resolveContenders lists the contenders to run: the built-in ones this
// binary serves itself, and iouring-go as its own binary.
func (r *runner) resolveContenders() ([]Contender, error) {
	builtin := server.Names()
	want := r.o.Contenders
	if len(want) == 0 {
		want = defaultOrder(append(builtin, IouringGo))
	}
	var out []Contender
	for _, name := range want {
		switch {
		case name == IouringGo:
			out = append(out, r.iouringGo())
		case server.Has(name):
			c := Contender{Name: name, Path: r.self, Env: []string{RoleEnv + "=serve"}}
			if why := server.Unavailable(name); why != "" {
				c.Path, c.Skip = "", why
			}
			out = append(out, c)
		default:
			return nil, fmt.Errorf("%w: unknown contender %q (have %s)", ErrUsage, name, strings.Join(append(builtin, IouringGo), ","))
		}
	}
	return out, nil
}

// defaultOrder puts the reference first, then the other standard servers,
// zcio's (io_uring before fallback, handler before blocking), then peers in
// the order given.
func defaultOrder(names []string) []string {
	fixed := []string{Reference, server.StdlibBufio, server.StdlibPool,
		"zcio-uring-handler", "zcio-uring-blocking", "zcio-fallback-handler", "zcio-fallback-blocking"}
	out := make([]string, 0, len(names))
	for _, n := range fixed {
		if slices.Contains(names, n) {
			out = append(out, n)
		}
	}
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// iouringGo finds or builds the iouring-go server binary. The library links
// only with -ldflags=-checklinkname=0, so it never joins this binary.
func (r *runner) iouringGo() Contender {
	c := Contender{Name: IouringGo}
	if r.o.IouringBin != "" {
		c.Path = r.o.IouringBin
		return c
	}
	dir, err := moduleDir()
	if err != nil {
		c.Skip = "not built: " + err.Error()
		return c
	}
	out := filepath.Join(r.tmp, "iouringgo-server")
	cmd := exec.Command("go", "build", "-tags", "iouringgo", "-ldflags=-checklinkname=0", "-o", out, "./cmd/iouringgo-server")
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		c.Skip = "build failed: " + strings.TrimSpace(firstLine(string(msg)))
		return c
	}
	c.Path = out
	return c
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// errNoModule is returned when the bench module's source is not found.
var errNoModule = errors.New("bench module source not found above the working directory (run from bench/ or pass -iouringgo-bin)")

func moduleDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/zcio/zcio/bench\n") {
			return dir, nil
		}
		if p := filepath.Join(dir, "bench"); p != dir {
			if b, err := os.ReadFile(filepath.Join(p, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/zcio/zcio/bench\n") {
				return p, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errNoModule
		}
		dir = parent
	}
}

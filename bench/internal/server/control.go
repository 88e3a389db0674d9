package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/zcio/zcio/bench/internal/procfs"
)

// ErrUnknownContender is returned for a contender name that is not built in.
var ErrUnknownContender = errors.New("bench/server: unknown contender")

// Config is what a contender needs to start.
type Config struct {
	Scenario string
	Engines  int   // event loops for contenders that have them; 0 = their default
	Memory   int64 // buffer budget in bytes for contenders that take one; 0 = default
}

// Contender starts a server listening on a loopback port. It returns the
// address clients dial and a function that stops it.
type Contender func(cfg Config) (addr string, stop func() error, err error)

var (
	registry    = map[string]Contender{}
	unavailable = map[string]func() string{}
)

// Register makes a contender available by name. Called from init functions.
func Register(name string, c Contender) { registry[name] = c }

// RegisterCheck gives a contender a check that says why it cannot run on
// this machine ("" when it can). Called from init functions.
func RegisterCheck(name string, check func() string) { unavailable[name] = check }

// Unavailable says why a registered contender cannot run here, or "".
func Unavailable(name string) string {
	if check, ok := unavailable[name]; ok {
		return check()
	}
	return ""
}

// Names lists the registered contenders, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Snapshot is what a server process reports about itself on request.
type Snapshot struct {
	At         time.Time     `json:"at"`
	Bytes      uint64        `json:"bytes"`
	Msgs       uint64        `json:"msgs"`
	Conns      int64         `json:"conns"`
	Forwarded  uint64        `json:"forwarded"`
	Errors     uint64        `json:"errors"`
	CPU        time.Duration `json:"cpu_ns"` // user+system, getrusage(RUSAGE_SELF)
	RSS        uint64        `json:"rss"`
	PeakRSS    uint64        `json:"peak_rss"`
	Allocs     uint64        `json:"allocs"` // heap allocations including tiny ones
	AllocBytes uint64        `json:"alloc_bytes"`
	GCCycles   uint64        `json:"gc_cycles"`
	GCCPU      float64       `json:"gc_cpu_s"`
	HeapLive   uint64        `json:"heap_objects"` // bytes in heap objects now, reachable or not yet swept
	Stacks     uint64        `json:"stacks"`       // bytes of goroutine stacks in use
	Goroutines int           `json:"goroutines"`
}

var metricNames = []string{
	"/gc/heap/allocs:objects",
	"/gc/heap/tiny/allocs:objects",
	"/gc/heap/allocs:bytes",
	"/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/total:cpu-seconds",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/stacks:bytes",
}

// TakeSnapshot reads this process's counters and runtime figures.
func TakeSnapshot() (Snapshot, error) {
	s := Snapshot{
		At:         time.Now(),
		Bytes:      Global.Bytes.Load(),
		Msgs:       Global.Msgs.Load(),
		Conns:      Global.Conns.Load(),
		Forwarded:  Global.Forwarded.Load(),
		Errors:     Global.Errors.Load(),
		Goroutines: runtime.NumGoroutine(),
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, fmt.Errorf("getrusage: %w", err)
	}
	s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	mem, err := procfs.ReadMemory("self")
	if err != nil {
		return s, err
	}
	s.RSS, s.PeakRSS = mem.RSS, mem.Peak
	samples := make([]metrics.Sample, len(metricNames))
	for i, n := range metricNames {
		samples[i].Name = n
	}
	metrics.Read(samples)
	u := func(i int) uint64 {
		if samples[i].Value.Kind() == metrics.KindUint64 {
			return samples[i].Value.Uint64()
		}
		return 0
	}
	s.Allocs = u(0) + u(1)
	s.AllocBytes = u(2)
	s.GCCycles = u(3)
	if samples[4].Value.Kind() == metrics.KindFloat64 {
		s.GCCPU = samples[4].Value.Float64()
	}
	s.HeapLive = u(5)
	s.Stacks = u(6)
	return s, nil
}

// ballast keeps a pointer-rich live heap for the GC-pressure scenario.
var ballast []*ballastNode

type ballastNode struct {
	next *ballastNode
	data *[40]byte
}

func buildBallast(mib int) {
	n := mib << 20 / 64
	ballast = make([]*ballastNode, n)
	var prev *ballastNode
	for i := range ballast {
		nd := &ballastNode{next: prev, data: new([40]byte)}
		ballast[i] = nd
		prev = nd
	}
}

// ReadyPrefix starts the line a server process prints once it listens.
const ReadyPrefix = "READY "

// Main runs a server process: it starts the contender named on the command
// line, prints "READY <addr>", then answers "stats" lines on stdin with one
// JSON Snapshot per line until stdin reaches EOF or says "quit".
// extra adds contenders that only this binary has.
func Main(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	name := fs.String("contender", "stdlib-reused", "server to run: "+strings.Join(Names(), ", "))
	cfg := Config{}
	fs.StringVar(&cfg.Scenario, "scenario", ScenarioStream, "protocol to serve")
	fs.IntVar(&cfg.Engines, "engines", 0, "event loops (0 = contender default)")
	fs.Int64Var(&cfg.Memory, "memory", 0, "buffer budget in bytes for contenders that take one (0 = default)")
	ballastMiB := fs.Int("ballast", 0, "MiB of live pointer-rich heap to hold (GC-pressure scenario)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start, ok := registry[*name]
	if !ok {
		return fmt.Errorf("serve %q (have %v): %w", *name, Names(), ErrUnknownContender)
	}
	if *ballastMiB > 0 {
		buildBallast(*ballastMiB)
	}
	addr, stop, err := start(cfg)
	if err != nil {
		return fmt.Errorf("start %s: %w", *name, err)
	}
	fmt.Fprintf(stdout, "%s%s\n", ReadyPrefix, addr)
	err = answer(stdin, stdout)
	runtime.KeepAlive(ballast)
	return errors.Join(err, stop())
}

func answer(stdin io.Reader, stdout io.Writer) error {
	sc := bufio.NewScanner(stdin)
	enc := json.NewEncoder(stdout)
	for sc.Scan() {
		switch cmd := strings.TrimSpace(sc.Text()); cmd {
		case "stats":
			writeHeapProfile()
			s, err := TakeSnapshot()
			if err != nil {
				return err
			}
			if err := enc.Encode(s); err != nil {
				return fmt.Errorf("report stats: %w", err)
			}
		case "quit":
			return nil
		case "":
		default:
			fmt.Fprintf(os.Stderr, "serve: unknown command %q\n", cmd)
		}
	}
	return sc.Err()
}

// EnvHeapProfile names an environment variable: when it holds a path
// prefix, a server process writes a heap profile to <prefix>.<n>.pprof
// (after a GC) before each stats answer, to see what a connection costs.
const EnvHeapProfile = "ZCIOBENCH_HEAPPROFILE"

var heapProfiles int

func writeHeapProfile() {
	prefix := os.Getenv(EnvHeapProfile)
	if prefix == "" {
		return
	}
	heapProfiles++
	f, err := os.Create(fmt.Sprintf("%s.%d.pprof", prefix, heapProfiles))
	if err != nil {
		fmt.Fprintf(os.Stderr, "serve: heap profile: %v\n", err)
		return
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "serve: heap profile: %v\n", err)
	}
}

// Has reports whether a contender is registered.
func Has(name string) bool { return slices.Contains(Names(), name) }

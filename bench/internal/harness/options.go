package harness

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zcio/zcio/bench/internal/server"
)

// ErrUsage reports a bad command line.
var ErrUsage = errors.New("bench/harness: bad usage")

// Scenarios in the order they run.
var allScenarios = []string{
	server.ScenarioStream, server.ScenarioIdle, server.ScenarioReqResp,
	server.ScenarioGC, server.ScenarioFanout,
}

// Options is the parsed command line.
type Options struct {
	Scenarios  []string
	Contenders []string // empty: every available contender
	Sizes      []int
	Conns      []int
	IdleConns  int
	IdleSize   int
	RRConns    int
	Pipeline   int
	Streams    int
	Subs       int
	FanoutSize int
	BallastMiB int
	GCSize     int
	GCConns    int
	Reps       int
	Warmup     time.Duration
	Window     time.Duration
	Disturbed  float64 // cores of outside CPU above which a run is marked
	Engines    int
	Memory     int64
	JSONPath   string
	SVGPath    string
	IouringBin string
	Quiet      bool
	List       bool
	Full       bool
}

// applyFull widens o to every scenario and the full grid of sizes
// and connection counts (flags given explicitly still win).
func (o *Options) applyFull(set map[string]bool) {
	if !set["scenarios"] {
		o.Scenarios = slices.Clone(allScenarios)
	}
	if !set["sizes"] {
		o.Sizes = []int{64, 1 << 10, 16 << 10, 64 << 10}
	}
	if !set["conns"] {
		o.Conns = []int{1, 64, 1000}
	}
	if !set["window"] {
		o.Window = 2 * time.Second
	}
}

// DefaultOptions is the default comparison: about 3 minutes on two cores.
func DefaultOptions() Options {
	return Options{
		Scenarios:  []string{server.ScenarioStream, server.ScenarioIdle},
		Sizes:      []int{1024},
		Conns:      []int{64},
		IdleConns:  10000,
		IdleSize:   4096,
		RRConns:    50,
		Pipeline:   16,
		Streams:    100,
		Subs:       1,
		FanoutSize: 1024,
		BallastMiB: 256,
		GCSize:     1024,
		GCConns:    64,
		Reps:       3,
		// New connections take a while to reach a steady state (the
		// kernel autotunes their socket buffers): with 300 ms the standard
		// server was still warming up at 64 connections (CPU per GB 0.257
		// against 0.205 after 2 s) and the window fell in the first
		// second of 1,000 connections.
		Warmup:    2 * time.Second,
		Window:    1 * time.Second,
		Disturbed: 0.2,
		JSONPath:  "zciobench.json",
		SVGPath:   "zciobench.svg",
	}
}

// ParseArgs parses the harness's flags over the defaults.
func ParseArgs(args []string, stderr io.Writer) (Options, error) {
	o := DefaultOptions()
	fs := flag.NewFlagSet("zciobench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scen := listFlag{vals: o.Scenarios}
	cont := listFlag{}
	sizes := sizeFlag{vals: o.Sizes}
	conns := intListFlag{vals: o.Conns}
	fs.Var(&scen, "scenarios", "comma-separated scenarios: "+strings.Join(allScenarios, ",")+" (or all)")
	fs.Var(&cont, "contenders", "comma-separated contenders (default: all available; -list shows them)")
	fs.Var(&sizes, "sizes", "stream message sizes, e.g. 64,1KiB,16KiB,64KiB")
	fs.Var(&conns, "conns", "stream connection counts, e.g. 1,64,1000")
	fs.IntVar(&o.IdleConns, "idle-conns", o.IdleConns, "connections in the idle scenario")
	fs.IntVar(&o.IdleSize, "idle-size", o.IdleSize, "payload of the one message each idle connection receives")
	fs.IntVar(&o.RRConns, "rr-conns", o.RRConns, "connections in the request/response scenario")
	fs.IntVar(&o.Pipeline, "pipeline", o.Pipeline, "requests in flight per connection (request/response)")
	fs.IntVar(&o.Streams, "streams", o.Streams, "publishers in the fan-out scenario")
	fs.IntVar(&o.Subs, "subs", o.Subs, "subscribers per stream in the fan-out scenario")
	fs.IntVar(&o.FanoutSize, "fanout-size", o.FanoutSize, "frame payload in the fan-out scenario")
	fs.IntVar(&o.BallastMiB, "ballast", o.BallastMiB, "MiB of live pointer-rich heap each server holds in the gc scenario")
	fs.IntVar(&o.GCSize, "gc-size", o.GCSize, "message size in the gc scenario")
	fs.IntVar(&o.GCConns, "gc-conns", o.GCConns, "connections in the gc scenario")
	fs.IntVar(&o.Reps, "reps", o.Reps, "interleaved repetitions of every contender (>= 1)")
	fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "load before each measured window")
	fs.DurationVar(&o.Window, "window", o.Window, "measured window of each run")
	fs.Float64Var(&o.Disturbed, "disturbed", o.Disturbed, "mark a run disturbed when other processes used more than this many cores")
	fs.IntVar(&o.Engines, "engines", 0, "event loops for contenders that have them (0 = their default)")
	fs.Int64Var(&o.Memory, "memory", 0, "buffer budget in bytes for zcio (0 = its default)")
	fs.StringVar(&o.JSONPath, "json", o.JSONPath, "write results as JSON here (empty: do not)")
	fs.StringVar(&o.SVGPath, "svg", o.SVGPath, "draw results as SVG here (empty: do not)")
	fs.StringVar(&o.IouringBin, "iouringgo-bin", "", "prebuilt iouring-go server (default: build it with go build)")
	fs.BoolVar(&o.Quiet, "q", false, "no progress lines")
	fs.BoolVar(&o.List, "list", false, "list scenarios and contenders, then exit")
	fs.BoolVar(&o.Full, "full", false, "every scenario, sizes 64B..64KiB x conns 1,64,1000, 2s windows after 2s warm-ups (about 40 min with every contender on 2 cores)")
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	o.Scenarios, o.Contenders, o.Sizes, o.Conns = scen.vals, cont.vals, sizes.vals, conns.vals
	if o.Full {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		o.applyFull(set)
	}
	if slices.Contains(o.Scenarios, "all") {
		o.Scenarios = slices.Clone(allScenarios)
	}
	return o, o.validate()
}

func (o Options) validate() error {
	for _, s := range o.Scenarios {
		if !slices.Contains(allScenarios, s) {
			return fmt.Errorf("%w: unknown scenario %q (have %s)", ErrUsage, s, strings.Join(allScenarios, ","))
		}
	}
	switch {
	case len(o.Scenarios) == 0:
		return fmt.Errorf("%w: no scenario", ErrUsage)
	case o.Reps < 1:
		return fmt.Errorf("%w: -reps must be >= 1", ErrUsage)
	case o.Window <= 0 || o.Warmup < 0:
		return fmt.Errorf("%w: -window must be > 0 and -warmup >= 0", ErrUsage)
	case o.Window+o.Warmup > 10*time.Minute:
		return fmt.Errorf("%w: a run is bounded to 10 minutes", ErrUsage)
	case o.IdleConns < 1 || o.IdleConns > 19000:
		return fmt.Errorf("%w: -idle-conns must be in 1..19000 (the open-file limit is 20000 per process)", ErrUsage)
	case o.RRConns < 1 || o.Pipeline < 1 || o.Streams < 1 || o.Subs < 1:
		return fmt.Errorf("%w: connection counts must be >= 1", ErrUsage)
	}
	for _, c := range o.Conns {
		if c < 1 || c > 19000 {
			return fmt.Errorf("%w: -conns %d out of 1..19000", ErrUsage, c)
		}
	}
	for _, s := range o.Sizes {
		if s < 1 || s > 64<<20 {
			return fmt.Errorf("%w: -sizes %d out of 1..64MiB", ErrUsage, s)
		}
	}
	return nil
}

type listFlag struct{ vals []string }

func (f *listFlag) String() string { return strings.Join(f.vals, ",") }
func (f *listFlag) Set(s string) error {
	f.vals = nil
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			f.vals = append(f.vals, v)
		}
	}
	return nil
}

type intListFlag struct{ vals []int }

func (f *intListFlag) String() string { return joinInts(f.vals, strconv.Itoa) }
func (f *intListFlag) Set(s string) error {
	f.vals = nil
	for v := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("not a count: %q", v)
		}
		f.vals = append(f.vals, n)
	}
	return nil
}

type sizeFlag struct{ vals []int }

func (f *sizeFlag) String() string { return joinInts(f.vals, FormatSize) }
func (f *sizeFlag) Set(s string) error {
	f.vals = nil
	for v := range strings.SplitSeq(s, ",") {
		n, err := ParseSize(v)
		if err != nil {
			return err
		}
		f.vals = append(f.vals, n)
	}
	return nil
}

func joinInts(v []int, f func(int) string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = f(x)
	}
	return strings.Join(s, ",")
}

// ParseSize reads a byte count such as "64", "64B", "1KiB", "16k" or "1MiB".
func ParseSize(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1
	lower := strings.ToLower(s)
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"k", 1 << 10}, {"m", 1 << 20}, {"b", 1}} {
		if strings.HasSuffix(lower, u.suffix) {
			mult = u.mult
			s = s[:len(s)-len(u.suffix)]
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size: %q", s)
	}
	return n * mult, nil
}

// FormatSize prints a byte count the way ParseSize reads it: 64B, 1KiB, 1MiB.
func FormatSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

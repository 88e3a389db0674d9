package harness

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/zcio/zcio/bench/internal/chart"
	"github.com/zcio/zcio/bench/internal/server"
)

// Main runs the harness with command-line args, printing progress to stderr
// and the table to stdout.
func Main(args []string) error {
	if ok, err := ChildMain(); ok {
		return err
	}
	o, err := ParseArgs(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h: the usage is printed
	}
	if err != nil {
		return err
	}
	return Execute(o, os.Stdout, os.Stderr)
}

// Execute runs the comparison described by o.
func Execute(o Options, stdout, progress io.Writer) error {
	if o.Quiet {
		progress = io.Discard
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	tmp, err := os.MkdirTemp("", "zciobench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	r := &runner{o: o, self: self, tmp: tmp, log: progress}
	if o.List {
		fmt.Fprintf(stdout, "scenarios:  %s\ncontenders: %s\n", strings.Join(allScenarios, ", "),
			strings.Join(defaultOrder(append(server.Names(), IouringGo)), ", "))
		return nil
	}
	if len(o.Contenders) == 0 || slices.Contains(o.Contenders, IouringGo) {
		fmt.Fprintf(progress, "zciobench: building the %s server (its own binary, -ldflags=-checklinkname=0)\n", IouringGo)
	}
	contenders, err := r.resolveContenders()
	if err != nil {
		return err
	}
	machine := DescribeMachine()
	cases := o.Cases()
	var live []Contender
	for _, c := range contenders {
		if c.Skip != "" {
			fmt.Fprintf(progress, "zciobench: %s skipped: %s\n", c.Name, c.Skip)
			continue
		}
		live = append(live, c)
	}
	total := len(cases) * o.Reps * len(live)
	fmt.Fprintf(progress, "zciobench: %s\nzciobench: %d cases x %d contenders x %d reps = %d runs, interleaved\n",
		machine, len(cases), len(live), o.Reps, total)
	start := time.Now()
	var runs []Run
	k := 0
	for _, cs := range cases {
		for rep := 1; rep <= o.Reps; rep++ {
			for _, c := range repOrder(live, rep) {
				k++
				run := r.runOnce(c, cs, rep)
				runs = append(runs, run)
				fmt.Fprintf(progress, "[%3d/%d %5.1fs] %-38s %-24s rep %d: %s\n", k, total,
					time.Since(start).Seconds(), cs, c.Name, rep, progressNote(run))
			}
		}
	}
	sums := Summarize(cases, contenders, runs)
	fmt.Fprintf(stdout, "zciobench on %s, %d reps interleaved, window %v after %v warm-up; runs done in %.0fs\n",
		machine, o.Reps, o.Window, o.Warmup, time.Since(start).Seconds())
	fmt.Fprintf(stdout, "a run is noisy when other processes used more than %.2f cores during it\n", o.Disturbed)
	if err := WriteTable(stdout, sums, o.Reps); err != nil {
		return err
	}
	if o.JSONPath != "" {
		if err := writeJSON(o.JSONPath, Report{Machine: machine, Reference: Reference, Options: o, Summary: sums, Runs: runs}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nresults: %s\n", o.JSONPath)
	}
	if o.SVGPath != "" {
		if err := writeSVG(o.SVGPath, "zcio benchmark — "+machine.String(), Panels(sums)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "chart:   %s\n", o.SVGPath)
	}
	return nil
}

func progressNote(run Run) string {
	if run.Error != "" {
		return "FAILED: " + firstLine(run.Error)
	}
	head := tableMetrics[run.Case.Scenario][0].Key
	s := fmt.Sprintf("%s %s, others %.2f cores, %.0f forks/s", chart.FormatValue(run.Metrics[head]), head, run.OthersCores, run.ForksPerSec)
	if run.Disturbed {
		s += " (noisy)"
	}
	return s
}

func writeJSON(path string, rep Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func writeSVG(path, title string, panels []chart.Panel) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := chart.WriteSVG(f, title, panels); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// repOrder is the order of the contenders in repetition rep: as given in
// the first, then a fixed shuffle of its own in each other one. On a VM, a
// run can be slowed by the one before it (a server that freed a lot of
// memory leaves the next one to fault it back in from the host), so no
// contender should always follow the same one.
func repOrder(live []Contender, rep int) []Contender {
	out := slices.Clone(live)
	if rep > 1 {
		rnd := rand.New(rand.NewPCG(uint64(rep), 0x7a63696f))
		rnd.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out
}

package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zcio/zcio/bench/internal/chart"
	"github.com/zcio/zcio/bench/internal/server"
	"github.com/zcio/zcio/bench/internal/stats"
)

// metricDef names a figure shown in the table.
type metricDef struct {
	Key    string
	Higher bool // higher is better (only used for the chart's caption)
}

// tableMetrics are the figures shown per scenario; the first is the headline
// drawn in the chart. Every figure is in the JSON.
var tableMetrics = map[string][]metricDef{
	server.ScenarioStream:  {{"MB/s", true}, {"CPU s/GB", false}, {"allocs/msg", false}, {"GC/s", false}, {"peak RSS MiB", false}, {"machine CPU s/GB", false}, {"softirq s/GB", false}, {"retrans %", false}, {"RTO/s", false}, {"TCP mem MiB", false}},
	server.ScenarioGC:      {{"MB/s", true}, {"GC/s", false}, {"GC CPU %", false}, {"allocs/msg", false}, {"CPU s/GB", false}, {"peak RSS MiB", false}},
	server.ScenarioIdle:    {{"after B/conn", false}, {"idle B/conn", false}, {"settled B/conn", false}, {"heap B/conn", false}, {"idle heap B/conn", false}, {"alloc B/conn", false}, {"idle stack B/conn", false}, {"stack B/conn", false}, {"peak RSS MiB", false}},
	server.ScenarioReqResp: {{"req/s", true}, {"p50 us", false}, {"p99 us", false}, {"CPU us/req", false}, {"allocs/req", false}},
	server.ScenarioFanout:  {{"fwd MB/s", true}, {"CPU s/GB", false}, {"allocs/frame", false}, {"GC/s", false}, {"peak RSS MiB", false}},
}

// Cell is one contender's summary of one figure.
type Cell struct {
	stats.Summary
	Ratio float64 // median / reference median
}

// MarshalJSON writes NaN as null.
func (c Cell) MarshalJSON() ([]byte, error) {
	f := func(v float64) any {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return v
	}
	return json.Marshal(map[string]any{"median": f(c.Median), "min": f(c.Min), "max": f(c.Max), "n": c.N, "ratio": f(c.Ratio)})
}

// Row is one contender on one case.
type Row struct {
	Contender string          `json:"contender"`
	Cells     map[string]Cell `json:"metrics"`
	Others    Cell            `json:"others_cores"`
	Disturbed int             `json:"disturbed_runs"`
	Failed    int             `json:"failed_runs"`
	Skip      string          `json:"skipped,omitempty"`
	LastError string          `json:"last_error,omitempty"`
}

// CaseSummary is the table of one case.
type CaseSummary struct {
	Case  Case   `json:"case"`
	Title string `json:"title"`
	Rows  []Row  `json:"rows"`
}

// minRatioBase is the smallest reference median a ratio is computed against:
// below it (allocations or GC cycles of a server that has none) the ratio is
// noise.
const minRatioBase = 1e-3

// Summarize turns runs into per-case tables with ratios to the reference.
func Summarize(cases []Case, contenders []Contender, runs []Run) []CaseSummary {
	var out []CaseSummary
	for _, cs := range cases {
		sum := CaseSummary{Case: cs, Title: cs.String()}
		byName := map[string][]Run{}
		for _, r := range runs {
			if r.Case == cs {
				byName[r.Contender] = append(byName[r.Contender], r)
			}
		}
		keys := allKeys(byName)
		for _, c := range contenders {
			row := Row{Contender: c.Name, Cells: map[string]Cell{}, Skip: c.Skip}
			var others []float64
			vals := map[string][]float64{}
			for _, r := range byName[c.Name] {
				if r.Error != "" {
					row.Failed++
					row.LastError = r.Error
					continue
				}
				others = append(others, r.OthersCores)
				if r.Disturbed {
					row.Disturbed++
				}
				for k, v := range r.Metrics {
					vals[k] = append(vals[k], v)
				}
			}
			row.Others = Cell{Summary: stats.Summarize(others), Ratio: math.NaN()}
			for _, k := range keys {
				row.Cells[k] = Cell{Summary: stats.Summarize(vals[k]), Ratio: math.NaN()}
			}
			sum.Rows = append(sum.Rows, row)
		}
		var ref *Row
		for i := range sum.Rows {
			if sum.Rows[i].Contender == Reference {
				ref = &sum.Rows[i]
			}
		}
		if ref != nil {
			for i := range sum.Rows {
				for k, cell := range sum.Rows[i].Cells {
					if r := ref.Cells[k].Median; math.Abs(r) < minRatioBase {
						continue // a ratio to (almost) nothing says nothing
					}
					cell.Ratio = stats.Ratio(cell.Median, ref.Cells[k].Median)
					sum.Rows[i].Cells[k] = cell
				}
			}
		}
		out = append(out, sum)
	}
	return out
}

func allKeys(byName map[string][]Run) []string {
	seen := map[string]bool{}
	var keys []string
	for _, runs := range byName {
		for _, r := range runs {
			for k := range r.Metrics {
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	return keys
}

// formatCell prints "median [min-max] ratio".
func formatCell(c Cell) string {
	if c.N == 0 {
		return "-"
	}
	s := chart.FormatValue(c.Median)
	if c.N > 1 {
		s += " [" + chart.FormatValue(c.Min) + "-" + chart.FormatValue(c.Max) + "]"
	}
	if !math.IsNaN(c.Ratio) {
		s += fmt.Sprintf(" %.2fx", c.Ratio)
	}
	return s
}

// WriteTable prints one block per case.
func WriteTable(w io.Writer, sums []CaseSummary, reps int) error {
	for _, s := range sums {
		defs := tableMetrics[s.Case.Scenario]
		fmt.Fprintf(w, "\n== %s  (median [min-max] of %d runs; ratio = median / %s median)\n", s.Title, reps, Reference)
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		hdr := []string{"contender"}
		for _, d := range defs {
			hdr = append(hdr, d.Key)
		}
		hdr = append(hdr, "others CPU (cores)", "noisy runs")
		fmt.Fprintln(tw, strings.Join(hdr, "\t"))
		var notes []string
		for _, r := range s.Rows {
			cols := []string{r.Contender}
			switch {
			case r.Skip != "" || r.Failed == reps:
				word, why := "failed", firstLine(r.LastError)
				if r.Skip != "" {
					word, why = "skipped", r.Skip
				}
				cols = append(cols, word)
				for range defs {
					cols = append(cols, "-")
				}
				notes = append(notes, fmt.Sprintf("  %s %s: %s", r.Contender, word, why))
			default:
				for _, d := range defs {
					cols = append(cols, formatCell(r.Cells[d.Key]))
				}
				others := "-"
				if r.Others.N > 0 {
					others = chart.FormatValue(r.Others.Median) + " [max " + chart.FormatValue(r.Others.Max) + "]"
				}
				noisy := fmt.Sprintf("%d/%d", r.Disturbed, reps)
				if r.Failed > 0 {
					noisy += fmt.Sprintf(" (%d failed)", r.Failed)
					notes = append(notes, fmt.Sprintf("  %s failed %d/%d: %s", r.Contender, r.Failed, reps, firstLine(r.LastError)))
				}
				cols = append(cols, others, noisy)
			}
			fmt.Fprintln(tw, strings.Join(cols, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	return nil
}

// chartMetrics are the figures drawn per scenario (the headline first).
var chartMetrics = map[string][]metricDef{
	server.ScenarioStream:  {{"MB/s", true}},
	server.ScenarioGC:      {{"MB/s", true}, {"GC/s", false}},
	server.ScenarioIdle:    {{"after B/conn", false}, {"idle B/conn", false}},
	server.ScenarioReqResp: {{"req/s", true}, {"p99 us", false}},
	server.ScenarioFanout:  {{"fwd MB/s", true}},
}

// Panels turns summaries into chart panels, one per drawn figure of each case.
func Panels(sums []CaseSummary) []chart.Panel {
	var ps []chart.Panel
	for _, s := range sums {
		for _, m := range chartMetrics[s.Case.Scenario] {
			ps = append(ps, panel(s, m))
		}
	}
	return ps
}

func panel(s CaseSummary, m metricDef) chart.Panel {
	better := "higher is better"
	if !m.Higher {
		better = "lower is better"
	}
	p := chart.Panel{Title: s.Title + " — " + better, Unit: m.Key}
	for _, r := range s.Rows {
		c := r.Cells[m.Key]
		bar := chart.Bar{Label: r.Contender, Value: c.Median, Min: c.Min, Max: c.Max,
			Highlight: r.Contender == Reference, Disturbed: r.Disturbed > 0}
		if c.N == 0 {
			bar.Value, bar.Min, bar.Max = math.NaN(), math.NaN(), math.NaN()
			bar.Missing = "no result"
			if r.Skip != "" {
				bar.Missing = "skipped: " + r.Skip
			} else if r.LastError != "" {
				bar.Missing = "failed: " + firstLine(r.LastError)
			}
		}
		if !math.IsNaN(c.Ratio) {
			bar.Note = fmt.Sprintf("%.2fx", c.Ratio)
		}
		p.Bars = append(p.Bars, bar)
	}
	return p
}

// Machine describes where the results were measured.
type Machine struct {
	Cores  int    `json:"cores"`
	CPU    string `json:"cpu"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	When   string `json:"when"`
}

// DescribeMachine reads the machine's description.
func DescribeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), When: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func (m Machine) String() string {
	return fmt.Sprintf("%d cores (%s), Linux %s, %s", m.Cores, m.CPU, m.Kernel, m.Go)
}

// Report is the JSON document.
type Report struct {
	Machine   Machine       `json:"machine"`
	Reference string        `json:"reference"`
	Options   Options       `json:"options"`
	Summary   []CaseSummary `json:"summary"`
	Runs      []Run         `json:"runs"`
}

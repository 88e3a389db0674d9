package harness

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/bench/internal/procfs"
)

func fakeRuns(cs Case) []Run {
	mk := func(name string, rep int, mbs float64, others float64, errMsg string) Run {
		return Run{Case: cs, Contender: name, Rep: rep, OthersCores: others, Disturbed: others > 0.2, Error: errMsg,
			Metrics: map[string]float64{"MB/s": mbs, "allocs/msg": 0}}
	}
	return []Run{
		mk(Reference, 1, 100, 0, ""), mk("fast", 1, 300, 0.5, ""),
		mk(Reference, 2, 120, 0, ""), mk("fast", 2, 200, 0, ""),
		mk(Reference, 3, 80, 0, ""), mk("fast", 3, 0, 0, "boom"),
	}
}

func TestSummarizeRatiosAndNoise(t *testing.T) {
	cs := Case{Scenario: "stream", Size: 1024, Conns: 64}
	contenders := []Contender{{Name: Reference}, {Name: "fast"}, {Name: "absent", Skip: "cannot build"}}
	sums := Summarize([]Case{cs}, contenders, fakeRuns(cs))
	require.Len(t, sums, 1)
	rows := sums[0].Rows
	require.Len(t, rows, 3)
	ref, fast, absent := rows[0], rows[1], rows[2]
	assert.Equal(t, 100.0, ref.Cells["MB/s"].Median)
	assert.Equal(t, 80.0, ref.Cells["MB/s"].Min)
	assert.Equal(t, 1.0, ref.Cells["MB/s"].Ratio)
	assert.Equal(t, 250.0, fast.Cells["MB/s"].Median, "failed runs are left out")
	assert.Equal(t, 2.5, fast.Cells["MB/s"].Ratio)
	assert.Equal(t, 1, fast.Failed)
	assert.Equal(t, 1, fast.Disturbed)
	assert.True(t, math.IsNaN(fast.Cells["allocs/msg"].Ratio), "0/0 has no ratio")
	assert.Equal(t, "cannot build", absent.Skip)

	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, sums, 3))
	out := buf.String()
	assert.Contains(t, out, "100 [80.0-120] 1.00x")
	assert.Contains(t, out, "250 [200-300] 2.50x")
	assert.Contains(t, out, "1/3 (1 failed)")
	assert.Contains(t, out, "absent skipped: cannot build")
	assert.Contains(t, out, "fast failed 1/3: boom")

	panels := Panels(sums)
	require.Len(t, panels, 1)
	assert.Equal(t, "2.50x", panels[0].Bars[1].Note)
	assert.True(t, panels[0].Bars[1].Disturbed)
	assert.Contains(t, panels[0].Bars[2].Missing, "cannot build")
}

func TestReportJSONHasNoNaN(t *testing.T) {
	cs := Case{Scenario: "stream", Size: 64, Conns: 1}
	runs := []Run{{Case: cs, Contender: Reference, Metrics: map[string]float64{"MB/s": math.NaN(), "x": 1}}}
	rep := Report{Machine: DescribeMachine(), Summary: Summarize([]Case{cs}, []Contender{{Name: Reference}}, runs), Runs: runs}
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	var back map[string]any
	require.NoError(t, json.Unmarshal(b, &back))
	run := back["runs"].([]any)[0].(map[string]any)
	assert.Nil(t, run["metrics"].(map[string]any)["MB/s"])
	assert.Equal(t, 1.0, run["metrics"].(map[string]any)["x"])
}

func TestOthersCores(t *testing.T) {
	st := func(cpu, children time.Duration) procfs.Stat {
		return procfs.Stat{CPU: cpu, Children: children, Threads: 1}
	}
	a := cpuSample{tasks: map[int]procfs.Stat{
		10: st(time.Second, 0), 11: st(time.Second, 0), 12: st(0, 0), 14: st(300*time.Millisecond, 0),
	}, ours: map[int]bool{10: true}}
	b := cpuSample{at: a.at.Add(2 * time.Second), tasks: map[int]procfs.Stat{
		10: st(9*time.Second, 5*time.Second), // ours: ignored, children too
		11: st(2*time.Second, 0),             // +1 s
		13: st(time.Second, 0),               // new: counts in full
		12: st(0, 500*time.Millisecond),      // reaped 14 (300 ms before a, 200 ms inside)
	}, ours: map[int]bool{10: true}}
	assert.InDelta(t, (1+1+0.2)/2.0, othersCores(a, b), 1e-9)
	b.tasks[11] = st(0, 0)
	assert.InDelta(t, 1.2/2.0, othersCores(a, b), 1e-9, "a counter going back (pid reuse) counts as nothing")
}

// treeShare is what othersCores credits to pid between a and b, in cores:
// the difference between counting it as someone else's and as ours.
func treeShare(a, b cpuSample, pid int) float64 {
	with := othersCPU(a, b)
	a2, b2 := a, b
	a2.ours, b2.ours = map[int]bool{pid: true}, map[int]bool{pid: true}
	for k := range a.ours {
		a2.ours[k] = true
	}
	for k := range b.ours {
		b2.ours[k] = true
	}
	return (with - othersCPU(a2, b2)).Seconds() / b.at.Sub(a.at).Seconds()
}

func TestOthersCoresSeesShortLivedProcesses(t *testing.T) {
	// A parent that keeps starting busy children living a few milliseconds:
	// they come and go between the samples and are seen through the parent.
	script := `while :; do sh -c 'i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done'; done`
	c, err := StartChild("spawner", "/bin/sh", []string{"-c", script}, nil)
	require.NoError(t, err)
	defer func() {
		c.Kill()
		_, _ = c.Wait(5 * time.Second)
	}()
	time.Sleep(100 * time.Millisecond)
	a := sampleCPU()
	time.Sleep(time.Second)
	b := sampleCPU()
	children := b.tasks[c.Pid()].Children - a.tasks[c.Pid()].Children
	require.Positive(t, children, "the children ran and were reaped")
	own := max(0, b.tasks[c.Pid()].CPU-a.tasks[c.Pid()].CPU)
	dt := b.at.Sub(a.at).Seconds()
	assert.InDelta(t, (own+children).Seconds()/dt, treeShare(a, b, c.Pid()), 1e-9,
		"the children's CPU counts, however busy the machine is")
}

func TestForksPerSecLeavesOursOut(t *testing.T) {
	a := cpuSample{forks: 100, tasks: map[int]procfs.Stat{10: {Threads: 5}}, ours: map[int]bool{10: true}}
	b := cpuSample{at: a.at.Add(time.Second), forks: 150, tasks: map[int]procfs.Stat{
		10: {Threads: 9},  // ours: 4 new threads
		20: {Threads: 10}, // ours, started meanwhile: 10
		30: {Threads: 3},  // someone else's
	}, ours: map[int]bool{10: true, 20: true}}
	assert.InDelta(t, 36.0, forksPerSec(a, b), 1e-9)
	b.forks = 101
	assert.Zero(t, forksPerSec(a, b), "never negative")
}

func TestOthersCoresSeesABusyProcess(t *testing.T) {
	c, err := StartChild("hog", "/bin/sh", []string{"-c", "while :; do :; done"}, nil)
	require.NoError(t, err)
	defer func() {
		c.Kill()
		_, _ = c.Wait(5 * time.Second)
	}()
	time.Sleep(100 * time.Millisecond)
	a := sampleCPU()
	time.Sleep(time.Second)
	b := sampleCPU()
	own := b.tasks[c.Pid()].CPU - a.tasks[c.Pid()].CPU
	require.Positive(t, own, "the hog got some CPU")
	dt := b.at.Sub(a.at).Seconds()
	assert.InDelta(t, own.Seconds()/dt, treeShare(a, b, c.Pid()), 1e-9, "a busy process counts as others unless it is ours")
	// Declared ours (as the server and load generator are), it drops out.
	a.ours[c.Pid()], b.ours[c.Pid()] = true, true
	assert.InDelta(t, 0.0, treeShare(a, b, c.Pid()), 1e-9)
}

func TestMachineMetrics(t *testing.T) {
	a := cpuSample{
		cpu: procfs.CPUTimes{Total: 10 * time.Second, Idle: 4 * time.Second, SoftIRQ: time.Second},
		net: map[string]uint64{"Tcp.OutSegs": 1000, "Tcp.RetransSegs": 10, "TcpExt.TCPTimeouts": 5},
	}
	b := cpuSample{
		at:     a.at.Add(2 * time.Second),
		cpu:    procfs.CPUTimes{Total: 14 * time.Second, Idle: 5 * time.Second, SoftIRQ: 1500 * time.Millisecond},
		net:    map[string]uint64{"Tcp.OutSegs": 3000, "Tcp.RetransSegs": 50, "TcpExt.TCPTimeouts": 25},
		tcpMem: 48 << 20,
	}
	m := map[string]float64{}
	machineMetrics(a, b, 6e9, m)
	assert.InDelta(t, 48.0, m["TCP mem MiB"], 1e-9, "the window's end, not a difference")
	assert.InDelta(t, 0.5, m["machine CPU s/GB"], 1e-9, "3 s busy over 6 GB")
	assert.InDelta(t, 0.5/6, m["softirq s/GB"], 1e-9)
	assert.InDelta(t, 2.0, m["retrans %"], 1e-9, "40 of 2,000 segments")
	assert.InDelta(t, 10.0, m["RTO/s"], 1e-9)

	m = map[string]float64{}
	b.net, b.tcpMem = nil, 0
	machineMetrics(a, b, 0, m)
	assert.Empty(t, m, "no bytes, no counters: nothing to report")
}

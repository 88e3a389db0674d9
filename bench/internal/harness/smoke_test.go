package harness

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSmoke runs tiny scenarios end to end: server and load generator in
// their own processes (this test binary re-executed), then the table, the
// JSON and the chart.
func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	o := DefaultOptions()
	o.Scenarios = []string{"stream", "idle", "reqresp", "gc", "fanout"}
	o.BallastMiB = 8
	o.GCConns = 4
	o.Contenders = []string{Reference, "stdlib-bufio", "zcio-fallback-handler"}
	o.Conns = []int{4}
	o.IdleConns = 50
	o.RRConns = 4
	o.Streams = 3
	o.Reps = 1
	o.Warmup = 100 * time.Millisecond
	o.Window = 300 * time.Millisecond
	o.Quiet = true
	o.JSONPath = filepath.Join(dir, "r.json")
	o.SVGPath = filepath.Join(dir, "r.svg")
	var out bytes.Buffer
	require.NoError(t, Execute(o, &out, os.Stderr))
	table := out.String()
	assert.Contains(t, table, "stream size=1KiB conns=4")
	assert.Contains(t, table, "idle conns=50")
	assert.NotContains(t, table, "failed", table)

	b, err := os.ReadFile(o.JSONPath)
	require.NoError(t, err)
	var rep Report
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Len(t, rep.Runs, 15)
	for _, r := range rep.Runs {
		assert.Empty(t, r.Error, "%s %s", r.Case, r.Contender)
		assert.Positive(t, r.PeakRSS, "getrusage of the reaped server")
		require.NotNil(t, r.Load, "%s %s", r.Case, r.Contender)
		assert.Zero(t, r.Load.Errors, "%s %s: %s", r.Case, r.Contender, r.Load.FirstError)
	}
	headline := map[string]string{"stream": "MB/s", "idle": "after B/conn", "reqresp": "req/s", "gc": "MB/s", "fanout": "fwd MB/s"}
	for _, s := range rep.Summary {
		for _, row := range s.Rows {
			c := row.Cells[headline[s.Case.Scenario]]
			assert.Equal(t, 1, c.N, "%s %s", s.Title, row.Contender)
			assert.Positive(t, c.Median, "%s %s", s.Title, row.Contender)
			if s.Case.Scenario == "idle" {
				// Stacks are reported beside the heap (either may be 0).
				assert.Equal(t, 1, row.Cells["stack B/conn"].N, "%s %s", s.Title, row.Contender)
				assert.Equal(t, 1, row.Cells["idle stack B/conn"].N, "%s %s", s.Title, row.Contender)
				assert.Equal(t, 1, row.Cells["settled B/conn"].N, "%s %s", s.Title, row.Contender)
			}
		}
	}
	svg, err := os.ReadFile(o.SVGPath)
	require.NoError(t, err)
	assert.Contains(t, string(svg), "<svg")
	assert.Contains(t, string(svg), Reference)
}

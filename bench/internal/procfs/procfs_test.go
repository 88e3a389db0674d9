package procfs

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	line := "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 3 7 20 0 1 0 100 1000 10\n"
	_, err := ParseStat([]byte(strings.Replace(line, " 20 0 1 ", " 20 0 x ", 1)))
	assert.ErrorIs(t, err, ErrFormat, "bad thread count")
	st, err := ParseStat([]byte(line))
	require.NoError(t, err)
	assert.Equal(t, Stat{PPid: 1, CPU: 300 * ClockTick, Children: 10 * ClockTick, Threads: 1}, st)
	_, err = ParseStat([]byte("garbage"))
	assert.ErrorIs(t, err, ErrFormat)
}

func TestParseForks(t *testing.T) {
	n, err := ParseForks([]byte("cpu  1 2 3\nctxt 99\nprocesses 4242\nprocs_running 1\n"))
	require.NoError(t, err)
	assert.Equal(t, uint64(4242), n)
	_, err = ParseForks([]byte("cpu 1\n"))
	assert.ErrorIs(t, err, ErrFormat)
}

func TestParseMemory(t *testing.T) {
	m, err := ParseMemory([]byte("Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\n"))
	require.NoError(t, err)
	assert.Equal(t, Memory{RSS: 1 << 20, Peak: 2 << 20}, m)
	_, err = ParseMemory([]byte("Name:\tx\n"))
	assert.ErrorIs(t, err, ErrFormat)
}

func TestLiveReads(t *testing.T) {
	end := time.Now().Add(30 * time.Millisecond)
	for time.Now().Before(end) {
	}
	f, err := Forks()
	require.NoError(t, err)
	assert.Positive(t, f)
	tasks, err := Tasks()
	require.NoError(t, err)
	assert.Contains(t, tasks, os.Getpid())
	assert.NotContains(t, tasks, 2, "kernel threads are left out")
	m, err := ReadMemory("self")
	require.NoError(t, err)
	assert.Positive(t, m.RSS)
	assert.GreaterOrEqual(t, m.Peak, m.RSS)
}

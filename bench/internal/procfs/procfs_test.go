package procfs

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSystemCPU(t *testing.T) {
	c, err := ParseSystemCPU([]byte("cpu  100 5 20 1000 7 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	require.NoError(t, err)
	assert.Equal(t, 128*ClockTick, c.Busy)
	assert.Equal(t, 3*ClockTick, c.IRQ)
	assert.Equal(t, 1007*ClockTick, c.Idle)
	_, err = ParseSystemCPU([]byte("intr 1 2 3\n"))
	assert.ErrorIs(t, err, ErrFormat)
}

func TestParseProcessCPU(t *testing.T) {
	line := "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 3 7 20 0 1 0 100 1000 10\n"
	d, err := ParseProcessCPU([]byte(line))
	require.NoError(t, err)
	assert.Equal(t, 310*ClockTick, d)
	_, err = ParseProcessCPU([]byte("garbage"))
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
	c, err := ReadSystemCPU()
	require.NoError(t, err)
	assert.Positive(t, c.Busy+c.Idle)
	end := time.Now().Add(30 * time.Millisecond)
	for time.Now().Before(end) {
	}
	d, err := ProcessCPU(os.Getpid())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, d, time.Duration(0))
	m, err := ReadMemory("self")
	require.NoError(t, err)
	assert.Positive(t, m.RSS)
	assert.GreaterOrEqual(t, m.Peak, m.RSS)
}

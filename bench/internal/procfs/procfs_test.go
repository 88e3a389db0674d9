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

func TestParseNetCounters(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm MaxConn OutSegs RetransSegs\nTcp: 1 -1 1000 25\n"
	out := map[string]uint64{}
	require.NoError(t, ParseNetCounters([]byte(snmp), out))
	assert.Equal(t, map[string]uint64{"Ip.Forwarding": 1, "Ip.DefaultTTL": 64, "Tcp.RtoAlgorithm": 1, "Tcp.OutSegs": 1000, "Tcp.RetransSegs": 25}, out,
		"a negative gauge (MaxConn) is left out")
	assert.ErrorIs(t, ParseNetCounters([]byte("Tcp: A B\n"), out), ErrFormat, "names without values")
	assert.ErrorIs(t, ParseNetCounters([]byte("Tcp: A B\nUdp: 1 2\n"), out), ErrFormat, "values of another group")
	assert.ErrorIs(t, ParseNetCounters([]byte("Tcp: A B\nTcp: 1 x\n"), out), ErrFormat, "a value that is not a number")
	if b, err := os.ReadFile("/proc/net/netstat"); err == nil {
		live := map[string]uint64{}
		require.NoError(t, ParseNetCounters(b, live), "this machine's /proc/net/netstat")
		assert.Contains(t, live, "TcpExt.TCPTimeouts")
	}
}

func TestParseMachineCPU(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	c, err := ParseMachineCPU([]byte("cpu  100 1 50 800 9 2 30 8 40 0\ncpu0 50 0 25 400 4 1 15 4 20 0\nprocesses 3\n"))
	require.NoError(t, err)
	assert.Equal(t, CPUTimes{Total: 1000 * ClockTick, Idle: 809 * ClockTick, SoftIRQ: 30 * ClockTick}, c,
		"guest time is already in user time")
	_, err = ParseMachineCPU([]byte("cpu  1 2 3\n"))
	assert.ErrorIs(t, err, ErrFormat)
	_, err = ParseMachineCPU([]byte("cpu0 1 2 3 4 5 6 7\n"))
	assert.ErrorIs(t, err, ErrFormat, "no machine-wide line")
}

func TestParseSockstatTCPMem(t *testing.T) {
	b := []byte("sockets: used 148\nTCP: inuse 5 orphan 0 tw 2 alloc 7 mem 277\nUDP: inuse 1 mem 3\n")
	pages, err := ParseSockstatTCPMem(b)
	require.NoError(t, err)
	assert.Equal(t, uint64(277), pages, "TCP's mem, not UDP's")
	_, err = ParseSockstatTCPMem([]byte("sockets: used 1\nUDP: inuse 1 mem 3\n"))
	assert.ErrorIs(t, err, ErrFormat, "no TCP line")
	_, err = ParseSockstatTCPMem([]byte("TCP: inuse 5 orphan 0\n"))
	assert.ErrorIs(t, err, ErrFormat, "no mem field")
	_, err = ParseSockstatTCPMem([]byte("TCP: inuse 5 mem x\n"))
	assert.ErrorIs(t, err, ErrFormat, "not a number")
	if _, err := os.Stat("/proc/net/sockstat"); err == nil {
		_, err := TCPMemory()
		assert.NoError(t, err, "this machine's /proc/net/sockstat")
	}
}

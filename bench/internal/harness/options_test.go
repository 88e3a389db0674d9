package harness

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseArgsDefaults(t *testing.T) {
	o, err := ParseArgs(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, DefaultOptions(), o)
	assert.GreaterOrEqual(t, o.Reps, 3, "at least 3 interleaved repetitions by default")
	assert.Equal(t, "stream size=1KiB conns=64", o.Cases()[0].String())
}

func TestParseArgsLists(t *testing.T) {
	o, err := ParseArgs([]string{
		"-scenarios", "stream,reqresp", "-sizes", "64,1KiB,16k,64KiB", "-conns", "1,64,1000",
		"-reps", "5", "-window", "3s", "-contenders", "stdlib-reused,gnet",
	}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"stream", "reqresp"}, o.Scenarios)
	assert.Equal(t, []int{64, 1024, 16384, 65536}, o.Sizes)
	assert.Equal(t, []int{1, 64, 1000}, o.Conns)
	assert.Equal(t, 5, o.Reps)
	assert.Equal(t, 3*time.Second, o.Window)
	assert.Equal(t, []string{"stdlib-reused", "gnet"}, o.Contenders)
	assert.Len(t, o.Cases(), 13, "4 sizes x 3 conns + reqresp")
}

func TestParseArgsAll(t *testing.T) {
	o, err := ParseArgs([]string{"-scenarios", "all"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, allScenarios, o.Scenarios)
}

func TestParseArgsRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-scenarios", "nope"},
		{"-reps", "0"},
		{"-window", "0s"},
		{"-idle-conns", "30000"},
		{"-conns", "x"},
		{"-sizes", "1GiB"},
		{"-bogus"},
		{"extra"},
	} {
		_, err := ParseArgs(args, io.Discard)
		assert.ErrorIs(t, err, ErrUsage, "%v", args)
	}
}

func TestParseAndFormatSize(t *testing.T) {
	for in, want := range map[string]int{"64": 64, "64B": 64, "1KiB": 1024, "16k": 16384, "1mib": 1 << 20, " 2KB ": 2048} {
		got, err := ParseSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := ParseSize("lots")
	assert.Error(t, err)
	assert.Equal(t, "64B", FormatSize(64))
	assert.Equal(t, "1KiB", FormatSize(1024))
	assert.Equal(t, "1500B", FormatSize(1500))
	assert.Equal(t, "1MiB", FormatSize(1<<20))
}

func TestParseArgsFull(t *testing.T) {
	o, err := ParseArgs([]string{"-full", "-conns", "8"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, allScenarios, o.Scenarios)
	assert.Equal(t, []int{64, 1024, 16384, 65536}, o.Sizes)
	assert.Equal(t, []int{8}, o.Conns, "an explicit flag wins over -full")
	assert.Equal(t, 2*time.Second, o.Window)
	assert.Len(t, o.Cases(), 4+4)
}

func TestDefaultOrder(t *testing.T) {
	got := defaultOrder([]string{"gnet", "stdlib-pool", "zcio-fallback-blocking", "zcio-uring-handler", "stdlib-reused", "iouring-go"})
	assert.Equal(t, []string{"stdlib-reused", "stdlib-pool", "zcio-uring-handler", "zcio-fallback-blocking", "gnet", "iouring-go"}, got)
}

func TestParseArgsHelp(t *testing.T) {
	_, err := ParseArgs([]string{"-h"}, io.Discard)
	assert.ErrorIs(t, err, flag.ErrHelp, "-h is told apart so the command can exit 0")
}

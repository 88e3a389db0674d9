package harness

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestChildLinesAndExit(t *testing.T) {
	c, err := StartChild("echo", "/bin/sh", []string{"-c", "read x; echo got:$x; echo oops >&2"}, nil)
	require.NoError(t, err)
	require.NoError(t, c.Send("hello"))
	line, err := c.ReadLine(5 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, "got:hello", line)
	st, err := c.Wait(5 * time.Second)
	require.NoError(t, err)
	require.NotNil(t, st)
	assert.True(t, st.Exited())
	assert.Contains(t, c.Stderr(), "oops")
	assert.False(t, alive(c.Pid()), "reaped")
}

func TestChildKilledAfterGraceAndReaped(t *testing.T) {
	c, err := StartChild("sleeper", "/bin/sh", []string{"-c", "trap '' TERM; sleep 30 & wait"}, nil)
	require.NoError(t, err)
	start := time.Now()
	_, err = c.Stop(200 * time.Millisecond)
	assert.ErrorIs(t, err, ErrChildTimeout)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.False(t, alive(c.Pid()), "killed and reaped")
}

func TestChildReadLineTimeoutAndExit(t *testing.T) {
	c, err := StartChild("quiet", "/bin/sh", []string{"-c", "read x || true"}, nil)
	require.NoError(t, err)
	_, err = c.ReadLine(100 * time.Millisecond)
	assert.ErrorIs(t, err, ErrChildTimeout)
	c.CloseInput()
	_, err = c.ReadLine(5 * time.Second)
	assert.ErrorIs(t, err, ErrChildExited)
	_, err = c.Wait(5 * time.Second)
	assert.NoError(t, err)
}

func TestChildFailureCarriesStderr(t *testing.T) {
	c, err := StartChild("fails", "/bin/sh", []string{"-c", "echo bad thing >&2; exit 3"}, nil)
	require.NoError(t, err)
	_, err = c.Wait(5 * time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad thing")
	var ee interface{ ExitCode() int }
	require.True(t, errors.As(err, &ee))
	assert.Equal(t, 3, ee.ExitCode())
}

func TestRusageOfReapedChild(t *testing.T) {
	c, err := StartChild("busy", "/bin/sh", []string{"-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"}, nil)
	require.NoError(t, err)
	st, err := c.Wait(30 * time.Second)
	require.NoError(t, err)
	cpu, rss := RusageOf(st)
	assert.Positive(t, cpu)
	assert.Positive(t, rss)
	_, _ = RusageOf(nil)
	_ = os.Getpid()
}

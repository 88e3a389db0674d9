package harness

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ErrChildTimeout reports a child that did not answer or exit in time.
var ErrChildTimeout = errors.New("bench/harness: child process timed out")

// ErrChildExited reports a child whose output ended before the expected line.
var ErrChildExited = errors.New("bench/harness: child process exited")

// Child is a supervised child process: its stdin is a pipe the harness writes
// commands to, its stdout is read line by line, its stderr is kept (the last
// 64 KiB) for error messages. It dies with the harness (PR_SET_PDEATHSIG) and
// Stop always reaps it.
type Child struct {
	Name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	errb  *tailBuffer
	done  chan struct{}
	state *os.ProcessState
	werr  error
	once  sync.Once
}

// StartChild starts path with args and extra environment entries.
func StartChild(name, path string, args, env []string) (*Child, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	c := &Child{Name: name, cmd: cmd, lines: make(chan string, 64), errb: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	cmd.Stderr = c.errb
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c.stdin = stdin
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.werr = cmd.Wait()
		c.state = cmd.ProcessState
		close(c.done)
	}()
	return c, nil
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// ReadLine waits up to timeout for the child's next stdout line.
func (c *Child) ReadLine(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-c.lines:
		if !ok {
			return "", fmt.Errorf("%s: %w%s", c.Name, ErrChildExited, c.stderrNote())
		}
		return l, nil
	case <-t.C:
		return "", fmt.Errorf("%s: no output within %v: %w%s", c.Name, timeout, ErrChildTimeout, c.stderrNote())
	}
}

// Send writes one command line to the child's stdin.
func (c *Child) Send(line string) error {
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		return fmt.Errorf("%s: send %q: %w", c.Name, line, err)
	}
	return nil
}

// CloseInput closes the child's stdin (EOF tells our children to finish).
func (c *Child) CloseInput() { _ = c.stdin.Close() }

// Wait waits up to timeout for the child to exit by itself; after that it
// kills the child's process group. Either way the child is reaped, and its
// final ProcessState (for getrusage figures) is returned.
func (c *Child) Wait(timeout time.Duration) (*os.ProcessState, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var killed bool
	select {
	case <-c.done:
	case <-t.C:
		c.Kill()
		killed = true
		<-c.done
	}
	if killed {
		return c.state, fmt.Errorf("%s: killed after %v: %w%s", c.Name, timeout, ErrChildTimeout, c.stderrNote())
	}
	if c.werr != nil {
		return c.state, fmt.Errorf("%s: %w%s", c.Name, c.werr, c.stderrNote())
	}
	return c.state, nil
}

// Stop closes stdin and waits up to grace for the child to exit, then kills
// it; the child is always reaped.
func (c *Child) Stop(grace time.Duration) (*os.ProcessState, error) {
	c.CloseInput()
	// Drain stdout so a chatty child cannot block on a full pipe.
	go func() {
		for range c.lines {
		}
	}()
	return c.Wait(grace)
}

// Kill sends SIGKILL to the child's process group (it is its own leader).
func (c *Child) Kill() {
	c.once.Do(func() { _ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL) })
}

// Stderr is the tail of what the child wrote to stderr.
func (c *Child) Stderr() string { return c.errb.String() }

func (c *Child) stderrNote() string {
	s := bytes.TrimSpace([]byte(c.errb.String()))
	if len(s) == 0 {
		return ""
	}
	if len(s) > 600 {
		s = s[len(s)-600:]
	}
	return " (stderr: " + string(s) + ")"
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// RusageOf extracts CPU time and peak RSS (bytes) from a reaped child.
func RusageOf(st *os.ProcessState) (cpu time.Duration, maxRSS uint64) {
	if st == nil {
		return 0, 0
	}
	ru, ok := st.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return st.UserTime() + st.SystemTime(), 0
	}
	return st.UserTime() + st.SystemTime(), uint64(ru.Maxrss) << 10
}

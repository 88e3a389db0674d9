package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTick is the unit of /proc CPU counters (USER_HZ). It is 100 on every
// Linux architecture Go supports.
const ClockTick = 10 * time.Millisecond

// ErrFormat reports a /proc file whose layout was not understood.
var ErrFormat = errors.New("bench/procfs: unexpected format")

// Tasks maps the pid of every user-space process to its Stat. Kernel
// threads (pid 2 and its children) are left out.
func Tasks() (map[int]Stat, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	out := make(map[int]Stat, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 2 {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		st, err := ParseStat(b)
		if err != nil || st.PPid == 2 {
			continue
		}
		out[pid] = st
	}
	return out, nil
}

// Stat is what the harness reads from /proc/<pid>/stat.
type Stat struct {
	PPid     int
	CPU      time.Duration // utime+stime
	Children time.Duration // cutime+cstime: reaped children
	Threads  int
}

// ParseStat decodes a /proc/<pid>/stat line.
func ParseStat(b []byte) (Stat, error) {
	// The command name is in parentheses and may contain spaces: skip past it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("parse pid stat: %w", ErrFormat)
	}
	f := strings.Fields(string(b[i+1:]))
	// After ")": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	if len(f) < 18 {
		return Stat{}, fmt.Errorf("parse pid stat: %w", ErrFormat)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Stat{}, fmt.Errorf("parse pid stat ppid: %w", ErrFormat)
	}
	var v [4]time.Duration
	for j, k := range []int{11, 12, 13, 14} {
		n, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil || n < 0 {
			return Stat{}, fmt.Errorf("parse pid stat field %d: %w", k+3, ErrFormat)
		}
		v[j] = time.Duration(n) * ClockTick
	}
	threads, err := strconv.Atoi(f[17]) // num_threads(20)
	if err != nil {
		return Stat{}, fmt.Errorf("parse pid stat threads: %w", ErrFormat)
	}
	return Stat{PPid: ppid, CPU: v[0] + v[1], Children: v[2] + v[3], Threads: threads}, nil
}

// Forks reads the machine's count of processes and threads created since
// boot (the "processes" line of /proc/stat).
func Forks() (uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	return ParseForks(b)
}

// ParseForks decodes the "processes" line of /proc/stat contents.
func ParseForks(b []byte) (uint64, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "processes "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse processes: %w", ErrFormat)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("parse /proc/stat: no processes line: %w", ErrFormat)
}

// Memory is a process's resident set now and at its peak, in bytes.
type Memory struct {
	RSS  uint64
	Peak uint64
}

// ReadMemory reads VmRSS and VmHWM of pid ("self" is allowed) from
// /proc/<pid>/status.
func ReadMemory(pid string) (Memory, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return Memory{}, fmt.Errorf("read status of %s: %w", pid, err)
	}
	return ParseMemory(b)
}

// ParseMemory decodes VmRSS and VmHWM from /proc/<pid>/status contents.
func ParseMemory(b []byte) (Memory, error) {
	var m Memory
	var seen int
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return Memory{}, fmt.Errorf("parse %s: %w", key, ErrFormat)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("parse %s: %w", key, ErrFormat)
		}
		if key == "VmRSS" {
			m.RSS = n << 10
		} else {
			m.Peak = n << 10
		}
		seen++
	}
	if seen != 2 {
		return Memory{}, fmt.Errorf("parse status: VmRSS/VmHWM missing: %w", ErrFormat)
	}
	return m, nil
}

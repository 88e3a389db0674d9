// Package procfs reads the few /proc figures the harness needs: system-wide
// CPU time, a process's CPU time and its resident memory. Linux only.
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

// SystemCPU is the machine-wide CPU time from the first line of /proc/stat.
type SystemCPU struct {
	Busy time.Duration // user+nice+system+steal: time some task (or another guest) had a CPU
	IRQ  time.Duration // irq+softirq: not charged to any task (loopback traffic lands here)
	Idle time.Duration // idle+iowait
}

// ReadSystemCPU reads /proc/stat.
func ReadSystemCPU() (SystemCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return SystemCPU{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	return ParseSystemCPU(b)
}

// ParseSystemCPU decodes the aggregate "cpu" line of /proc/stat.
func ParseSystemCPU(b []byte) (SystemCPU, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return SystemCPU{}, fmt.Errorf("parse /proc/stat: %w", ErrFormat)
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return SystemCPU{}, fmt.Errorf("parse /proc/stat field %d: %w", i+1, ErrFormat)
		}
		v[i] = n
	}
	// user nice system idle iowait irq softirq steal
	busy := v[0] + v[1] + v[2] + v[7]
	irq := v[5] + v[6]
	idle := v[3] + v[4]
	return SystemCPU{
		Busy: time.Duration(busy) * ClockTick,
		IRQ:  time.Duration(irq) * ClockTick,
		Idle: time.Duration(idle) * ClockTick,
	}, nil
}

// ProcessCPU reads utime+stime of pid from /proc/<pid>/stat, including
// children it has already reaped.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	return ParseProcessCPU(b)
}

// ParseProcessCPU decodes utime+stime+cutime+cstime from a /proc/<pid>/stat line.
func ParseProcessCPU(b []byte) (time.Duration, error) {
	// The command name is in parentheses and may contain spaces: skip past it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse pid stat: %w", ErrFormat)
	}
	f := strings.Fields(string(b[i+1:]))
	// After ")": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	if len(f) < 15 {
		return 0, fmt.Errorf("parse pid stat: %w", ErrFormat)
	}
	var sum uint64
	for _, k := range []int{11, 12, 13, 14} {
		n, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("parse pid stat field %d: %w", k+3, ErrFormat)
		}
		sum += uint64(n)
	}
	return time.Duration(sum) * ClockTick, nil
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

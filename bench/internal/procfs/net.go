package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// NetCounters reads the machine's TCP/IP counters from /proc/net/snmp and
// /proc/net/netstat, keyed "Group.Name" ("Tcp.RetransSegs",
// "TcpExt.TCPTimeouts"). They count since boot, for every socket of the
// network namespace.
func NetCounters() (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, f := range []string{"/proc/net/snmp", "/proc/net/netstat"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		if err := ParseNetCounters(b, out); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return out, nil
}

// ParseNetCounters adds the counters of /proc/net/snmp or /proc/net/netstat
// contents to out. Those files hold pairs of lines, one of names and one of
// values, each starting with the group ("Tcp:"). Negative values (a few
// gauges such as Tcp.MaxConn) are left out.
func ParseNetCounters(b []byte, out map[string]uint64) error {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines)%2 != 0 {
		return fmt.Errorf("parse net counters: odd line count: %w", ErrFormat)
	}
	for i := 0; i < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || len(names) != len(values) || names[0] != values[0] || !strings.HasSuffix(names[0], ":") {
			return fmt.Errorf("parse net counters: line %d: %w", i+1, ErrFormat)
		}
		group := strings.TrimSuffix(names[0], ":")
		for j := 1; j < len(names); j++ {
			if strings.HasPrefix(values[j], "-") {
				continue
			}
			v, err := strconv.ParseUint(values[j], 10, 64)
			if err != nil {
				return fmt.Errorf("parse net counters: %s.%s: %w", group, names[j], ErrFormat)
			}
			out[group+"."+names[j]] = v
		}
	}
	return nil
}

// CPUTimes is the machine's CPU time since boot, summed over its CPUs (the
// "cpu" line of /proc/stat).
type CPUTimes struct {
	Total   time.Duration // every state, idle included
	Idle    time.Duration // idle and iowait
	SoftIRQ time.Duration // serving softirqs (the network stack's receive path, among others)
}

// MachineCPU reads the machine's CPU times from /proc/stat.
func MachineCPU() (CPUTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUTimes{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	return ParseMachineCPU(b)
}

// ParseMachineCPU decodes the "cpu" line of /proc/stat contents: user nice
// system idle iowait irq softirq steal ..., in clock ticks.
func ParseMachineCPU(b []byte) (CPUTimes, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "cpu ")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) < 7 {
			return CPUTimes{}, fmt.Errorf("parse cpu line: %w", ErrFormat)
		}
		var t CPUTimes
		for i, s := range f {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return CPUTimes{}, fmt.Errorf("parse cpu line field %d: %w", i+1, ErrFormat)
			}
			d := time.Duration(n) * ClockTick
			switch {
			case i >= 8:
				// guest and guest_nice are already counted in user and nice.
				continue
			case i == 3 || i == 4:
				t.Idle += d
			case i == 6:
				t.SoftIRQ += d
			}
			t.Total += d
		}
		return t, nil
	}
	return CPUTimes{}, fmt.Errorf("parse /proc/stat: no cpu line: %w", ErrFormat)
}

// TCPMemory reads the memory the machine's TCP sockets hold in the kernel
// (their send and receive queues), in bytes: /proc/net/sockstat's "TCP: ...
// mem N" in pages. The kernel compares it with net.ipv4.tcp_mem.
func TCPMemory() (uint64, error) {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/net/sockstat: %w", err)
	}
	pages, err := ParseSockstatTCPMem(b)
	if err != nil {
		return 0, err
	}
	return pages * uint64(os.Getpagesize()), nil
}

// ParseSockstatTCPMem returns the "mem" field, in pages, of the "TCP:" line of
// /proc/net/sockstat contents.
func ParseSockstatTCPMem(b []byte) (uint64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i += 2 {
			if f[i] == "mem" {
				v, err := strconv.ParseUint(f[i+1], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("parse sockstat: TCP mem %q: %w", f[i+1], ErrFormat)
				}
				return v, nil
			}
		}
		return 0, fmt.Errorf("parse sockstat: no TCP mem field: %w", ErrFormat)
	}
	return 0, fmt.Errorf("parse sockstat: no TCP line: %w", ErrFormat)
}

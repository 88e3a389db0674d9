// Package procfs reads the few /proc figures the harness needs: the CPU time
// of processes and their resident memory. Linux only.
package procfs

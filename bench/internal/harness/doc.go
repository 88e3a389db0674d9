// Package harness is the benchmark driver behind cmd/zciobench: it parses the
// command line, starts every server and load generator in its own child
// process, runs the contenders interleaved, measures, and prints, saves and
// draws the results.
package harness

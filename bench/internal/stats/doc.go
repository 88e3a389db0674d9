// Package stats summarises repeated measurements: median, minimum and maximum
// of a handful of repetitions, and percentiles of latency samples.
package stats

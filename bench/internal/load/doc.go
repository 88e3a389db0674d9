// Package load is the load generator. It runs in its own process, dials the
// server under test on loopback only, drives one scenario for a bounded time
// and prints one JSON Result line on stdout.
package load

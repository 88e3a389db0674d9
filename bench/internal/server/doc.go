// Package server holds the benchmark's contenders — the servers being
// compared — and the control loop that runs one of them in a child process
// and reports its own figures (bytes and messages handled, CPU time, resident
// memory, allocations and GC cycles) to the harness on request.
//
// Every contender does the same work per byte: it hands what it received to a
// Session (the scenario's protocol state machine from package proto) and
// writes back whatever the Session produced. Contenders differ only in how
// bytes reach the Session: that is what the benchmark compares.
package server

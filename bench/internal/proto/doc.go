// Package proto holds the wire formats every contender and the load generator
// share: length-prefixed frames for the stream scenarios, a RESP-style
// request/response for the pipelined scenario, and the hello that opens a
// connection in the fan-out scenario.
//
// The decoders are streaming state machines: they accept bytes in chunks of
// any size, keep no reference to a chunk after Feed returns and never
// allocate, so every server can hand them its own views (a reused buffer, a
// gnet or netpoll buffer, a zcio arena view) and do exactly the same work.
package proto

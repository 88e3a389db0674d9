// Package segq is the delivery contract between zcio's engines and the
// reader: an ordered queue of arena segments for one connection.
//
// A [Segment] names bytes [Off, Off+Len) of one arena block together with one
// reference to that block. Whoever holds a Segment owns that reference: the
// producer (an engine loop) hands it to the [Queue] with [Queue.Push], the
// consumer (a reader, usually on another goroutine) takes it out with
// [Queue.Take] and gives it back with [Queue.Done] once every byte is
// consumed. A view of a segment covers exactly its Len bytes, never the rest
// of the block: a recycled block still holds an earlier receive's bytes,
// possibly another connection's.
//
// The queue is plain portable Go with no system calls. It counts the bytes
// pushed and not yet given back, so an engine can cap what one connection
// holds (Push reports when to pause, [Config.OnResume] when to go on), and it
// ends with [Queue.Finish] (io.EOF or an error; segments already queued stay
// readable). The consumer waits with a deadline and a context, or asks
// without waiting and gets [ErrWouldBlock]. [Queue.Close] on the consumer side
// gives every queued block back; later pushes give theirs back at once.
package segq

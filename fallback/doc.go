// Package fallback is zcio's engine for kernels and sandboxes without io_uring
// (old kernels, io_uring_disabled, container seccomp profiles): epoll readiness
// plus blocks from the shared [arena.Arena].
//
// One [Engine] owns one epoll instance and one loop goroutine (on a locked OS
// thread). When an attached socket is readable the loop reads it straight
// into the engine's current arena block and hands the bytes to the
// connection's [Sink] as a segment: a block id, an offset and a length,
// with one reference to the block that the sink then owns. Reads from all
// connections land one after another in the same block, so memory follows
// data in flight: an idle connection holds no block, and many small messages
// share one block instead of using one each. While the arena has blocks to
// spare, one readv(2) also fills blocks after the current one, up to 512 KiB
// in all (a segment per block): fewer system calls per byte than a read into
// a 64 KiB buffer. The engine gives back the blocks it took ahead before it
// sleeps.
//
// After each read the engine calls the sink's Flush, before it reads again:
// a handler consumes the bytes while they are still in the CPU's cache, and
// the blocks it releases are the next ones a read takes. A socket is read up
// to [Config.ReadsPerEvent] times (and 1 MiB) per readiness event: a read
// that filled its buffers, or returned a block or more, is followed by
// another (a large read may have opened the receive window and let the
// peer's next bytes in).
//
// Back-pressure: when a sink says it holds enough (Deliver returns true), or
// the arena runs dry, the loop stops watching that socket; the data waits in
// the kernel's socket buffer and TCP flow control slows the sender. Nothing is
// dropped. [Engine.Resume] (or blocks coming back) starts it again.
//
// Ownership: the engine never closes a connection's fd. After
// [Engine.Detach] the loop removes the fd from epoll and calls
// [Sink.Detached]; from then on the engine never touches the fd, and its owner
// may close it.
package fallback

// Package ring is zcio's io_uring binding, written on raw system calls
// (golang.org/x/sys/unix has the call numbers but no io_uring types), and
// the io_uring engine.
//
// # Layers
//
// A [Ring] is one io_uring instance: submission and completion queues in
// memory shared with the kernel (mmap'd, never Go heap), set up with the
// best flags the kernel offers (SINGLE_ISSUER from Linux 6.0, DEFER_TASKRUN
// from 6.1, COOP_TASKRUN, CLAMP, a registered ring fd). [Probe] finds out once
// per process what the kernel has and, for what it lacks, why (the errno of
// the call that failed); where io_uring cannot be used at all (ENOSYS, EPERM
// from kernel.io_uring_disabled or a seccomp profile, EINVAL) errors wrap
// [ErrUnsupported] with the cause.
//
// A [BufRing] is a provided-buffer ring over every block of an
// [arena.Arena]: the kernel picks a free block for each receive and says
// which in the completion. The u16 tail is published with a 32-bit atomic
// store of the word it shares with entry 0's buffer id (sync/atomic has no
// 16-bit store; see tailWord). With incremental consumption (Linux 6.12) a
// block is filled by several receives, of any connection, one after the
// other, so small messages do not use a block each.
//
// An [Engine] is one event loop: a goroutine on a locked OS thread that owns
// a Ring and a BufRing, keeps one multishot receive (Linux 6.0) armed per
// attached socket, and hands each completion to the connection's [Sink] as a
// segment (block, offset, length) with one reference to the block. Blocks
// come back to the buffer ring when their last reference is released. A dry
// buffer ring ends a connection's multishot with ENOBUFS; nothing is lost
// (the bytes wait in the socket) and the engine re-arms it once blocks are
// back. Each arming is capped (sqe optlen, Linux 6.17) at an eighth of the
// arena, at most 1 MiB, or at EngineConfig.ArmCap, so that a sink's request
// to pause takes effect within the cap instead of after one connection took
// every free block in a burst. Linux (6.18 here; fixed in 7.0) can leave a
// multishot receive waiting for good after data, without reporting the
// end of stream that came right behind it: the engine peeks at the
// sockets whose receives went quiet after data to find such ends
// (EngineStats.LostEnds).
//
// # Waiting
//
// The loop waits in a blocking io_uring_enter on its locked thread (through
// Syscall6, so the Go runtime hands the P to another thread). Other
// goroutines wake it through an eventfd that a multishot poll watches inside
// the ring. The other choice, an eventfd registered with
// IORING_REGISTER_EVENTFD and parked in Go's netpoller, wakes about as fast
// (figures below) but costs an extra io_uring_enter per batch: with
// DEFER_TASKRUN the kernel posts completions only when the owner thread
// enters anyway, and a ring's fd itself never wakes the netpoller there.
// Either way an idle ring spins no CPU (TestIdleOwnerWaits).
//
// Measured wake-up latency, one 1-byte write to an idle socket until the
// goroutine waiting for its completion runs again (2-core VM under load
// from other jobs, Linux 6.18, Go 1.26; medians of 4 runs, range in
// brackets):
//
//   - BenchmarkRingWakeup (this package, a bare ring): blocking enter
//     25 µs [16-26], eventfd in the netpoller 23 µs [15-82], a goroutine
//     blocked in read(2) on the netpoller 3.0 µs [2.8-3.8].
//   - BenchmarkWakeup in internal/enginetest (the Engine, which waits with
//     a blocking enter): 16-25 µs; the epoll fallback 23-49 µs. A quieter
//     run (results/engines.txt, 2026-11-23): about 11 µs, 19-27 µs, and
//     3 µs for the netpoller.
//
// The engines pay for waking a goroutine from a thread that slept in a
// system call; handler mode (callbacks on the loop) avoids that hop, and
// under load the loops do not sleep. The owner must signal waiting
// goroutines without blocking (a buffered channel, a non-blocking send):
// a hand-off on an unbuffered channel just before going back into the
// blocking enter measured 65-125 µs per wake-up, the woken goroutine
// stuck on the P the owner took into the system call.
package ring

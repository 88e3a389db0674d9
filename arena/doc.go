// Package arena owns zcio's memory: one region mapped with mmap(2) and cut into
// fixed blocks that the kernel writes received bytes into.
//
// An [Arena] hands out blocks by 16-bit id (the io_uring buffer-id space) and
// takes them back through a lock-free free list that never allocates and
// never waits for a block to be released (Take may wait for a concurrent
// Trim to finish the one madvise of the block it got). Each block carries a reference count and a generation number: a
// [Ref] names one lifetime of one block, so a holder can share a block
// ([Arena.Retain]) and the block goes back to the free list only when the last
// reference is released. Releasing twice, or through a [Ref] from an earlier
// lifetime, panics with the block id and both generations.
//
// Memory ownership: the bytes of a block belong to whoever holds a live [Ref]
// to it. A slice returned by [Arena.Bytes] is a view into the mapping, not a
// copy; it must not be used after the last reference is released. In debug
// mode ([Config.Debug]) a block on the free list is mprotect'ed PROT_NONE, so a
// view used after its release faults at once instead of reading another
// connection's data.
//
// The mapping is anonymous and private and is never Go heap: the garbage
// collector neither scans nor frees it. [Arena.Close] unmaps it, and refuses
// (leaving the memory mapped) while blocks are still in use. Memory budget: an
// arena costs Blocks × BlockSize bytes of address space, and the same in RSS
// once touched (at once with [Config.Prefault]).
//
// On systems other than Linux the arena is backed by a Go heap slice with the
// same API; the kernel-assisted paths of zcio need Linux.
package arena

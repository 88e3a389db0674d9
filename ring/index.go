package ring

import "unsafe"

// Ring index arithmetic shared by the submission, completion and buffer
// rings. Indices are free-running unsigned counters that wrap; the slot of an
// index is index & mask, and the number of entries between a head and a tail
// is tail - head in the counter's width. Plain Go, tested without a kernel.

// queued returns the number of entries from head up to tail on a 32-bit
// free-running ring (the SQ and the CQ).
func queued(head, tail uint32) uint32 { return tail - head }

// free returns the room left on a 32-bit ring of the given size.
func free(head, tail, entries uint32) uint32 { return entries - queued(head, tail) }

// slot returns the array index of counter i on a ring of mask+1 entries.
func slot(i, mask uint32) uint32 { return i & mask }

// bufQueued returns the entries a buffer ring holds between the kernel's
// 16-bit head and our 16-bit tail.
func bufQueued(head, tail uint16) uint16 { return tail - head }

// tailWord returns the 32-bit word at byte 12 of a buffer ring with the half
// at byte 14 (io_uring_buf_ring.tail: the high half on a little-endian
// machine) set to tail and the half at byte 12 (entry 0's bid) kept from old.
//
// sync/atomic has no 16-bit store, so the tail is published with a 32-bit
// store of the word holding entry 0's bid and the tail. This is safe because
// we are the only writer of that word: the kernel only reads entry 0's bid
// (and the tail), and writes entries' addr/len only in incremental mode.
//
// On a big-endian machine the tail is the low half of that word instead.
func tailWord(old uint32, tail uint16, littleEndian bool) uint32 {
	if littleEndian {
		return old&0x0000ffff | uint32(tail)<<16
	}
	return old&0xffff0000 | uint32(tail)
}

// powerOfTwo reports whether n is a power of two.
func powerOfTwo(n uint32) bool { return n != 0 && n&(n-1) == 0 }

// roundPow2 returns the smallest power of two >= n (n >= 1, n <= 1<<31).
func roundPow2(n uint32) uint32 {
	p := uint32(1)
	for p < n {
		p <<= 1
	}
	return p
}

// nativeLittleEndian reports the byte order of this machine, which decides
// where the buffer ring's tail sits in the word [tailWord] rewrites.
var nativeLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

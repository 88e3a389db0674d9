//go:build linux

package arena

import (
	"bytes"
	"os"
	"unsafe"

	"github.com/zcio/zcio/internal/unix"
)

func mapRegion(cfg Config) (*region, error) {
	flags := unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
	if cfg.Prefault {
		flags |= unix.MAP_POPULATE
	}
	mem, err := unix.Mmap(-1, 0, cfg.Blocks*cfg.BlockSize, unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		return nil, err
	}
	m := &region{mem: mem, st: new(counters)}
	if cfg.HugePages {
		m.huge = unix.Madvise(mem, unix.MADV_HUGEPAGE) == nil && thpAllowed()
	}
	if cfg.Debug {
		// Every block starts on the free list, so the whole region starts closed.
		m.debug = unix.Mprotect(mem, unix.PROT_NONE) == nil
	}
	return m, nil
}

// thpAllowed reports whether transparent huge pages are enabled for madvise'd
// regions ("always" or "madvise" selected in sysfs).
func thpAllowed() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && !bytes.Contains(b, []byte("[never]"))
}

func (m *region) unmap() error {
	if !m.unmapped.CompareAndSwap(false, true) {
		return nil
	}
	return unix.Munmap(m.mem)
}

// protect opens (a block being handed out) or closes (a block going back to
// the free list) one block in debug mode. A failure here means the mapping is
// broken, which no caller can recover from.
func (a *Arena) protect(id uint16, open bool) {
	prot := unix.PROT_NONE
	if open {
		prot = unix.PROT_READ | unix.PROT_WRITE
	}
	if err := unix.Mprotect(a.Bytes(id), prot); err != nil {
		panic("zcio/arena: debug mprotect block: " + err.Error())
	}
}

// discard gives block id's pages back to the kernel (MADV_DONTNEED: the next
// touch maps zeroed pages). The caller owns the free block.
func (a *Arena) discard(id uint16) bool { return a.discardBytes(a.Bytes(id)) }

// discardBytes gives the pages of b, part of the arena's region, back to
// the kernel. It does nothing unless b is whole pages: madvise would round
// its length up and zero the start of the next block (blocks smaller than
// a page, on 16 or 64 KiB page kernels).
func (a *Arena) discardBytes(b []byte) bool {
	page := uintptr(pageSize())
	if len(b) == 0 || uintptr(len(b))%page != 0 || uintptr(unsafe.Pointer(&b[0]))%page != 0 {
		return false
	}
	return unix.Madvise(b, unix.MADV_DONTNEED) == nil
}

// resident reports whether any page of b, part of the arena's region, is
// in memory; true when the kernel cannot tell (Trim and Discard then count
// the block as before).
func (a *Arena) resident(b []byte) bool {
	in, err := unix.Resident(b)
	return in || err != nil
}

func pageSize() int { return unix.Getpagesize() }

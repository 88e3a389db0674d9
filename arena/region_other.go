//go:build !linux

package arena

// mapRegion backs the arena with Go heap memory where mmap is not available.
// Prefault, huge pages and debug protection have no effect here.
func mapRegion(cfg Config) (*region, error) {
	return &region{mem: make([]byte, cfg.Blocks*cfg.BlockSize), st: new(counters)}, nil
}

func (m *region) unmap() error {
	m.unmapped.Store(true)
	return nil
}

func (a *Arena) protect(id uint16, open bool) {}

// discard does nothing where the arena's memory is not an mmap'd region.
func (a *Arena) discard(id uint16) bool { return false }

func (a *Arena) discardBytes([]byte) bool { return false }

func (a *Arena) resident([]byte) bool { return true }

func pageSize() int { return 4096 }

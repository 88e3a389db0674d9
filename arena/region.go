package arena

import "sync/atomic"

// region is what the cleanup of a dropped Arena needs: the mapping and the
// counters, and nothing that reaches the Arena itself.
type region struct {
	mem      []byte
	st       *counters
	debug    bool
	huge     bool
	unmapped atomic.Bool
}

// release is the safety net for an Arena dropped without Close. Blocks still
// counted in use mean views may exist (they do not keep the Arena alive), so
// the mapping is left in place rather than pulled out from under them.
func (m *region) release() {
	if m.st.used() == 0 {
		_ = m.unmap()
	}
}

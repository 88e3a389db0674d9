//go:build linux && !zcio_nouring

package reader

import "fmt"

// engineDebug describes an io_uring engine's state for a failing test.
func engineDebug(e engine) string {
	if u, ok := e.(*uringEngine); ok {
		refs := map[int]int{}
		for id := 0; id < u.a.Len(); id++ {
			refs[u.a.Refs(uint16(id))]++
		}
		return fmt.Sprintf("%+v, blocks by reference count %v", u.e.Stats(), refs)
	}
	return "(fallback)"
}

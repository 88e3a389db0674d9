//go:build linux

package reader

import "fmt"

func engineDebug(e engine) string {
	if u, ok := e.(*uringEngine); ok {
		refs := map[int]int{}
		for id := 0; id < u.a.Len(); id++ {
			refs[u.a.Refs(uint16(id))]++
		}
		return fmt.Sprintf("%+v refs histogram %v", u.e.Stats(), refs)
	}
	return ""
}

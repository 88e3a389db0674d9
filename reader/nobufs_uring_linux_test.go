//go:build linux && !zcio_nouring

package reader

// engineNoBufs returns the ENOBUFS completions of e if it is an io_uring
// engine, else 0.
func engineNoBufs(e engine) int {
	if u, ok := e.(*uringEngine); ok {
		return u.e.Stats().NoBufs
	}
	return 0
}

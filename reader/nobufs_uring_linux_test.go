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

// engineReceives returns the receive completions that carried bytes on e
// if it is an io_uring engine, else 0.
func engineReceives(e engine) int {
	if u, ok := e.(*uringEngine); ok {
		return u.e.Stats().Receives
	}
	return 0
}

// engineRingBlocks returns the blocks e's buffer ring holds if it is an
// io_uring engine (an idle engine holds no other), else 0.
func engineRingBlocks(e engine) int {
	if u, ok := e.(*uringEngine); ok {
		return u.e.Stats().Held
	}
	return 0
}

// engineArmCap returns the arming cap of e if it is an io_uring engine,
// else -1.
func engineArmCap(e engine) int {
	if u, ok := e.(*uringEngine); ok {
		return u.e.ArmCap()
	}
	return -1
}

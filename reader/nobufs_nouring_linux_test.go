//go:build linux && zcio_nouring

package reader

// engineNoBufs returns 0: io_uring is compiled out.
func engineNoBufs(engine) int { return 0 }

// engineReceives returns 0: io_uring is compiled out.
func engineReceives(engine) int { return 0 }

// engineRingBlocks returns 0: io_uring is compiled out.
func engineRingBlocks(engine) int { return 0 }

// engineArmCap returns -1: io_uring is compiled out.
func engineArmCap(engine) int { return -1 }

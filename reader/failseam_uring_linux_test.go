//go:build linux && !zcio_nouring

package reader

import (
	"fmt"
	"syscall"

	"github.com/zcio/zcio/internal/seam"
	"github.com/zcio/zcio/ring"
)

// failUring makes c's io_uring engine, if it is one, report EBADR from its
// loop's next io_uring_enter (as when the kernel drops completions).
func failUring(c *Conn) (errno, sentinel error, ok bool) {
	x, ok := c.engine().(*uringEngine)
	if !ok {
		return nil, nil, false
	}
	seam.FailNextEnter(x.e, fmt.Errorf("io_uring_enter: %w", syscall.EBADR))
	return syscall.EBADR, ring.ErrEngineFailed, true
}

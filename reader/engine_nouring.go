//go:build !linux || zcio_nouring

package reader

import (
	"errors"
	"runtime"
	"time"

	"github.com/zcio/zcio/arena"
)

func uringAvailable() error {
	if runtime.GOOS != "linux" {
		return errors.New("io_uring needs Linux")
	}
	return errors.New("io_uring compiled out (build tag zcio_nouring)")
}

func newUringEngine(*arena.Arena, time.Duration, func(), int) (engine, error) {
	return nil, uringAvailable()
}

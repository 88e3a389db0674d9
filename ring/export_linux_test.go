//go:build linux

package ring

import (
	"testing"
	"time"

	"github.com/zcio/zcio/internal/seam"
)

// SetNoBundles makes engines started after it receive into one block per
// receive, as on kernels before 6.10 (see noBundles). It returns a function
// that restores the default.
func SetNoBundles() (restore func()) {
	noBundles.Store(true)
	return func() { noBundles.Store(false) }
}

// FailNextEnter makes the next io_uring_enter of e's loop report err in
// place of its own result (see enterFault).
func (e *Engine) FailNextEnter(err error) { seam.FailNextEnter(e, err) }

// SetStarvedReadAfter makes engines read for a connection after n receives
// in a row ended with ENOBUFS, instead of starvedReadAfter. It returns a
// function that restores the default.
func SetStarvedReadAfter(n uint8) (restore func()) {
	starvedReadsAfter.Store(uint32(n))
	return func() { starvedReadsAfter.Store(starvedReadAfter) }
}

// RefuseNextSubmit makes sqe's next submit fail with ErrBusy (submitRefused):
// the SQ-full path that reaps completions into e.later.
func RefuseNextSubmit() { submitRefused.Store(true) }

// setQuietLooks makes the loops look at the quiet receives every every,
// with at most peeks peeks a look (see checkQuiet), until the test ends.
func setQuietLooks(t *testing.T, every time.Duration, peeks int) {
	quietEvery.Store(int64(every))
	quietPeeks.Store(int64(peeks))
	t.Cleanup(func() {
		quietEvery.Store(int64(quietCheckEvery))
		quietPeeks.Store(maxQuietPeeks)
	})
}

//go:build linux

package ring

import (
	"io"
	"time"
)

// Pat is byte i of the test stream numbered seed: streams that differ in
// seed differ in their bytes, and a byte out of place shows.
func Pat(seed, i int64) byte { return byte(i*7 + seed + i>>9) }

// WritePattern writes stream seed to w, chunk bytes at a time, sleeping
// pause after each chunk, until size bytes are written (size < 0: no
// limit), stop closes, or a write fails.
func WritePattern(w io.Writer, seed, size int64, chunk int, pause time.Duration, stop <-chan struct{}) {
	buf := make([]byte, chunk)
	for off := int64(0); size < 0 || off < size; {
		select {
		case <-stop:
			return
		default:
		}
		m := int64(chunk)
		if size >= 0 {
			m = min(m, size-off)
		}
		for i := range m {
			buf[i] = Pat(seed, off+i)
		}
		if _, err := w.Write(buf[:m]); err != nil {
			return
		}
		off += m
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

//go:build linux

package ring

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The arming cap is an eighth of the arena, within [one block, 1 MiB].
func TestArmCap(t *testing.T) {
	for _, tc := range []struct {
		arena, block int
		want         uint32
	}{
		{8 << 20, 16 << 10, 1 << 20},  // the default budget over two engines
		{64 << 20, 16 << 10, 1 << 20}, // large arenas stop at 1 MiB
		{1 << 20, 16 << 10, 128 << 10},
		{64 * 4096, 4096, 32 << 10},
		{2 * 4096, 4096, 4096}, // never below a block
	} {
		assert.Equal(t, tc.want, armCap(tc.arena, tc.block), "arena %d, block %d", tc.arena, tc.block)
	}
}

//go:build linux

package reader

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/ring"
)

// WithReceiveBurst reaches every io_uring engine of a Listener; without it
// the cap is an eighth of each engine's arena, at most 1 MiB.
func TestWithReceiveBurst(t *testing.T) {
	if err := Probe().IOUring; err != nil {
		t.Skip("io_uring unavailable:", err)
	}
	if !ring.Probe().RecvCap.OK {
		t.Skip("no capped multishot receive:", ring.Probe().RecvCap.Err)
	}
	caps := func(opts ...Option) []int {
		ln, err := Listen("tcp", "127.0.0.1:0", append([]Option{WithEngine(IOUring), WithEngines(2)}, opts...)...)
		require.NoError(t, err)
		defer func() { assert.NoError(t, ln.Close()) }()
		var got []int
		for _, e := range ln.g.engines {
			got = append(got, engineArmCap(e))
		}
		return got
	}
	// 16 MiB over 2 engines: 8 MiB arenas, an eighth is 1 MiB.
	assert.Equal(t, []int{1 << 20, 1 << 20}, caps())
	assert.Equal(t, []int{512 << 10, 512 << 10}, caps(WithMemory(8<<20)))
	assert.Equal(t, []int{256 << 10, 256 << 10}, caps(WithReceiveBurst(256<<10)))
	assert.Equal(t, []int{DefaultEngineBlockSize, DefaultEngineBlockSize}, caps(WithReceiveBurst(1)), "raised to one block")
}

func TestNegativeReceiveBurstIsRefused(t *testing.T) {
	_, err := Listen("tcp", "127.0.0.1:0", WithReceiveBurst(-1))
	assert.ErrorIs(t, err, ErrNegativeCount)
}

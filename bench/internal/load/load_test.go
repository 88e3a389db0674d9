package load

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCheckLoopback(t *testing.T) {
	assert.NoError(t, CheckLoopback("127.0.0.1:9000"))
	assert.NoError(t, CheckLoopback("127.3.2.1:1"))
	assert.NoError(t, CheckLoopback("[::1]:80"))
	assert.ErrorIs(t, CheckLoopback("10.0.0.1:80"), ErrNotLoopback)
	assert.ErrorIs(t, CheckLoopback("8.8.8.8:53"), ErrNotLoopback)
	assert.Error(t, CheckLoopback("localhost:80"), "names are not resolved")
}

func TestFramesHoldWholeFrames(t *testing.T) {
	for _, size := range []int{1, 64, 1024, 300 << 10} {
		b := frames(size)
		assert.Zero(t, len(b)%(size+4), "size=%d", size)
		assert.GreaterOrEqual(t, len(b), size+4)
	}
}

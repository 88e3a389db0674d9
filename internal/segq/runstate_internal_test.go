package segq

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The run count and the pause bit share a word: no step of the count, below
// zero included, may set or clear the pause.
func TestRunStateCountLeavesPauseBit(t *testing.T) {
	for _, paused := range []bool{false, true} {
		var r runState
		if paused {
			r.pause()
		}
		assert.EqualValues(t, -1, r.add(-1), "paused %v", paused)
		assert.Equal(t, paused, r.paused(), "a borrow of the count changed the pause (was %v)", paused)
		assert.EqualValues(t, -1, r.runs(), "paused %v", paused)
		assert.EqualValues(t, 0, r.add(1), "paused %v", paused)
		assert.Equal(t, paused, r.paused(), "a carry of the count changed the pause (was %v)", paused)
		assert.Equal(t, paused, r.lift())
		assert.False(t, r.lift(), "one lift per pause")
		assert.EqualValues(t, 0, r.runs())
	}
}

package reader

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// downEngine is an engine whose only answer is whether it failed.
type downEngine struct {
	engine
	down bool
}

func (d downEngine) failed() bool { return d.down }

// New connections pass over an engine that failed on an error of its own
// (ring.ErrEngineFailed: its connections ended, its Attach refuses), so a
// listener keeps accepting on the others; when every engine failed, the
// round robin goes on and Attach reports the failure.
func TestPickPassesOverFailedEngines(t *testing.T) {
	g := &group{engines: []engine{downEngine{down: true}, downEngine{}, downEngine{down: true}, downEngine{}}}
	var got []int
	for range 8 {
		got = append(got, g.pick())
	}
	assert.Equal(t, []int{1, 1, 3, 3, 1, 1, 3, 3}, got)

	all := &group{engines: []engine{downEngine{down: true}, downEngine{down: true}}}
	assert.Equal(t, []int{0, 1, 0}, []int{all.pick(), all.pick(), all.pick()})
}

package arena

import "sync/atomic"

// counters are the arena's statistics. Takes and gives sit on their own cache
// lines so that one goroutine taking and another giving back do not contend.
type counters struct {
	takes  atomic.Uint64
	_      [56]byte
	gives  atomic.Uint64
	_      [56]byte
	peak   atomic.Int64
	failed atomic.Uint64
}

func (c *counters) took() {
	n := int64(c.takes.Add(1) - c.gives.Load())
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (c *counters) gave() { c.gives.Add(1) }

func (c *counters) inUse() int {
	g := c.gives.Load() // read gives first: takes ≥ gives at every instant
	return int(c.takes.Load() - g)
}

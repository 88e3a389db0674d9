package arena

import "sync/atomic"

// counters are the statistics that are not kept per shard: blocks in use
// (for the peak) and failed takes.
type counters struct {
	inUse  atomic.Int64
	peak   atomic.Int64
	failed atomic.Uint64
}

func (c *counters) took() {
	n := c.inUse.Add(1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (c *counters) gave() { c.inUse.Add(-1) }

func (c *counters) used() int { return int(c.inUse.Load()) }

//go:build linux

package reader

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// idleBlocks waits until the engine holds no block beyond its buffer ring
// (none at all for the fallback, whose tail block goes at the idle trim)
// and returns what is left.
func idleBlocks(t *testing.T, e engine) int {
	t.Helper()
	extra := func() int { return e.arena().InUse() - engineRingBlocks(e) }
	deadline := time.Now().Add(3 * time.Second)
	for extra() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return extra()
}

// TestSpillBlockGoesBackWhileEngineRuns: a blocking reader waiting for the
// rest of a message is nudged (its engine ran dry) and spills; once the
// message is read and the connection closed, the engine, still serving its
// Listener, holds no block beyond its buffer ring: the spill block went
// back with the last copy in it.
func TestSpillBlockGoesBackWhileEngineRuns(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind, WithEngines(1), WithMemory(1<<20), WithIdleTrim(10*time.Millisecond))
			g := ln.g
			e := g.engines[0]

			for round := range 3 {
				peer := dial(t, ln)
				c, err := ln.Accept()
				require.NoError(t, err)
				want := pattern(3000, uint64(round))
				_, err = peer.Write(want[:1000])
				require.NoError(t, err)
				got := make(chan []byte, 1)
				go func() {
					var b []byte
					err := c.Reader().ReadRange(len(want), func(v []byte) { b = append(b, v...) })
					assert.NoError(t, err)
					got <- b
				}()
				require.Eventually(t, func() bool { return c.q.Pending() == 1000 }, 5*time.Second, time.Millisecond)
				time.Sleep(20 * time.Millisecond) // the reader takes the bytes and waits
				c.hs.Starved()                    // what the engine does when it runs dry
				time.Sleep(20 * time.Millisecond) // the reader spills
				_, err = peer.Write(want[1000:])
				require.NoError(t, err)
				select {
				case b := <-got:
					assert.Equal(t, want, b)
				case <-time.After(5 * time.Second):
					t.Fatal("the read did not complete")
				}
				require.NoError(t, c.Close())
				require.NoError(t, peer.Close())
				assert.Zero(t, idleBlocks(t, e), "round %d: blocks held after the connection closed (%s)", round, engineDebug(e))
			}
			require.NoError(t, ln.Close())
			arenasIdle(t, g)
		})
	}
}

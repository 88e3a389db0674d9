//go:build linux

package reader

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/unix"
)

// residentFreeBlocks counts the free blocks of a with a page resident.
func residentFreeBlocks(t *testing.T, a *arena.Arena) int {
	t.Helper()
	n := 0
	for id := range a.Len() {
		if a.Refs(uint16(id)) != 0 {
			continue
		}
		pages, err := unix.ResidentPages(a.Bytes(uint16(id)))
		require.NoError(t, err)
		if pages > 0 {
			n++
		}
	}
	return n
}

// After a burst that used many blocks, an engine that goes quiet gives the
// pages of its free blocks back, all but the few it would use next.
func TestIdleTrimGivesBackBurstMemory(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind, WithEngines(1), WithIdleTrim(20*time.Millisecond))
			t.Cleanup(func() { _ = ln.Close() })
			a := ln.g.engines[0].arena()
			const conns, each = 32, 64 << 10
			peers := make([]net.Conn, 0, conns)
			cs := make([]*Conn, 0, conns)
			t.Cleanup(func() {
				for _, c := range cs {
					_ = c.Close()
				}
				for _, p := range peers {
					_ = p.Close()
				}
			})
			for range conns {
				peers = append(peers, dial(t, ln))
				c, err := ln.Accept()
				require.NoError(t, err)
				cs = append(cs, c)
			}
			// Nobody reads until every byte has arrived: the burst holds
			// conns*each bytes of blocks at once.
			msg := make([]byte, each)
			var wg sync.WaitGroup
			for _, p := range peers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := p.Write(msg)
					assert.NoError(t, err)
				}()
			}
			wg.Wait()
			for _, c := range cs {
				require.Eventually(t, func() bool { return c.Reader().Buffered() == each }, 10*time.Second, time.Millisecond)
			}
			held := a.InUse()
			require.GreaterOrEqual(t, held, conns*each/a.BlockSize(), "the burst should hold many blocks")
			for _, c := range cs {
				_, err := c.Reader().Discard(each)
				require.NoError(t, err)
			}
			assert.Eventually(t, func() bool { return a.Stats().Trimmed > 0 }, 5*time.Second, 5*time.Millisecond, "no trim")
			time.Sleep(50 * time.Millisecond)
			resident := residentFreeBlocks(t, a)
			t.Logf("%s: %d blocks held by the burst, %d trimmed, %d free blocks resident", kind, held, a.Stats().Trimmed, resident)
			assert.LessOrEqual(t, resident, 8, "free blocks left resident after the engine went idle")
		})
	}
}

// WithIdleTrim(-1) turns the idle trim off.
func TestIdleTrimOff(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind, WithEngines(1), WithIdleTrim(-1))
			defer ln.Close()
			a := ln.g.engines[0].arena()
			peer := dial(t, ln)
			defer peer.Close()
			c, err := ln.Accept()
			require.NoError(t, err)
			defer c.Close()
			_, err = peer.Write(make([]byte, 256<<10))
			require.NoError(t, err)
			_, err = c.Reader().Discard(c.Reader().Limit())
			require.NoError(t, err)
			time.Sleep(300 * time.Millisecond) // three default trim delays
			assert.Zero(t, a.Stats().Trimmed, "a trim ran with WithIdleTrim(-1)")
		})
	}
}

//go:build linux

package reader

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/fallback"
	"github.com/zcio/zcio/internal/unix"
	"github.com/zcio/zcio/ring"
)

// residentBlocks counts the blocks of a with a page resident: the free
// ones, or all of them.
func residentBlocks(t *testing.T, a *arena.Arena, freeOnly bool) int {
	t.Helper()
	n := 0
	for id := range a.Len() {
		if freeOnly && a.Refs(uint16(id)) != 0 {
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
// pages of its free blocks back, all but the few it would use next, and
// (io_uring with DEFER_TASKRUN) the pages of the blocks in its buffer ring
// that the kernel has not written since.
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
			resident, all := residentBlocks(t, a, true), residentBlocks(t, a, false)
			t.Logf("%s: %d blocks held by the burst, %d trimmed, %d free blocks resident, %d in all", kind, held, a.Stats().Trimmed, resident, all)
			assert.LessOrEqual(t, resident, 8, "free blocks left resident after the engine went idle")
			if kind == Fallback || ring.Probe().DeferTaskrun.OK {
				// The kept free blocks, and at most one block the kernel
				// (io_uring) or the engine (fallback) was filling.
				assert.LessOrEqual(t, all, 9, "blocks left resident after the engine went idle")
			}
			// Quiet for DeepTrimFactor idle trims more: the kept blocks go
			// too (io_uring and fallback share the factor).
			require.Equal(t, ring.DeepTrimFactor, fallback.DeepTrimFactor)
			assert.Eventually(t, func() bool { return residentBlocks(t, a, true) == 0 },
				time.Duration(ring.DeepTrimFactor)*20*time.Millisecond+2*time.Second, 10*time.Millisecond,
				"free blocks still resident after a long quiet")
			all = residentBlocks(t, a, false)
			t.Logf("%s: after the deep trim, %d blocks resident in all", kind, all)
			if kind == Fallback || ring.Probe().DeferTaskrun.OK {
				assert.LessOrEqual(t, all, 1, "blocks left resident after a long quiet")
			}
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
			lim := c.Reader().Limit()
			_, err = peer.Write(make([]byte, lim))
			require.NoError(t, err)
			_, err = c.Reader().Discard(lim)
			require.NoError(t, err)
			time.Sleep(300 * time.Millisecond) // three default trim delays
			assert.Zero(t, a.Stats().Trimmed, "a trim ran with WithIdleTrim(-1)")
		})
	}
}

// Trims racing traffic lose nothing: with an idle trim after every 50 µs
// of quiet, connections that send in bursts with pauses between them
// deliver every byte intact (a trim that gave back the pages of a block the
// kernel had written into would turn bytes into zeros).
func TestIdleTrimRacesTraffic(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind, WithEngines(1), WithMemory(1<<20), WithIdleTrim(50*time.Microsecond))
			defer ln.Close()
			a := ln.g.engines[0].arena()
			const conns, each = 8, 2 << 20
			var wg sync.WaitGroup
			for i := range conns {
				peer := dial(t, ln)
				defer peer.Close()
				c, err := ln.Accept()
				require.NoError(t, err)
				defer c.Close()
				want := pattern(each, uint64(100+i))
				wg.Add(2)
				go func() {
					defer wg.Done()
					for off := 0; off < each; {
						n := min(each-off, 1+int(want[off])*97) // 1 B to 24 KiB
						if _, err := peer.Write(want[off : off+n]); !assert.NoError(t, err) {
							return
						}
						off += n
						if want[off%each]&3 == 0 {
							time.Sleep(time.Duration(want[off%each]) * time.Microsecond) // a pause: let a trim run
						}
					}
				}()
				go func() {
					defer wg.Done()
					r := c.Reader()
					got := 0
					for got < each {
						// A server's loop: wait for a byte, take what is there.
						if err := r.Peek(1, func([][]byte) {}); !assert.NoError(t, err) {
							return
						}
						err := r.ReadRange(min(each-got, r.Buffered()), func(b []byte) {
							if !bytes.Equal(b, want[got:got+len(b)]) {
								t.Errorf("conn %d: bytes [%d, %d) differ", i, got, got+len(b))
							}
							got += len(b)
						})
						if !assert.NoError(t, err) {
							return
						}
					}
				}()
			}
			wg.Wait()
			t.Logf("%s: %d blocks trimmed while %d connections streamed %d bytes each", kind, a.Stats().Trimmed, conns, each)
			assert.NotZero(t, a.Stats().Trimmed, "no trim ran between the bursts")
		})
	}
}

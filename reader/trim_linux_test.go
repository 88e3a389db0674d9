//go:build linux

package reader

import (
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// residentFreeBlocks counts the free blocks of a with a page resident.
func residentFreeBlocks(t *testing.T, a *arena.Arena) int {
	t.Helper()
	page := os.Getpagesize()
	n := 0
	for id := range a.Len() {
		if a.Refs(uint16(id)) != 0 {
			continue
		}
		b := a.Bytes(uint16(id))
		vec := make([]byte, (len(b)+page-1)/page)
		_, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
		require.Zero(t, errno, "mincore")
		for _, v := range vec {
			if v&1 != 0 {
				n++
				break
			}
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
			h := &countingHandler{}
			ln, served := serve(t, kind, h, WithEngines(1), WithIdleTrim(20*time.Millisecond))
			a := ln.g.engines[0].arena()
			const conns, each = 64, 64 << 10
			peers := make([]net.Conn, 0, conns)
			for range conns {
				peers = append(peers, dial(t, ln))
			}
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
			require.Eventually(t, func() bool { return h.bytes.Load() == conns*each }, 10*time.Second, time.Millisecond)
			peak := a.Stats().PeakInUse
			t.Logf("%s: peak blocks in use %d of %d", kind, peak, a.Len())
			require.Greater(t, peak, 2*8, "the burst should have used many blocks")
			assert.Eventually(t, func() bool { return a.Stats().Trimmed > 0 }, 5*time.Second, 5*time.Millisecond, "no trim")
			time.Sleep(50 * time.Millisecond)
			resident := residentFreeBlocks(t, a)
			t.Logf("%s: %d blocks trimmed, %d free blocks resident", kind, a.Stats().Trimmed, resident)
			assert.LessOrEqual(t, resident, 8, "free blocks left resident after the engine went idle")

			for _, p := range peers {
				require.NoError(t, p.Close())
			}
			require.Eventually(t, func() bool { return h.closed.Load() == conns }, 10*time.Second, 5*time.Millisecond)
			require.NoError(t, ln.Close())
			<-served
			arenasIdle(t, ln.g)
		})
	}
}

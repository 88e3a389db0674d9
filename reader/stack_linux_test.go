//go:build linux

package reader

import (
	"net"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func stackBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// A goroutine blocked in a Reader call (no deadline, no context) must fit in
// Go's smallest stack (2 KiB): it is most of what an idle connection costs in
// blocking mode. The wait path once needed 4 KiB.
func TestBlockedReaderStackIsSmall(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes every frame larger")
	}
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			ln := listen(t, kind)
			defer ln.Close()
			const n = 200
			peers := make([]net.Conn, 0, n)
			conns := make([]*Conn, 0, n)
			for range n {
				peers = append(peers, dial(t, ln))
				c, err := ln.Accept()
				require.NoError(t, err)
				conns = append(conns, c)
			}
			runtime.GC()
			before := stackBytes()
			var wg sync.WaitGroup
			var waiting sync.WaitGroup
			waiting.Add(n)
			for _, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					waiting.Done()
					_ = c.Reader().Peek(1, func([][]byte) {})
				}()
			}
			waiting.Wait()
			time.Sleep(100 * time.Millisecond) // let them park
			runtime.GC()
			per := (stackBytes() - before) / n
			t.Logf("stack per blocked reader: %d B", per)
			assert.Less(t, per, uint64(3<<10), "a blocked reader's goroutine outgrew the smallest stack")
			for _, c := range conns {
				require.NoError(t, c.Close())
			}
			wg.Wait()
			for _, p := range peers {
				_ = p.Close()
			}
		})
	}
}

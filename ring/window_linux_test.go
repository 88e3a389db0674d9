//go:build linux

package ring_test

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/ring"
)

// countSink consumes every segment at once, counting its bytes.
type countSink struct {
	a        *arena.Arena
	got      *atomic.Int64
	detached chan struct{}
}

func (s countSink) Deliver(ref arena.Ref, off, n int) bool {
	s.got.Add(int64(n))
	s.a.Release(ref)
	return false
}
func (s countSink) Flush()    {}
func (s countSink) End(error) {}
func (s countSink) Detached() { close(s.detached) }

// wait waits for Detached, a few seconds at most.
func (s countSink) wait() error {
	select {
	case <-s.detached:
		return nil
	case <-time.After(5 * time.Second):
		return errors.New("no Detached within 5s")
	}
}

// With hundreds of connections sending at once, the window must grow past
// the 512 KiB that suits a few busy connections: each starved connection
// may claim 8 KiB more, so that a batch of receives does not end most of
// them with ENOBUFS. Every byte still arrives.
func TestWindowGrowsWithStarvedConnections(t *testing.T) {
	const (
		blockSize = 16 << 10
		blocks    = 512
		conns     = 600
		perConn   = 256 << 10
		baseCap   = (512 << 10) / blockSize // maxWindowBytes in blocks
	)
	a, err := arena.New(arena.Config{Blocks: blocks, BlockSize: blockSize})
	require.NoError(t, err)
	e, err := ring.NewEngine(ring.EngineConfig{Arena: a})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var got atomic.Int64
	sinks := make([]countSink, 0, conns)
	handles := make([]*ring.EngineConn, 0, conns)
	clients := make([]net.Conn, 0, conns)
	fds := make([]int, 0, conns)
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		clients = append(clients, c)
		sc, err := ln.Accept()
		require.NoError(t, err)
		f, err := sc.(*net.TCPConn).File() // a blocking duplicate
		require.NoError(t, err)
		fd, err := syscall.Dup(int(f.Fd()))
		require.NoError(t, err)
		require.NoError(t, f.Close())
		require.NoError(t, sc.Close())
		require.NoError(t, syscall.SetNonblock(fd, true))
		s := countSink{a: a, got: &got, detached: make(chan struct{})}
		h, err := e.Attach(fd, s)
		require.NoError(t, err)
		sinks, handles, fds = append(sinks, s), append(handles, h), append(fds, fd)
	}
	msg := make([]byte, perConn)
	// The window follows the demand seen at each ENOBUFS: watch its peak.
	var peak atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			peak.Store(max(peak.Load(), int64(e.Stats().Window)))
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_, err := c.Write(msg)
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() < conns*perConn && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-watched
	assert.Equal(t, int64(conns*perConn), got.Load(), "bytes delivered")
	st := e.Stats()
	t.Logf("window peaked at %d blocks (base cap %d), now %d; %d ENOBUFS, %d re-arms", peak.Load(), baseCap, st.Window, st.NoBufs, st.Rearms)
	assert.Greater(t, int(peak.Load()), baseCap, "hundreds of connections starved and the window stayed at the cap for a few busy ones")
	assert.LessOrEqual(t, int(peak.Load()), blocks, "the window is within the arena")
	for i, h := range handles {
		h.Detach()
		require.NoError(t, sinks[i].wait())
		require.NoError(t, syscall.Close(fds[i]))
		require.NoError(t, clients[i].Close())
	}
	require.NoError(t, e.Close())
	assert.Zero(t, a.InUse(), "blocks in use after the engine closed")
	require.NoError(t, a.Close())
}

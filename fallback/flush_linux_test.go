//go:build linux

package fallback_test

import (
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/fallback"
)

// consumeSink consumes at each Flush, as a handler does: it checks the bytes
// it was handed against what the peer sent and releases their blocks.
type consumeSink struct {
	a        *arena.Arena
	want     []byte
	held     []arena.Ref
	got      int  // bytes delivered so far
	bad      bool // a delivered byte differed from the one sent
	done     chan struct{}
	detached chan struct{}
}

func (s *consumeSink) Deliver(ref arena.Ref, off, n int) bool {
	b := s.a.Bytes(ref.ID())[off : off+n]
	if s.got+n > len(s.want) || string(b) != string(s.want[s.got:s.got+n]) {
		s.bad = true
	}
	s.got += n
	s.held = append(s.held, ref)
	return false
}

func (s *consumeSink) Flush() {
	for _, r := range s.held {
		s.a.Release(r)
	}
	s.held = s.held[:0]
	if s.got == len(s.want) {
		close(s.done)
	}
}

func (s *consumeSink) End(error) {}
func (s *consumeSink) Detached() { close(s.detached) }

// TestBusyEngineWorksInOneReadOfArena: many sockets are readable at once
// and a sink consumes at each Flush. The engine flushes after every read, so
// the blocks a read took are free again before the next read: the arena's
// peak stays about one read (64 KiB) plus the tail block. Flushing once per
// batch of events instead held every ready socket's reads at the same time:
// up to ReadsPerEvent reads of 64 KiB each for each of them.
func TestBusyEngineWorksInOneReadOfArena(t *testing.T) {
	const (
		conns     = 16
		perConn   = 1 << 20
		blockSize = 16 << 10
	)
	a, err := arena.New(arena.Config{Blocks: 1024, BlockSize: blockSize})
	require.NoError(t, err)
	e, err := fallback.New(fallback.Config{Arena: a})
	require.NoError(t, err)
	defer func() { _ = a.Close() }()

	var writers sync.WaitGroup
	sinks := make([]*consumeSink, conns)
	handles := make([]*fallback.Conn, conns)
	fds := make([][2]int, conns)
	for i := range sinks {
		p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		fds[i] = [2]int{p[0], p[1]}
		require.NoError(t, syscall.SetNonblock(p[0], true))
		data := pattern(perConn, uint64(i+1))
		// Fill the socket before the engine sees it, so that every socket
		// is readable in the engine's first wait; a goroutine sends the rest.
		require.NoError(t, syscall.SetNonblock(p[1], true))
		sent := 0
		for sent < len(data) {
			n, err := syscall.Write(p[1], data[sent:min(sent+64<<10, len(data))])
			if errors.Is(err, syscall.EAGAIN) {
				break
			}
			require.NoError(t, err)
			sent += n
		}
		require.Greater(t, sent, 4*blockSize, "a socket pair buffers at least a few blocks")
		require.NoError(t, syscall.SetNonblock(p[1], false))
		writers.Add(1)
		go func(fd int, rest []byte) {
			defer writers.Done()
			for len(rest) > 0 {
				n, err := syscall.Write(fd, rest)
				if err == syscall.EINTR {
					continue
				}
				if err != nil {
					return
				}
				rest = rest[n:]
			}
		}(p[1], data[sent:])
		sinks[i] = &consumeSink{a: a, want: data, done: make(chan struct{}), detached: make(chan struct{})}
	}
	for i, s := range sinks {
		handles[i], err = e.Attach(fds[i][0], s)
		require.NoError(t, err)
	}
	deadline := time.After(20 * time.Second)
	for i, s := range sinks {
		select {
		case <-s.done:
		case <-deadline:
			t.Fatalf("connection %d: %d of %d bytes after 20 s", i, s.got, perConn)
		}
	}
	writers.Wait()
	for i, s := range sinks {
		e.Detach(handles[i])
		<-s.detached
		assert.False(t, s.bad, "connection %d: bytes differ from those sent", i)
		_ = syscall.Close(fds[i][0])
		_ = syscall.Close(fds[i][1])
	}
	require.NoError(t, e.Close())

	st := a.Stats()
	t.Logf("peak %d blocks of %d bytes in use", st.PeakInUse, blockSize)
	// One read: the tail block's room plus up to four blocks ahead (64
	// KiB); a little slack for the tail changing hands.
	assert.LessOrEqual(t, st.PeakInUse, 8, "peak blocks in use while %d busy sockets were read", conns)
	assert.Zero(t, a.InUse(), "blocks still taken after the engine closed")
}

// pattern returns n bytes of a sequence that seed picks.
func pattern(n int, seed uint64) []byte {
	b := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

//go:build linux

package ring

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

// An end of stream or a reset that the kernel leaves unreported on a
// multishot receive still ends the connection, after every byte: Linux can
// miss an end that comes right behind data (checkQuiet). The kernel's race
// is rare, so the test makes the same state on purpose (armOnDecoy): a
// receive that posted data and waits for good, while the end or the reset
// waits on the connection's socket.
func TestEngineEndsAStreamWhoseEndTheKernelMissed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		idleTrim time.Duration
		busy     bool // another connection receives throughout: the loop is never idle
		reset    bool // the peer resets the connection instead of closing it cleanly
		want     error
	}{
		{name: "idle engine", idleTrim: 20 * time.Millisecond, want: io.EOF},
		{name: "busy engine", idleTrim: -1, busy: true, want: io.EOF},
		{name: "reset", idleTrim: 20 * time.Millisecond, reset: true, want: syscall.ECONNRESET},
		{name: "reset on a busy engine", idleTrim: -1, busy: true, reset: true, want: syscall.ECONNRESET},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			a, err := arena.New(arena.Config{Blocks: 64, BlockSize: 4096})
			require.NoError(t, err)
			defer func() { assert.NoError(t, a.Close()) }()
			e, err := NewEngine(EngineConfig{Arena: a, IdleTrim: tc.idleTrim})
			require.NoError(t, err)
			defer func() { assert.NoError(t, e.Close()) }()

			if tc.busy {
				bfd, bpeer := testPair(t)
				b := &countSink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
				bh, err := e.Attach(bfd, b)
				require.NoError(t, err)
				stop, stopped := make(chan struct{}), make(chan struct{})
				go func() {
					defer close(stopped)
					for i := 0; i < 2000; i++ { // at most 10 s
						select {
						case <-stop:
							return
						case <-time.After(5 * time.Millisecond):
						}
						if _, err := bpeer.Write([]byte{byte(i)}); err != nil {
							return
						}
					}
				}()
				defer func() {
					close(stop)
					<-stopped
					assert.NoError(t, bpeer.Close())
					e.Detach(bh)
					<-b.detached
					assert.NoError(t, syscall.Close(bfd))
				}()
			}

			// The receive is armed on the decoy, which brings the data; the
			// end waits on the connection's own socket, unreported.
			decoy, decoyPeer := testPair(t)
			defer func() { assert.NoError(t, syscall.Close(decoy)); assert.NoError(t, decoyPeer.Close()) }()
			fd, peer := testPair(t)
			if tc.reset {
				// Unread bytes in the peer's socket when it closes: a reset.
				_, err = syscall.Write(fd, []byte("unread"))
				require.NoError(t, err)
			}
			require.NoError(t, peer.Close())
			s := &copySink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
			armOnDecoy.Store(&struct{ fd, decoy int32 }{int32(fd), int32(decoy)})
			defer armOnDecoy.Store(nil)
			h, err := e.Attach(fd, s)
			require.NoError(t, err)
			msg := bytes.Repeat([]byte("0123456789abcdef"), 200)
			_, err = decoyPeer.Write(msg)
			require.NoError(t, err)

			select {
			case <-s.ended:
			case <-time.After(5 * time.Second):
				assert.Fail(t, "no end", "%+v", e.Stats())
			}
			assert.Nil(t, armOnDecoy.Load(), "armed on the decoy")
			s.mu.Lock()
			assert.True(t, bytes.Equal(msg, s.got.Bytes()), "every byte, before the end: got %d of %d", s.got.Len(), len(msg))
			assert.ErrorIs(t, s.err, tc.want)
			s.mu.Unlock()
			assert.Equal(t, 1, e.Stats().LostEnds)
			e.Detach(h)
			<-s.detached
			assert.NoError(t, syscall.Close(fd))
		})
	}
}

// A connection that receives now and then, and one that went quiet with
// its socket open, are looked at without being disturbed: nothing counts
// as a lost end, and both still receive afterwards.
func TestQuietCheckLeavesOpenConnectionsAlone(t *testing.T) {
	noLeaks(t)
	a, err := arena.New(arena.Config{Blocks: 64, BlockSize: 4096})
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.Close()) }()
	e, err := NewEngine(EngineConfig{Arena: a, IdleTrim: 10 * time.Millisecond})
	require.NoError(t, err)
	defer func() { assert.NoError(t, e.Close()) }()
	fd, peer := testPair(t)
	s := &countSink{a: a, ended: make(chan struct{}), detached: make(chan struct{})}
	h, err := e.Attach(fd, s)
	require.NoError(t, err)
	for i := range 5 {
		_, err = peer.Write([]byte("ping"))
		require.NoError(t, err)
		require.Eventually(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.n == 4*(i+1) },
			5*time.Second, time.Millisecond)
		time.Sleep(3 * quietCheckEvery / 2) // idle trims and timed looks in between
	}
	select {
	case <-s.ended:
		assert.Fail(t, "ended", "%v", s.err)
	default:
	}
	assert.Zero(t, e.Stats().LostEnds)
	require.NoError(t, peer.Close())
	select {
	case <-s.ended:
	case <-time.After(5 * time.Second):
		assert.Fail(t, "no end")
	}
	assert.ErrorIs(t, s.err, io.EOF)
	e.Detach(h)
	<-s.detached
	assert.NoError(t, syscall.Close(fd))
	assert.False(t, errors.Is(s.err, syscall.ECONNRESET))
}

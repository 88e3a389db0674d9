//go:build linux

package reader

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keptHandler: the first connection (the keeper) waits for a whole message
// of msg bytes and keeps its Reader past the callback (the misuse a kept
// pointer stands for); every other connection (a hog) never reads, so its
// bytes stay queued and pin blocks until the engine runs dry.
type keptHandler struct {
	msg    int
	keeper atomic.Pointer[Conn]
	kept   atomic.Pointer[Reader]
	conns  chan *Conn
	got    chan []byte
}

func (h *keptHandler) OnOpen(c *Conn) {
	h.keeper.CompareAndSwap(nil, c)
	h.conns <- c
}

func (h *keptHandler) OnData(c *Conn) {
	if h.keeper.Load() != c {
		return // a hog
	}
	r := c.Reader()
	h.kept.Store(r)
	if r.Buffered() < h.msg {
		return // wait for the rest, holding the part in the lent Reader
	}
	var b []byte
	if err := r.ReadRange(h.msg, func(v []byte) { b = append(b, v...) }); err != nil {
		panic(err)
	}
	h.got <- b
}

func (h *keptHandler) OnClose(*Conn, error) {}

// TestKeptReaderCloseRefusedDuringSpill: a handler-mode Reader kept past
// its callback refuses Close (ErrOutsideCallback) between callbacks, also
// while the engine, dry, has it spill its partial message; the connection's
// reading side stays open and the message arrives whole.
func TestKeptReaderCloseRefusedDuringSpill(t *testing.T) {
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			leakCheck(t)
			const msg = 4000
			h := &keptHandler{msg: msg, conns: make(chan *Conn, 64), got: make(chan []byte, 1)}
			// 8 blocks of 16 KiB, one of them the spill reserve.
			ln, served := serve(t, kind, h, WithEngines(1), WithMemory(8*16<<10))
			g := ln.g

			keeperPeer := dial(t, ln)
			defer keeperPeer.Close()
			keeper := <-h.conns
			want := pattern(msg, 9)
			_, err := keeperPeer.Write(want[:1000])
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				r := h.kept.Load()
				return r != nil && r.gs.Load() == gsBetween
			}, 5*time.Second, time.Millisecond, "the keeper holds its partial message between callbacks")
			kept := h.kept.Load()

			// Hogs fill the arena; those not paused yet starve, and the
			// engine nudges every connection while it stays dry.
			const hogs = 8
			hogPeers := make([]net.Conn, 0, hogs)
			hogConns := make([]*Conn, 0, hogs)
			var wg sync.WaitGroup
			for range hogs {
				p := dial(t, ln)
				hogPeers = append(hogPeers, p)
				hogConns = append(hogConns, <-h.conns)
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = p.SetWriteDeadline(time.Now().Add(10 * time.Second))
					_, _ = p.Write(make([]byte, 256<<10))
				}()
			}
			a := g.engines[0].arena()
			require.Eventually(t, func() bool { return a.Len()-a.InUse() <= spillReserve(a) }, 5*time.Second, time.Millisecond,
				"the arena did not run dry")

			// Meanwhile the kept pointer tries to close the Reader.
			var accepted error
			closeErr := errors.New("none")
			start := time.Now()
			for end := time.Now().Add(time.Second); time.Now().Before(end); {
				if err := kept.Close(); !errors.Is(err, ErrOutsideCallback) {
					accepted, closeErr = errors.New("accepted"), err
					t.Logf("accepted after %v", time.Since(start))
					break
				}
			}
			assert.NoError(t, accepted, "a kept pointer's Close was not refused (it returned %v)", closeErr)

			// Let the keeper's message through: the hogs go.
			for i := range hogConns {
				_ = hogConns[i].Close()
				_ = hogPeers[i].Close()
			}
			wg.Wait()
			_, err = keeperPeer.Write(want[1000:])
			require.NoError(t, err)
			select {
			case b := <-h.got:
				assert.Equal(t, want, b)
			case <-time.After(5 * time.Second):
				t.Error("the keeper's message did not arrive")
			}
			require.NoError(t, keeper.Close())
			require.NoError(t, ln.Close())
			assert.ErrorIs(t, <-served, net.ErrClosed)
			arenasIdle(t, g)
		})
	}
}

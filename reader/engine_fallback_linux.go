//go:build linux

package reader

import (
	"net"
	"time"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/fallback"
	"github.com/zcio/zcio/internal/loopctl"
	"github.com/zcio/zcio/internal/segq"
	"github.com/zcio/zcio/internal/unix"
)

// fallbackName is the fallback engine's name on this OS.
const fallbackName = NameFallback

// epollEngine adapts a fallback.Engine and its arena.
type epollEngine struct {
	e   *fallback.Engine
	a   *arena.Arena
	sp  *segq.Spiller
	rel func(arena.Ref) // released, made once
}

func newFallbackEngine(a *arena.Arena, idleTrim time.Duration, onIdle func()) (engine, error) {
	e, err := fallback.New(fallback.Config{Arena: a, Reserve: spillReserve(a), IdleTrim: idleTrim, OnIdleTrim: onIdle})
	if err != nil {
		return nil, err
	}
	x := &epollEngine{e: e, a: a, sp: segq.NewSpiller(a)}
	x.rel = x.released
	return x, nil
}

func (x *epollEngine) attach(_ net.Conn, fd int, s engineSink) (attachment, error) {
	h, err := x.e.Attach(fd, s)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func (x *epollEngine) arena() *arena.Arena { return x.a }

func (x *epollEngine) spiller() *segq.Spiller { return x.sp }

func (x *epollEngine) releaser() func(arena.Ref) { return x.rel }

func (x *epollEngine) released(r arena.Ref) {
	x.a.Release(r)
	x.e.BlocksFreed()
}

func (x *epollEngine) onLoop() bool { return loopctl.OnAnyLoop() }

func (x *epollEngine) close() error {
	err := x.e.Close()
	x.sp.Close()
	closeArenaAfter(x.e.Done(), x.a)
	return err
}

// closeArenaAfter unmaps a once done is closed (the engine's loop has
// stopped), on another goroutine when it is not closed yet. An arena that
// still has blocks out (a retained Slice) stays mapped until its cleanup.
func closeArenaAfter(done <-chan struct{}, a *arena.Arena) {
	select {
	case <-done:
		_ = a.Close()
	default:
		go func() {
			<-done
			_ = a.Close()
		}()
	}
}

// writeNow makes one non-blocking write(2) attempt on fd: it returns how
// much the socket took, 0 when it is full.
func writeNow(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Write(fd, p)
		switch {
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, nil
		}
		return 0, err
	}
}

func (x *epollEngine) failed() bool { return x.e.Err() != nil }

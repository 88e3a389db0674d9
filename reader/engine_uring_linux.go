//go:build linux && !zcio_nouring

package reader

import (
	"net"
	"time"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/loopctl"
	"github.com/zcio/zcio/internal/segq"
	"github.com/zcio/zcio/ring"
)

// uringAvailable reports why the io_uring engine cannot run here, or nil.
func uringAvailable() error {
	f := ring.Probe()
	switch {
	case f.Err != nil:
		return f.Err
	case !f.BufRing.OK:
		return f.BufRing.Err
	case !f.MultishotRecv.OK:
		return f.MultishotRecv.Err
	}
	return nil
}

// uringEngine adapts a ring.Engine and its arena.
type uringEngine struct {
	e   *ring.Engine
	a   *arena.Arena
	sp  *segq.Spiller
	rel func(arena.Ref) // released, made once
}

func newUringEngine(a *arena.Arena, idleTrim time.Duration, onIdle func(), burst int) (engine, error) {
	e, err := ring.NewEngine(ring.EngineConfig{Arena: a, Reserve: spillReserve(a), IdleTrim: idleTrim, OnIdleTrim: onIdle,
		ArmCap: burst})
	if err != nil {
		return nil, err
	}
	x := &uringEngine{e: e, a: a, sp: segq.NewSpiller(a)}
	x.rel = x.released
	return x, nil
}

func (x *uringEngine) attach(_ net.Conn, fd int, s engineSink) (attachment, error) {
	h, err := x.e.Attach(fd, s)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func (x *uringEngine) arena() *arena.Arena { return x.a }

func (x *uringEngine) spiller() *segq.Spiller { return x.sp }

func (x *uringEngine) releaser() func(arena.Ref) { return x.rel }

func (x *uringEngine) released(r arena.Ref) {
	x.a.Release(r)
	x.e.BlocksFreed()
}

func (x *uringEngine) onLoop() bool { return loopctl.OnAnyLoop() }

func (x *uringEngine) close() error {
	err := x.e.Close()
	x.sp.Close()
	closeArenaAfter(x.e.Done(), x.a)
	return err
}

func (x *uringEngine) failed() bool { return x.e.Err() != nil }

//go:build linux

package ring_test

import (
	"fmt"
	"testing"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/enginetest"
	"github.com/zcio/zcio/ring"
)

// suiteEngine adapts a ring.Engine to the conformance suite.
type suiteEngine struct{ *ring.Engine }

func (x suiteEngine) Attach(fd int, s enginetest.Sink) (enginetest.Handle, error) {
	return x.Engine.Attach(fd, s)
}
func (x suiteEngine) Resume(h enginetest.Handle) { x.Engine.Resume(h.(*ring.EngineConn)) }
func (x suiteEngine) Detach(h enginetest.Handle) { x.Engine.Detach(h.(*ring.EngineConn)) }

func TestEngineConformance(t *testing.T) {
	runConformance(t)
}

// The same suite with plain receives (one block each), the path kernels
// before 6.10 take.
func TestEngineConformancePlainReceives(t *testing.T) {
	defer ring.SetNoBundles()()
	runConformance(t)
}

func runConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Suite{
		New: func(a *arena.Arena) (enginetest.Engine, error) {
			e, err := ring.NewEngine(ring.EngineConfig{Arena: a})
			if err != nil {
				return nil, err
			}
			return suiteEngine{e}, nil
		},
		ErrClosed: ring.ErrClosed,
		Fail: func(e enginetest.Engine, err error) {
			e.(suiteEngine).FailNextEnter(fmt.Errorf("io_uring_enter: %w", err))
		},
		ErrFailed: ring.ErrEngineFailed,
	})
}

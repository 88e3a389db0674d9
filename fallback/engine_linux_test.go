//go:build linux

package fallback_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/fallback"
	"github.com/zcio/zcio/internal/enginetest"
	"github.com/zcio/zcio/internal/seam"
)

// suiteEngine adapts a fallback.Engine to the conformance suite.
type suiteEngine struct{ *fallback.Engine }

func (x suiteEngine) Attach(fd int, s enginetest.Sink) (enginetest.Handle, error) {
	return x.Engine.Attach(fd, s)
}
func (x suiteEngine) Resume(h enginetest.Handle) { x.Engine.Resume(h.(*fallback.Conn)) }
func (x suiteEngine) Detach(h enginetest.Handle) { x.Engine.Detach(h.(*fallback.Conn)) }

func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Suite{
		New: func(a *arena.Arena) (enginetest.Engine, error) {
			e, err := fallback.New(fallback.Config{Arena: a})
			if err != nil {
				return nil, err
			}
			return suiteEngine{e}, nil
		},
		ErrClosed:      fallback.ErrClosed,
		TakesFromArena: true,
		// A real EBADF: the epoll fd closed behind the engine's back.
		Fail:      func(e enginetest.Engine, _ error) { seam.CloseEpollFD(e.(suiteEngine).Engine) },
		ErrFailed: fallback.ErrEngineFailed,
	})
}

func TestNewRequiresArena(t *testing.T) {
	_, err := fallback.New(fallback.Config{})
	assert.ErrorIs(t, err, fallback.ErrNoArena)
}

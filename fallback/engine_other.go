//go:build !linux

package fallback

import (
	"fmt"

	"github.com/zcio/zcio/internal/unix"
)

// Engine is not available on this OS: epoll is Linux's. (The portable
// goroutine-per-connection path is the reader package's pull adapter.)
type Engine struct{}

// Conn is an attached connection.
type Conn struct{}

// New returns an error wrapping ErrUnsupported on this OS.
func New(cfg Config) (*Engine, error) {
	return nil, fmt.Errorf("zcio/fallback: new engine: %w (%w)", ErrUnsupported, unix.ErrNotSupported)
}

// Attach is not supported on this OS.
func (e *Engine) Attach(fd int, sink Sink) (*Conn, error) { return nil, ErrUnsupported }

// Resume does nothing on this OS.
func (e *Engine) Resume(h *Conn) {}

// Detach does nothing on this OS.
func (e *Engine) Detach(h *Conn) {}

// BlocksFreed does nothing on this OS.
func (e *Engine) BlocksFreed() {}

// OnLoop reports false on this OS.
func (e *Engine) OnLoop() bool { return false }

// Close returns ErrUnsupported on this OS.
func (e *Engine) Close() error { return ErrUnsupported }

// Done returns a closed channel on this OS.
func (e *Engine) Done() <-chan struct{} { c := make(chan struct{}); close(c); return c }

package reader

// Guard states of an engine's Reader (Reader.gs).
const (
	gsIdle       = iota // no call in progress
	gsBusy              // a call is in progress
	gsCloseAsked        // a call is in progress and Close came meanwhile
	gsClosed
	// gsBetween: a handler-mode Reader still lent to its connection (it holds
	// bytes) between the connection's callbacks. Calls fail with
	// ErrOutsideCallback until the next callback: a pointer kept past a
	// callback cannot race with the loop.
	gsBetween
)

// enter starts a call: for an engine's Reader it claims the guard, so that a
// Close from another goroutine waits for the call to return before giving
// the Reader's blocks back.
func (r *Reader) enter() error {
	if !r.guarded && r.inCb {
		// Called from one of the Reader's own callbacks. (A guarded
		// Reader's callbacks run with the guard held, so the CAS below
		// refuses such a call; and inCb must not be read there, where
		// another goroutine may be calling while the guard holder's end
		// writes it.)
		return ErrReentrant
	}
	if r.guarded && !r.gs.CompareAndSwap(gsIdle, gsBusy) {
		switch r.gs.Load() {
		case gsBusy:
			return ErrReentrant
		case gsBetween:
			return ErrOutsideCallback
		}
		return ErrClosed
	}
	if r.closed {
		r.end()
		if r.outside {
			return ErrOutsideCallback
		}
		return ErrClosed
	}
	return nil
}

// end finishes a call started by enter (or begin), closing the Reader if a
// Close came meanwhile.
func (r *Reader) end() {
	r.inCb = false // also after a callback that panicked
	if r.closeAsked {
		r.closeAsked = false
		_ = r.closeNow()
	}
	if r.guarded && !r.gs.CompareAndSwap(gsBusy, gsIdle) {
		_ = r.closeNow()
		r.gs.Store(gsClosed)
	}
}

// closeGuarded is Close for an engine's Reader.
func (r *Reader) closeGuarded() error {
	switch r.gs.Load() {
	case gsBetween:
		return ErrOutsideCallback // its connection's to close, not a kept pointer's
	case gsCloseAsked, gsClosed:
		return ErrClosed
	}
	if r.handler {
		// Its blocks and its life are the connection's (Conn.Close): closing
		// only the Reader would leave the connection unread for good.
		return ErrHandlerClose
	}
	r.shutdown()
	if r.gs.Load() == gsCloseAsked {
		// A call is in progress, perhaps waiting for data: closing the
		// source wakes it with an error, and it finishes the close as it
		// returns.
		_ = r.src.close()
	}
	return nil
}

// shutdown closes an engine's Reader from any goroutine: at once when no
// call is in progress, else when the call in progress returns (a call that
// waits for data is woken by the queue's Close, which the connection does
// first).
func (r *Reader) shutdown() {
	for {
		switch r.gs.Load() {
		case gsIdle, gsBetween:
			if st := r.gs.Load(); (st == gsIdle || st == gsBetween) && r.gs.CompareAndSwap(st, gsClosed) {
				_ = r.closeNow()
				return
			}
		case gsBusy:
			if r.gs.CompareAndSwap(gsBusy, gsCloseAsked) {
				return
			}
		default:
			return
		}
	}
}

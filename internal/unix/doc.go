// Package unix is zcio's one shim over the operating system: the only package
// that imports golang.org/x/sys/unix. On Linux it re-exports the calls and
// constants the rest of zcio needs; on other systems it offers the same names
// as stubs that return an error wrapping [ErrNotSupported] and naming the
// function, so every package of zcio still builds there.
//
// It holds no policy: callers decide what a failure means.
package unix

import "errors"

// ErrNotSupported is wrapped by every stub on systems where a call has no
// implementation.
var ErrNotSupported = errors.New("zcio/internal/unix: not supported on this OS")

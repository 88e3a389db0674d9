//go:build linux && zcio_nouring

package reader

// failUring: io_uring is compiled out, so no connection is on it.
func failUring(*Conn) (errno, sentinel error, ok bool) { return nil, nil, false }

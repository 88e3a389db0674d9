// Package enginetest is the conformance suite every zcio engine passes (the
// epoll fallback and the io_uring engine): real sockets, real kernel, a
// recording sink. An engine's test calls Run with a constructor. The suite
// needs Linux; elsewhere the package is empty.
package enginetest

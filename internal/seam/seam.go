// Package seam holds hooks through which the module's tests in one package
// cause, in another, failures that real systems produce rarely and tests
// cannot produce on demand. The package that owns the failure sets the hook
// at init; only tests call it.
package seam

// FailNextEnter makes the next io_uring_enter of engine's loop report err in
// place of its own result, as the kernel does when it drops completions
// (EBADR). engine is a *ring.Engine; package ring sets the hook (Linux only,
// nil elsewhere).
var FailNextEnter func(engine any, err error)

// CloseEpollFD closes engine's epoll fd behind its back, as a double close
// elsewhere in the process would: its loop's next epoll_wait fails with
// EBADF. engine is a *fallback.Engine; package fallback sets the hook
// (Linux only, nil elsewhere).
var CloseEpollFD func(engine any)

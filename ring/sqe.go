package ring

import "github.com/zcio/zcio/internal/unix"

// Prep helpers fill an SQE returned by [Ring.GetSQE] (already zeroed) for
// one request. userData comes back in every CQE the request posts; the
// caller chooses it (a connection slot and generation, say) and must keep it
// unique among requests in flight if it wants to cancel them one by one.

// PrepNop prepares a no-op request (IORING_OP_NOP): it completes at once with
// res 0.
func (s *SQE) PrepNop(userData uint64) {
	s.Opcode = OpNop
	s.UserData = userData
}

// PrepRecvMultishot prepares a multishot receive on the socket fd
// (IORING_OP_RECV with IORING_RECV_MULTISHOT, Linux 6.0) that takes its
// buffers from the buffer ring registered for group (IOSQE_BUFFER_SELECT).
// It posts one CQE per receive (decode it with [DecodeRecv]) and stays armed
// while the CQEs carry IORING_CQE_F_MORE.
func (s *SQE) PrepRecvMultishot(fd int, group uint16, userData uint64) {
	s.Opcode = OpRecv
	s.Fd = int32(fd)
	s.Ioprio = recvMultishot
	s.Flags = sqeBufferSelect
	s.BufIndex = group
	s.UserData = userData
}

// PrepRecv prepares a one-shot receive on fd into a buffer of group.
func (s *SQE) PrepRecv(fd int, group uint16, userData uint64) {
	s.PrepRecvMultishot(fd, group, userData)
	s.Ioprio = 0
}

// PrepAcceptMultishot prepares a multishot accept on the listening socket fd
// (IORING_ACCEPT_MULTISHOT, Linux 5.19): each CQE's res is a new connection's
// fd, which the caller owns and must close. flags are accept4(2) flags such
// as unix.SOCK_CLOEXEC.
func (s *SQE) PrepAcceptMultishot(fd int, flags uint32, userData uint64) {
	s.Opcode = OpAccept
	s.Fd = int32(fd)
	s.Ioprio = acceptMultishot
	s.OpFlags = flags
	s.UserData = userData
}

// PrepCancel prepares the cancellation of the request in flight whose user
// data is target (IORING_OP_ASYNC_CANCEL). Its own CQE has res 0 when a
// request was found, -ENOENT when none was, -EALREADY when it was already
// running; the cancelled request then posts a final CQE with -ECANCELED.
func (s *SQE) PrepCancel(target, userData uint64) {
	s.Opcode = OpAsyncCancel
	s.Fd = -1
	s.Addr = target
	s.UserData = userData
}

// PrepCancelFd prepares the cancellation of every request in flight on fd
// (IORING_ASYNC_CANCEL_FD|IORING_ASYNC_CANCEL_ALL, Linux 5.19). Its CQE's res
// is the number of requests cancelled, or -ENOENT.
func (s *SQE) PrepCancelFd(fd int, userData uint64) {
	s.Opcode = OpAsyncCancel
	s.Fd = int32(fd)
	s.OpFlags = cancelFd | cancelAll
	s.UserData = userData
}

// PrepClose prepares close(2) of fd through the ring (IORING_OP_CLOSE).
func (s *SQE) PrepClose(fd int, userData uint64) {
	s.Opcode = OpClose
	s.Fd = int32(fd)
	s.UserData = userData
}

// PrepPollMultishot prepares a multishot poll of fd for events (POLLIN is
// 0x1) (IORING_POLL_ADD_MULTI, Linux 5.13): a CQE each time fd becomes ready.
// An engine arms one on an eventfd to be woken from other goroutines.
func (s *SQE) PrepPollMultishot(fd int, events uint32, userData uint64) {
	s.Opcode = OpPollAdd
	s.Fd = int32(fd)
	s.OpFlags = events
	s.Len = pollAddMulti
	s.UserData = userData
}

// acceptCloexec is the accept4 flag tests and engines pass most often.
const acceptCloexec = unix.SOCK_CLOEXEC

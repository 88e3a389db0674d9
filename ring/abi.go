package ring

// The kernel ABI of io_uring, written by hand from the Linux UAPI header
// include/uapi/linux/io_uring.h (checked against Linux 6.18). abi_test.go
// checks every struct's size and field offsets against that header's layout.
// Only the parts zcio uses are here.

// SQE is struct io_uring_sqe (64 bytes): one submission queue entry. An SQE
// handed out by [Ring.GetSQE] lives in the submission queue mapping shared with
// the kernel; it is the caller's to fill until the next [Ring.Submit].
type SQE struct {
	Opcode      uint8  // IORING_OP_*
	Flags       uint8  // IOSQE_*
	Ioprio      uint16 // ioprio; for recv/accept the IORING_RECV_*/IORING_ACCEPT_* flags
	Fd          int32  // file descriptor
	Off         uint64 // union: off, addr2, cmd_op
	Addr        uint64 // union: addr, splice_off_in
	Len         uint32 // buffer length or count
	OpFlags     uint32 // union: rw_flags, msg_flags, accept_flags, cancel_flags, poll32_events, ...
	UserData    uint64 // passed back in the CQE
	BufIndex    uint16 // union: buf_index, buf_group
	Personality uint16
	FileIndex   uint32 // union: splice_fd_in, file_index, addr_len
	Addr3       uint64
	pad2        uint64
}

// CQE is struct io_uring_cqe (16 bytes, rings set up without CQE32): one
// completion. [Ring.Reap] copies CQEs out of the shared ring, so a CQE value
// belongs to the caller.
type CQE struct {
	UserData uint64 // the SQE's user data
	Res      int32  // result: bytes, fd, or -errno
	Flags    uint32 // IORING_CQE_F_*; the upper 16 bits carry a buffer id with IORING_CQE_F_BUFFER
}

// sqringOffsets is struct io_sqring_offsets (40 bytes).
type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// cqringOffsets is struct io_cqring_offsets (40 bytes).
type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// params is struct io_uring_params (120 bytes), read and filled in by
// io_uring_setup(2).
type params struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFd         uint32
	resv         [3]uint32
	sqOff        sqringOffsets
	cqOff        cqringOffsets
}

// bufEntry is struct io_uring_buf (16 bytes): one entry of a provided-buffer
// ring. The ring's u16 tail overlays the resv field of entry 0 (struct
// io_uring_buf_ring), at byte 14.
type bufEntry struct {
	addr uint64
	len  uint32
	bid  uint16
	resv uint16
}

// bufReg is struct io_uring_buf_reg (40 bytes), the argument of
// IORING_REGISTER_PBUF_RING and IORING_UNREGISTER_PBUF_RING.
type bufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	flags       uint16 // IOU_PBUF_RING_*
	resv        [3]uint64
}

// probeHeader is struct io_uring_probe (16 bytes) without its flexible ops
// array; probeOp is struct io_uring_probe_op (8 bytes).
type probeHeader struct {
	lastOp uint8
	opsLen uint8
	resv   uint16
	resv2  [3]uint32
}

type probeOp struct {
	op    uint8
	resv  uint8
	flags uint16 // IO_URING_OP_SUPPORTED
	resv2 uint32
}

// rsrcUpdate is struct io_uring_rsrc_update (16 bytes), the argument of
// IORING_REGISTER_RING_FDS.
type rsrcUpdate struct {
	offset uint32
	resv   uint32
	data   uint64
}

// geteventsArg is struct io_uring_getevents_arg (24 bytes), passed with
// IORING_ENTER_EXT_ARG; ts points at a kernelTimespec.
type geteventsArg struct {
	sigmask     uint64
	sigmaskSize uint32
	minWaitUsec uint32 // was pad before Linux 6.12
	ts          uint64
}

// kernelTimespec is struct __kernel_timespec (16 bytes).
type kernelTimespec struct {
	sec  int64
	nsec int64
}

// Sizes the kernel expects for the variable parts.
const (
	sqeSize      = 64
	cqeSize      = 16
	bufEntrySize = 16
	bufTailOff   = 14 // offset of io_uring_buf_ring.tail
	probeOps     = 256
)

// Setup flags (io_uring_params.flags).
const (
	setupCQSize        = 1 << 3  // IORING_SETUP_CQSIZE
	setupClamp         = 1 << 4  // IORING_SETUP_CLAMP
	setupSubmitAll     = 1 << 7  // IORING_SETUP_SUBMIT_ALL (5.18)
	setupCoopTaskrun   = 1 << 8  // IORING_SETUP_COOP_TASKRUN (5.19)
	setupTaskrunFlag   = 1 << 9  // IORING_SETUP_TASKRUN_FLAG (5.19)
	setupSingleIssuer  = 1 << 12 // IORING_SETUP_SINGLE_ISSUER (6.0)
	setupDeferTaskrun  = 1 << 13 // IORING_SETUP_DEFER_TASKRUN (6.1)
	setupNoSQArray     = 1 << 16 // IORING_SETUP_NO_SQARRAY (6.6), not used
	setupRegisteredFdO = 1 << 15 // IORING_SETUP_REGISTERED_FD_ONLY (6.5), not used
)

// Feature bits (io_uring_params.features).
const (
	featSingleMmap     = 1 << 0  // IORING_FEAT_SINGLE_MMAP (5.4)
	featNoDrop         = 1 << 1  // IORING_FEAT_NODROP (5.5)
	featFastPoll       = 1 << 5  // IORING_FEAT_FAST_POLL (5.7)
	featExtArg         = 1 << 8  // IORING_FEAT_EXT_ARG (5.11)
	featRecvSendBundle = 1 << 14 // IORING_FEAT_RECVSEND_BUNDLE (6.10)
)

// Opcodes (enum io_uring_op) used by this package.
const (
	OpNop         = 0  // IORING_OP_NOP
	OpPollAdd     = 6  // IORING_OP_POLL_ADD
	OpAccept      = 13 // IORING_OP_ACCEPT
	OpAsyncCancel = 14 // IORING_OP_ASYNC_CANCEL
	OpClose       = 19 // IORING_OP_CLOSE
	OpRecv        = 27 // IORING_OP_RECV
)

// SQE flags (sqe.flags).
const (
	sqeFixedFile    = 1 << 0 // IOSQE_FIXED_FILE
	sqeBufferSelect = 1 << 5 // IOSQE_BUFFER_SELECT
	sqeCQESkip      = 1 << 6 // IOSQE_CQE_SKIP_SUCCESS
)

// Receive, accept, poll and cancel flags.
const (
	recvMultishot   = 1 << 1 // IORING_RECV_MULTISHOT, in sqe.ioprio (6.0)
	recvBundle      = 1 << 4 // IORING_RECVSEND_BUNDLE, in sqe.ioprio (6.10)
	acceptMultishot = 1 << 0 // IORING_ACCEPT_MULTISHOT, in sqe.ioprio (5.19)
	pollAddMulti    = 1 << 0 // IORING_POLL_ADD_MULTI, in sqe.len (5.13)
	cancelAll       = 1 << 0 // IORING_ASYNC_CANCEL_ALL
	cancelFd        = 1 << 1 // IORING_ASYNC_CANCEL_FD
)

// CQE flags (cqe.flags).
const (
	CQEFBuffer       = 1 << 0 // IORING_CQE_F_BUFFER: the upper 16 bits are a buffer id
	CQEFMore         = 1 << 1 // IORING_CQE_F_MORE: the request stays armed and posts more CQEs
	CQEFSockNonempty = 1 << 2 // IORING_CQE_F_SOCK_NONEMPTY: more data waits in the socket
	CQEFBufMore      = 1 << 4 // IORING_CQE_F_BUF_MORE: incremental buffer, the kernel keeps filling it (6.12)
	cqeBufferShift   = 16     // IORING_CQE_BUFFER_SHIFT
)

// SQ ring flags (the shared sq flags word).
const (
	sqNeedWakeup = 1 << 0 // IORING_SQ_NEED_WAKEUP
	sqCQOverflow = 1 << 1 // IORING_SQ_CQ_OVERFLOW
	sqTaskrun    = 1 << 2 // IORING_SQ_TASKRUN
)

// io_uring_enter(2) flags.
const (
	enterGetEvents      = 1 << 0 // IORING_ENTER_GETEVENTS
	enterExtArg         = 1 << 3 // IORING_ENTER_EXT_ARG
	enterRegisteredRing = 1 << 4 // IORING_ENTER_REGISTERED_RING (5.18)
)

// io_uring_register(2) opcodes.
const (
	registerEventfd         = 4  // IORING_REGISTER_EVENTFD
	unregisterEventfd       = 5  // IORING_UNREGISTER_EVENTFD
	registerProbe           = 8  // IORING_REGISTER_PROBE
	registerRingFds         = 20 // IORING_REGISTER_RING_FDS (5.18)
	unregisterRingFds       = 21 // IORING_UNREGISTER_RING_FDS
	registerPbufRing        = 22 // IORING_REGISTER_PBUF_RING (5.19)
	unregisterPbufRing      = 23 // IORING_UNREGISTER_PBUF_RING
	registerUseRegisteredRg = 1 << 31
)

// Provided-buffer ring registration flags (io_uring_buf_reg.flags).
const (
	pbufRingInc = 1 << 1 // IOU_PBUF_RING_INC (6.12)
)

// mmap offsets of the shared regions.
const (
	offSQRing = 0          // IORING_OFF_SQ_RING
	offSQEs   = 0x10000000 // IORING_OFF_SQES
)

const opSupported = 1 << 0 // IO_URING_OP_SUPPORTED

//go:build linux

package unix_test

import (
	"io"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/internal/unix"
)

// PeekEnd tells bytes waiting, nothing yet and an end of stream apart,
// takes nothing, and allocates nothing but an error (the engines call it on
// their loops).
func TestPeekEnd(t *testing.T) {
	fds := nonblockingPair(t)
	end, waiting := unix.PeekEnd(fds[0])
	assert.NoError(t, end, "nothing to read yet")
	assert.False(t, waiting, "nothing to read yet")
	_, err := syscall.Write(fds[1], []byte("ab"))
	require.NoError(t, err)
	end, waiting = unix.PeekEnd(fds[0])
	require.NoError(t, end)
	assert.True(t, waiting, "a byte waits")
	assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = unix.PeekEnd(fds[0]) }))
	var buf [4]byte
	got, err := syscall.Read(fds[0], buf[:])
	require.NoError(t, err)
	assert.Equal(t, "ab", string(buf[:got]), "the peek took nothing")
	require.NoError(t, syscall.Shutdown(fds[1], syscall.SHUT_WR))
	end, waiting = unix.PeekEnd(fds[0])
	assert.ErrorIs(t, end, io.EOF, "the end of the stream")
	assert.False(t, waiting)
}

// nonblockingPair returns a connected AF_UNIX stream pair, the first end
// non-blocking, both closed when the test ends.
func nonblockingPair(t *testing.T) [2]int {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = syscall.Close(fds[0])
		_ = syscall.Close(fds[1])
	})
	require.NoError(t, syscall.SetNonblock(fds[0], true))
	return fds
}

// RecvDontWait reads what is queued without waiting, on a blocking socket
// too: the bytes, then unix.EAGAIN, then 0 with no error at the end of stream.
func TestRecvDontWait(t *testing.T) {
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer func() { assert.NoError(t, unix.Close(pair[0])) }()
	buf := make([]byte, 8)
	_, err = unix.RecvDontWait(pair[0], buf)
	assert.ErrorIs(t, err, unix.EAGAIN, "nothing queued on a blocking socket")
	_, err = unix.Write(pair[1], []byte("hello, world"))
	require.NoError(t, err)
	n, err := unix.RecvDontWait(pair[0], buf)
	require.NoError(t, err)
	assert.Equal(t, "hello, w", string(buf[:n]))
	n, err = unix.RecvDontWait(pair[0], buf)
	require.NoError(t, err)
	assert.Equal(t, "orld", string(buf[:n]))
	_, err = unix.RecvDontWait(pair[0], nil)
	assert.ErrorIs(t, err, unix.EINVAL, "an empty buffer")
	require.NoError(t, unix.Close(pair[1]))
	n, err = unix.RecvDontWait(pair[0], buf)
	assert.NoError(t, err)
	assert.Zero(t, n, "end of stream")
}

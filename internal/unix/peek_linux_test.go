//go:build linux

package unix_test

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/internal/unix"
)

// PeekByte tells bytes waiting, nothing yet and an end of stream apart,
// takes nothing, and allocates nothing (the engines call it on their loops).
func TestPeekByte(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer syscall.Close(fds[0])
	require.NoError(t, syscall.SetNonblock(fds[0], true))
	_, err = unix.PeekByte(fds[0])
	assert.ErrorIs(t, err, unix.EAGAIN, "nothing to read yet")
	_, err = syscall.Write(fds[1], []byte("ab"))
	require.NoError(t, err)
	n, err := unix.PeekByte(fds[0])
	require.NoError(t, err)
	assert.Equal(t, 1, n, "a byte waits")
	assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = unix.PeekByte(fds[0]) }))
	var buf [4]byte
	got, err := syscall.Read(fds[0], buf[:])
	require.NoError(t, err)
	assert.Equal(t, "ab", string(buf[:got]), "the peek took nothing")
	require.NoError(t, syscall.Close(fds[1]))
	n, err = unix.PeekByte(fds[0])
	require.NoError(t, err)
	assert.Zero(t, n, "the end of the stream")
}

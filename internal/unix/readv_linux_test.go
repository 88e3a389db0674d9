//go:build linux

package unix_test

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/internal/unix"
)

// Readv fills the buffers in order, skips empty ones, uses at most
// MaxReadv of them, reports EAGAIN on an empty non-blocking socket and
// allocates nothing.
func TestReadv(t *testing.T) {
	fds := nonblockingPair(t)
	_, err := unix.Readv(fds[0], [][]byte{make([]byte, 4)})
	assert.ErrorIs(t, err, unix.EAGAIN, "nothing to read yet")

	_, err = syscall.Write(fds[1], []byte("0123456789"))
	require.NoError(t, err)
	a, b, c := make([]byte, 3), make([]byte, 4), make([]byte, 5)
	n, err := unix.Readv(fds[0], [][]byte{a, nil, b, c})
	require.NoError(t, err)
	assert.Equal(t, 10, n)
	assert.Equal(t, "012", string(a))
	assert.Equal(t, "3456", string(b))
	assert.Equal(t, "789", string(c[:3]))

	n, err = unix.Readv(fds[0], nil)
	assert.NoError(t, err, "no room: no system call")
	assert.Zero(t, n)

	// Only the first MaxReadv buffers are read into.
	bufs := make([][]byte, unix.MaxReadv+2)
	for i := range bufs {
		bufs[i] = make([]byte, 1)
	}
	sent := make([]byte, unix.MaxReadv+2)
	for i := range sent {
		sent[i] = 'a' + byte(i%26)
	}
	_, err = syscall.Write(fds[1], sent)
	require.NoError(t, err)
	n, err = unix.Readv(fds[0], bufs)
	require.NoError(t, err)
	assert.Equal(t, unix.MaxReadv, n)
	assert.Equal(t, sent[unix.MaxReadv-1:unix.MaxReadv], bufs[unix.MaxReadv-1])
	assert.Zero(t, bufs[unix.MaxReadv][0], "a buffer past MaxReadv was written")
	past := make([]byte, 8)
	k, err := unix.Read(fds[0], past)
	require.NoError(t, err)
	require.Equal(t, 2, k, "the bytes past MaxReadv stayed in the socket")

	one := [][]byte{make([]byte, 1)}
	_, err = syscall.Write(fds[1], make([]byte, 200)) // a byte for each run below
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := unix.Readv(fds[0], one); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs)
	rest := [][]byte{make([]byte, 200)}
	n, err = unix.Readv(fds[0], rest)
	require.NoError(t, err)
	require.Positive(t, n, "what the runs above left")
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		_, _ = unix.Readv(fds[0], rest) // EAGAIN
	}))
}

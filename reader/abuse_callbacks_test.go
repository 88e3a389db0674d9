package reader_test

import (
	"bytes"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/reader"
)

// Every callback panics once; the Reader must stay usable: the rest of the
// stream reads back complete and in order, and Close returns every block.
func TestPanickingCallbacksLeaveTheReaderUsable(t *testing.T) {
	data := strings.Repeat("0123456789abcdef\n", 2000) // 34000 bytes over 4 KiB blocks
	a, err := arena.New(arena.Config{BlockSize: arena.MinBlockSize, Blocks: 4, Debug: true})
	require.NoError(t, err)
	defer func() { require.NoError(t, a.Close()) }()
	chunks := []int{}
	for left := len(data); left > 0; left -= 777 {
		chunks = append(chunks, min(777, left))
	}
	r, err := reader.NewReader(&chunkReader{data: []byte(data), chunks: chunks, end: io.EOF}, reader.WithArena(a))
	require.NoError(t, err)
	var got []byte
	boom := func(f func()) {
		defer func() { require.NotNil(t, recover()) }()
		f()
	}
	for round := 0; round < 5; round++ {
		boom(func() { _ = r.ReadRange(5000, func(b []byte) { panic("x") }) })
		boom(func() { _ = r.Peek(3000, func([][]byte) { panic("x") }) })
		boom(func() { _ = r.ReadSlice('\n', func([][]byte) { panic("x") }) })
		boom(func() { _ = r.ReadLine(func([][]byte) { panic("x") }) })
		// After the panics the Reader must not be stuck in a callback.
		require.NoError(t, r.ReadRange(5, func(b []byte) { got = append(got, b...) }))
		b, err := r.ReadByte()
		require.NoError(t, err)
		got = append(got, b)
		require.NoError(t, r.UnreadByte())
		b, _ = r.ReadByte()
		_ = b
		// partial streaming ReadRange panicking in its second view
		n := 0
		boom(func() {
			_ = r.ReadRange(9000, func(b []byte) {
				if n > 0 {
					panic("x")
				}
				n++
				got = append(got, b...)
			})
		})
	}
	var rest bytes.Buffer
	_, err = r.WriteTo(&rest)
	require.NoError(t, err)
	got = append(got, rest.Bytes()...)
	require.Equal(t, len(data), len(got))
	assert.True(t, bytes.Equal([]byte(data), got), "bytes lost, duplicated or reordered")
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

// Huge and negative counts: clear sentinels, nothing consumed.
func TestHugeAndNegativeCountsConsumeNothing(t *testing.T) {
	r, a := newPull(t, "hello world", []int{3, 8})
	for _, n := range []int{-1, math.MinInt, math.MaxInt, r.Limit() + 1} {
		_, err := r.Retain(n)
		assert.Error(t, err, "Retain(%d)", n)
		assert.Error(t, r.Peek(n, func([][]byte) {}), "Peek(%d)", n)
		assert.Error(t, r.Wait(t.Context(), n), "Wait(%d)", n)
		if n < 0 {
			assert.ErrorIs(t, r.ReadRange(n, func([]byte) {}), reader.ErrNegativeCount)
			d, err := r.Discard(n)
			assert.ErrorIs(t, err, reader.ErrNegativeCount)
			assert.Zero(t, d)
		}
	}
	var got []byte
	require.NoError(t, r.ReadRange(11, func(b []byte) { got = append(got, b...) }))
	assert.Equal(t, "hello world", string(got))
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

// overReader claims more bytes than it was given after some good reads.
type overReader struct{ n int }

func (o *overReader) Read(p []byte) (int, error) {
	o.n++
	if o.n == 1 {
		return copy(p, "abc"), nil
	}
	return len(p) + 1, nil
}

func TestOversizedReadCountEndsTheStream(t *testing.T) {
	r, err := reader.NewReader(&overReader{})
	require.NoError(t, err)
	defer r.Close()
	err = r.Peek(5, func([][]byte) {})
	require.Error(t, err)
	var got []byte
	require.NoError(t, r.ReadRange(3, func(b []byte) { got = append(got, b...) }), "bytes that arrived stay readable")
	assert.Equal(t, "abc", string(got))
	_, err = r.ReadByte()
	assert.ErrorIs(t, err, reader.ErrInvalidCount)
}

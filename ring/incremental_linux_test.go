//go:build linux

package ring

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/unix"
)

// next waits for the next completion with user data ud (others are
// unexpected here).
func (x *recvRig) next(t *testing.T, ud uint64) Recv {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := x.r.SubmitAndWaitTimeout(1, 50*time.Millisecond); err != nil && !errors.Is(err, unix.ETIME) {
			require.NoError(t, err)
		}
		n, err := x.r.Reap(x.cqes[:1])
		require.NoError(t, err)
		if n == 1 {
			require.Equal(t, ud, x.cqes[0].UserData)
			return DecodeRecv(x.cqes[0])
		}
	}
	t.Fatal("no completion")
	return Recv{}
}

// Incremental mode, on the real kernel: a block left partly filled (BUF_MORE)
// by a receive that then ends with a completion carrying no buffer (end of
// stream) stays in the ring and goes on filling for another connection, at
// the offset Claim reports; DiscardUnfilled in between keeps the bytes
// already delivered; the receive that fills it to its end hands it over
// (no BUF_MORE) and Refill publishes it again once released. Held and the
// arena's InUse agree with the kernel at every step: no block leaks, none
// is published twice.
func TestIncrementalBlockOutlivesItsReceive(t *testing.T) {
	noLeaks(t)
	if !Probe().IncrementalBuffers.OK || !Probe().DeferTaskrun.OK {
		t.Skip("incremental buffer rings (6.12) and DEFER_TASKRUN needed")
	}
	const bs = 16 << 10
	x := newRecvRig(t, Config{}, 2, bs)
	require.True(t, x.br.Incremental())
	require.True(t, x.r.DeferTaskrun())
	fdA, peerA := socketpair(t)
	fdB, peerB := socketpair(t)

	x.r.GetSQE().PrepRecvMultishot(fdA, x.br.Group(), 1)
	msgA := bytes.Repeat([]byte{'a'}, 100)
	_, err := peerA.Write(msgA)
	require.NoError(t, err)
	rv := x.next(t, 1)
	require.Equal(t, 100, rv.N)
	require.True(t, rv.BufMore, "a 100-byte receive leaves the block to the kernel")
	refA, off := x.br.Claim(rv.Buf, rv.N, rv.BufMore)
	require.Zero(t, off)
	blk := rv.Buf
	assert.Equal(t, 2, x.br.Held())

	require.NoError(t, peerA.Close())
	rv = x.next(t, 1)
	require.True(t, rv.EOF)
	require.False(t, rv.HasBuf, "end of stream carries no buffer")
	assert.Equal(t, 2, x.br.Held(), "the partly filled block is still the kernel's")
	assert.Equal(t, 2, x.a.InUse())

	// Idle: every completion reaped and claimed, the kernel writes only in
	// our enter.
	assert.Equal(t, 1, x.br.DiscardUnfilled(), "the untouched block is given back whole")
	assert.Zero(t, x.br.DiscardUnfilled(), "and not again")
	assert.Equal(t, msgA, x.a.Bytes(blk)[:100], "delivered bytes survive")

	x.r.GetSQE().PrepRecvMultishot(fdB, x.br.Group(), 2)
	msgB := bytes.Repeat([]byte{'b'}, 200)
	_, err = peerB.Write(msgB)
	require.NoError(t, err)
	rv = x.next(t, 2)
	require.Equal(t, 200, rv.N)
	require.Equal(t, blk, rv.Buf, "the kernel goes on in the same block")
	refB, off := x.br.Claim(rv.Buf, rv.N, rv.BufMore)
	require.Equal(t, 100, off)
	assert.Equal(t, msgB, x.a.Bytes(blk)[off:off+200])

	// Fill the rest of the block exactly: the last receive in it hands it over.
	rest := bytes.Repeat([]byte{'c'}, bs-300)
	_, err = peerB.Write(rest)
	require.NoError(t, err)
	var got []byte
	refs := []arena.Ref{refA, refB}
	for len(got) < len(rest) {
		rv = x.next(t, 2)
		require.Positive(t, rv.N)
		require.Equal(t, blk, rv.Buf)
		ref, off := x.br.Claim(rv.Buf, rv.N, rv.BufMore)
		got = append(got, x.a.Bytes(blk)[off:off+rv.N]...)
		refs = append(refs, ref)
		if len(got) < len(rest) {
			assert.True(t, rv.BufMore)
		}
	}
	assert.False(t, rv.BufMore, "the receive that fills the block ends it")
	assert.Equal(t, rest, got)
	assert.Equal(t, 1, x.br.Held())
	assert.Equal(t, 2, x.a.InUse())
	for _, r := range refs {
		x.a.Release(r)
	}
	assert.Equal(t, 1, x.a.InUse())
	assert.Equal(t, 1, x.br.Refill(), "the block is published again once")
	assert.Zero(t, x.br.Refill())
	assert.Equal(t, 2, x.br.Held())

	// Both blocks keep working: the one DiscardUnfilled gave back reads
	// the new bytes, not zeros or stale ones.
	more := bytes.Repeat([]byte{'d'}, bs+50)
	_, err = peerB.Write(more)
	require.NoError(t, err)
	got = got[:0]
	for len(got) < len(more) {
		rv = x.next(t, 2)
		require.Positive(t, rv.N)
		ref, off := x.br.Claim(rv.Buf, rv.N, rv.BufMore)
		got = append(got, x.a.Bytes(rv.Buf)[off:off+rv.N]...)
		x.a.Release(ref)
		x.br.Refill()
	}
	assert.Equal(t, more, got)
	require.NoError(t, peerB.Close())
	rv = x.next(t, 2)
	assert.True(t, rv.EOF)
	assert.Equal(t, 2, x.br.Held())
}

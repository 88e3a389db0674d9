package ring

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/zcio/zcio/internal/unix"
)

// TestDecodeRecv: each kind of multishot receive completion becomes the
// plain values the package doc promises.
func TestDecodeRecv(t *testing.T) {
	buf := func(id uint16) uint32 { return uint32(id)<<cqeBufferShift | CQEFBuffer }
	for _, tc := range []struct {
		name string
		cqe  CQE
		want Recv
	}{
		{"data, armed", CQE{Res: 100, Flags: buf(7) | CQEFMore},
			Recv{Buf: 7, HasBuf: true, N: 100, More: true}},
		{"data, incremental", CQE{Res: 60, Flags: buf(65535) | CQEFMore | CQEFBufMore},
			Recv{Buf: 65535, HasBuf: true, N: 60, More: true, BufMore: true}},
		{"data, ended", CQE{Res: 1, Flags: buf(0)}, Recv{HasBuf: true, N: 1}},
		{"end of stream", CQE{Res: 0}, Recv{EOF: true}},
		{"ring dry", CQE{Res: -int32(unix.ENOBUFS)}, Recv{NoBuffers: true}},
		{"reset", CQE{Res: -int32(unix.ECONNRESET)}, Recv{Errno: unix.ECONNRESET}},
		{"cancelled", CQE{Res: -int32(unix.ECANCELED)}, Recv{Errno: unix.ECANCELED}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DecodeRecv(tc.cqe)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.want.Errno != 0, got.Err() != nil)
			assert.Equal(t, !got.More && !got.EOF && got.Errno == 0, got.Rearm())
		})
	}
	assert.ErrorIs(t, DecodeRecv(CQE{Res: -int32(unix.ECONNRESET)}).Err(), unix.ECONNRESET)
	assert.NoError(t, DecodeRecv(CQE{Res: -int32(unix.ENOBUFS)}).Err(), "a dry ring is not an error")
}

// FuzzDecodeRecv: whatever the kernel posts, exactly one of data, end of
// stream, dry ring and error holds, and the buffer id is the flags' top half.
func FuzzDecodeRecv(f *testing.F) {
	f.Add(int32(100), uint32(7<<16|CQEFBuffer|CQEFMore))
	f.Add(int32(0), uint32(0))
	f.Add(-int32(unix.ENOBUFS), uint32(0))
	f.Add(int32(-1<<31), uint32(0xffffffff))
	f.Fuzz(func(t *testing.T, res int32, flags uint32) {
		r := DecodeRecv(CQE{Res: res, Flags: flags})
		kinds := 0
		for _, k := range []bool{r.N > 0, r.EOF, r.NoBuffers, r.Errno != 0} {
			if k {
				kinds++
			}
		}
		assert.Equal(t, 1, kinds, "%+v", r)
		assert.Equal(t, uint16(flags>>16), r.Buf)
		assert.Equal(t, flags&CQEFBuffer != 0, r.HasBuf)
		assert.Equal(t, flags&CQEFMore != 0, r.More)
		if res > 0 {
			assert.Equal(t, int(res), r.N)
		}
	})
}

// TestIndexArithmetic: free-running counters wrap in their own width.
func TestIndexArithmetic(t *testing.T) {
	assert.Equal(t, uint32(5), queued(0xffff_fffe, 3))
	assert.Equal(t, uint32(3), free(0xffff_fffe, 3, 8))
	assert.Equal(t, uint32(0), free(10, 18, 8), "full")
	assert.Equal(t, uint32(3), slot(0xffff_fffb, 7))
	assert.Equal(t, uint16(2), bufQueued(0xffff, 1))
	for n, want := range map[uint32]uint32{1: 1, 2: 2, 3: 4, 1000: 1024, 32768: 32768, 1<<31 - 1: 1 << 31} {
		assert.Equal(t, want, roundPow2(n), "roundPow2(%d)", n)
		assert.True(t, powerOfTwo(want))
	}
	assert.False(t, powerOfTwo(0))
	assert.False(t, powerOfTwo(6))
}

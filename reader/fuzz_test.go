package reader_test

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/reader/readertest"
)

// FuzzReader drives random sequences of Reader calls against the model over
// a stream of the fuzzer's bytes (plus generated text and varints), in random
// chunks, through the pull adapter or a segment queue.
//
// Arguments: ops (3 bytes per call, see readertest.DecodeOps), the data, a
// seed for chunking and extra data, the arena size (low 3 bits: blocks-2;
// top bit: use a segment queue), and flags (bit 0: end with an error; bits
// 1-7: extra generated data in 256-byte units; maxLine from seed).
func FuzzReader(f *testing.F) {
	var varints []byte
	for _, v := range []uint64{0, 1, 127, 128, 300, 1 << 35, 1<<64 - 1} {
		varints = binary.AppendUvarint(varints, v)
	}
	f.Add([]byte("\x0e\x00\x00\x0e\x00\x00\x0d\x00\x00"), []byte("a\r\nbb\ncc"), uint64(1), uint8(0), uint8(0))
	f.Add([]byte("\x0b\x00\x00\x0b\x00\x00\x0c\x00\x00\x04\x00\x00\x03\x00\x00"), varints, uint64(2), uint8(1), uint8(2))
	f.Add([]byte("\x05\x00\x00\x06\x00\x00\x07\x00\x00\x08\x00\x00\x09\x00\x00\x0a\x00\x00"), []byte("0123456789abcdefghijklmnopqrstuvwxyz"), uint64(3), uint8(0x80), uint8(1))
	f.Add([]byte("\x01\xff\x00\x00\xff\x01\x10\xcf\xff\x0f\x00\x20\x12\x00\x00"), []byte("hello"), uint64(4), uint8(2), uint8(100))
	f.Add([]byte("\x11\x00\x00\x0f\x00\x30\x02\x00\x05\x12\x00\x00"), []byte("xyz"), uint64(5), uint8(0x83), uint8(41))
	f.Fuzz(func(t *testing.T, ops, data []byte, seed uint64, size, flags uint8) {
		rng := rand.New(rand.NewPCG(seed, 77))
		s := readertest.Stream{BlockSize: arena.MinBlockSize, Blocks: 2 + int(size&7)%5, End: io.EOF}
		if flags&1 != 0 {
			s.End = readertest.ErrStream
		}
		s.Data = append(append([]byte(nil), data...), readertest.RandomData(rng, int(flags>>1)*256)...)
		s.Chunks = readertest.RandomChunks(rng, len(s.Data), 3*s.BlockSize)
		sc := readertest.Scenario{Stream: s, Ops: readertest.DecodeOps(ops, (s.Blocks-1)*s.BlockSize)}
		if seed%3 == 0 {
			sc.MaxLine = 1 + int(seed>>8)%200
		}
		factory := pullFactory
		if size&0x80 != 0 {
			factory = queueFactory
		}
		readertest.Check(t, factory, sc)
	})
}

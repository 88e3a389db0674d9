package proto

import (
	"encoding/binary"
	"math"
)

// HeaderSize is the size of a frame header: a big-endian uint32 payload length.
const HeaderSize = 4

// AppendFrame appends one frame carrying payload to dst and returns the result.
func AppendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// FrameSink decodes a stream of length-prefixed frames delivered in chunks of
// any size. It touches the first and last byte of every payload chunk (so a
// server cannot skip the data) and counts complete frames.
// The zero value is ready to use; it never retains a chunk.
type FrameSink struct {
	Msgs uint64 // complete frames seen so far
	rem  uint32 // payload bytes left in the current frame
	hdr  [HeaderSize]byte
	hn   uint8
	Sum  byte // xor of touched bytes: keeps the touch from being optimised away
}

// Feed consumes b and returns how many frames it completed.
func (s *FrameSink) Feed(b []byte) int {
	done := 0
	for len(b) > 0 {
		if s.rem == 0 {
			k := copy(s.hdr[s.hn:], b)
			s.hn += uint8(k)
			b = b[k:]
			if s.hn < HeaderSize {
				break
			}
			s.hn = 0
			s.rem = binary.BigEndian.Uint32(s.hdr[:])
			if s.rem == 0 {
				done++
			}
			continue
		}
		k := int(min(s.rem, uint32(min(len(b), math.MaxUint32))))
		s.Sum ^= b[0] ^ b[k-1]
		s.rem -= uint32(k)
		b = b[k:]
		if s.rem == 0 {
			done++
		}
	}
	s.Msgs += uint64(done)
	return done
}

// Mid reports whether the sink is inside a frame (a header or payload is
// partly read).
func (s *FrameSink) Mid() bool { return s.hn != 0 || s.rem != 0 }

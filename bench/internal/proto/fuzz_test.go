package proto

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// splitAt feeds b to fn in pieces cut at the offsets cuts picks (each byte
// of cuts is the next piece's length, 0 meaning 1), the rest in one piece.
func splitAt(b, cuts []byte, fn func([]byte)) {
	for _, c := range cuts {
		if len(b) == 0 {
			return
		}
		k := min(len(b), max(int(c), 1))
		fn(b[:k])
		b = b[k:]
	}
	if len(b) > 0 {
		fn(b)
	}
}

// FuzzFrameSink: any bytes, cut anywhere, decode to the same frames, the
// same position inside a frame and the same touched bytes as the whole
// stream fed at once, and byte by byte.
func FuzzFrameSink(f *testing.F) {
	f.Add(AppendFrame(AppendFrame(nil, []byte("hello")), nil), []byte{3, 1, 4})
	f.Add([]byte{0, 0, 0}, []byte{1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2}, []byte{5})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		var whole, cut, bytewise FrameSink
		n := whole.Feed(stream)
		assert.Equal(t, uint64(n), whole.Msgs)
		splitAt(stream, cuts, func(b []byte) { cut.Feed(b) })
		for i := range stream {
			bytewise.Feed(stream[i : i+1])
		}
		for _, s := range []*FrameSink{&cut, &bytewise} {
			assert.Equal(t, whole.Msgs, s.Msgs)
			assert.Equal(t, whole.Mid(), s.Mid())
			assert.Equal(t, whole.rem, s.rem)
			assert.Equal(t, whole.hn, s.hn)
		}
		// Every frame has a 4-byte header: no more frames than headers fit.
		assert.LessOrEqual(t, whole.Msgs, uint64(len(stream)/HeaderSize))
	})
}

// FuzzRESPServer: any bytes, cut anywhere, give the same responses, the
// same request count and the same verdict as the whole stream fed at once;
// a broken stream ends in exactly one protocol error and nothing after it.
func FuzzRESPServer(f *testing.F) {
	f.Add(append(append([]byte{}, PingRequest...), GetRequest...), []byte{2, 7})
	f.Add([]byte("*1\r\n$3\r\nFOO\r\n"), []byte{1, 1, 1})
	f.Add([]byte("GET key\r\n"), []byte{})
	f.Add([]byte("*0\r\n*1\r\n$0\r\n\r\n"), []byte{4})
	f.Add([]byte("*1\r\n$99999999\r\n"), []byte{6})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		var whole, cut RESPServer
		want := whole.Feed(stream, nil)
		var got []byte
		splitAt(stream, cuts, func(b []byte) { got = cut.Feed(b, got) })
		assert.Equal(t, string(want), string(got))
		assert.Equal(t, whole.Reqs, cut.Reqs)
		assert.Equal(t, whole.Broken(), cut.Broken())
		if whole.Broken() {
			assert.Equal(t, string(ProtoError), string(want[len(want)-len(ProtoError):]), "a broken stream ends in the protocol error")
			assert.Equal(t, string(want), string(whole.Feed([]byte("*1\r\n$4\r\nPING\r\n"), want)), "nothing after the break")
		}
	})
}

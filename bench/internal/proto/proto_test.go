package proto

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// feedChunked feeds b to fn in random chunks of 1..maxChunk bytes.
func feedChunked(rng *rand.Rand, b []byte, maxChunk int, fn func([]byte)) {
	for len(b) > 0 {
		k := min(len(b), 1+rng.IntN(maxChunk))
		fn(b[:k])
		b = b[k:]
	}
}

func TestFrameSinkAnyChunking(t *testing.T) {
	var stream []byte
	sizes := []int{0, 1, 3, 4, 5, 64, 1024, 70000}
	for _, n := range sizes {
		stream = AppendFrame(stream, bytes.Repeat([]byte{0xab}, n))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, maxChunk := range []int{1, 2, 7, 4096, 1 << 20} {
		var s FrameSink
		total := 0
		feedChunked(rng, stream, maxChunk, func(b []byte) { total += s.Feed(b) })
		assert.Equal(t, len(sizes), total, "maxChunk=%d", maxChunk)
		assert.Equal(t, uint64(len(sizes)), s.Msgs)
		assert.False(t, s.Mid())
	}
}

func TestFrameSinkPartial(t *testing.T) {
	var s FrameSink
	f := AppendFrame(nil, []byte("hello"))
	assert.Equal(t, 0, s.Feed(f[:6]))
	assert.True(t, s.Mid())
	assert.Equal(t, 1, s.Feed(f[6:]))
	assert.False(t, s.Mid())
}

func TestFrameSinkNoAllocs(t *testing.T) {
	f := AppendFrame(nil, make([]byte, 1024))
	var s FrameSink
	allocs := testing.AllocsPerRun(100, func() { s.Feed(f) })
	assert.Zero(t, allocs)
}

func TestRESPServerPipelinedAnyChunking(t *testing.T) {
	var in, want []byte
	for i := range 50 {
		if i%2 == 0 {
			in = append(in, PingRequest...)
			want = append(want, PongResponse...)
		} else {
			in = append(in, GetRequest...)
			want = append(want, GetResponse...)
		}
	}
	in = append(in, "*1\r\n$3\r\nFOO\r\n"...)
	want = append(want, ErrResponse...)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, maxChunk := range []int{1, 3, 16, 1 << 16} {
		var p RESPServer
		var out []byte
		feedChunked(rng, in, maxChunk, func(b []byte) { out = p.Feed(b, out) })
		require.False(t, p.Broken())
		assert.Equal(t, string(want), string(out), "maxChunk=%d", maxChunk)
		assert.Equal(t, uint64(51), p.Reqs)
	}
}

func TestRESPServerRejectsGarbage(t *testing.T) {
	var p RESPServer
	out := p.Feed([]byte("GET key\r\n"), nil)
	assert.True(t, p.Broken())
	assert.Equal(t, string(ProtoError), string(out))
}

func TestRESPServerNoAllocs(t *testing.T) {
	var p RESPServer
	out := make([]byte, 0, 1024)
	req := append(append([]byte{}, PingRequest...), GetRequest...)
	allocs := testing.AllocsPerRun(100, func() { out = p.Feed(req, out[:0]) })
	assert.Zero(t, allocs)
}

func TestHello(t *testing.T) {
	b := AppendHello(nil, RolePublisher, 42)
	require.Len(t, b, HelloSize)
	role, id := ParseHello(b)
	assert.Equal(t, byte(RolePublisher), role)
	assert.Equal(t, uint32(42), id)
}

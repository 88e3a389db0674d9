package server

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"

	"github.com/zcio/zcio/bench/internal/proto"
)

// The idle scenario measures what a connection costs a server, so the
// session every contender keeps per connection must stay small.
func TestSessionIsSmall(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(Session{}), uintptr(48))
	assert.LessOrEqual(t, unsafe.Sizeof(proto.FrameSink{}), uintptr(24))

	noWriter := func() Writer { panic("the stream scenario asked for a writer") }
	var s *Session
	allocs := testing.AllocsPerRun(100, func() { s = NewSession(ScenarioStream, noWriter) })
	Global.Conns.Add(-101) // AllocsPerRun runs the function once more to warm up
	assert.Equal(t, 1.0, allocs, "one allocation: the Session itself")
	assert.Nil(t, s.Out())
	assert.False(t, s.Broken())
	assert.Equal(t, ScenarioStream, s.Scenario())
}

func TestSessionKeepsItsOutputBuffer(t *testing.T) {
	s := NewSession(ScenarioReqResp, nil)
	defer s.Close()
	out := s.Feed(proto.PingRequest, s.Out())
	assert.Equal(t, string(proto.PongResponse), string(out))
	s.KeepOut(out)
	again := s.Out()
	assert.Empty(t, again)
	assert.GreaterOrEqual(t, cap(again), len(proto.PongResponse))
	assert.Equal(t, ScenarioReqResp, s.Scenario())
}

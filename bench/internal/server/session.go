package server

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/zcio/zcio/bench/internal/proto"
)

// Scenario names, shared with the harness and the load generator.
const (
	ScenarioStream  = "stream"  // length-prefixed frames, sink
	ScenarioIdle    = "idle"    // many idle connections, then one frame each
	ScenarioGC      = "gc"      // stream sink while the heap holds a large live ballast
	ScenarioReqResp = "reqresp" // pipelined RESP PING/GET
	ScenarioFanout  = "fanout"  // publishers' frames forwarded to subscribers
)

// Counters are the process-wide figures every contender updates.
type Counters struct {
	Bytes     atomic.Uint64 // bytes received from clients
	Msgs      atomic.Uint64 // complete frames or requests handled
	Conns     atomic.Int64  // connections open now
	Forwarded atomic.Uint64 // bytes written to fan-out subscribers
	Errors    atomic.Uint64 // protocol or write errors
}

// Global is the process's counters.
var Global Counters

// Writer sends bytes to a connection. It must be safe to call from any
// goroutine; it may copy b or finish with it before returning.
type Writer func(b []byte) error

// hub routes fan-out streams to their subscribers.
type hub struct {
	mu   sync.RWMutex
	subs map[uint32][]*Session
}

var fanout = hub{subs: map[uint32][]*Session{}}

// Session is one connection's protocol state. It is not safe for concurrent
// Feed calls; Feed keeps no reference to its input. It is small on purpose:
// the idle scenario measures what a connection costs a server, and the
// state only the request/response and fan-out scenarios need is made for
// those alone (ext).
type Session struct {
	frames proto.FrameSink
	ext    *sessionExt // nil in the stream, idle and GC scenarios
	kind   uint8       // kindStream, kindReqResp or kindFanout
	closed bool
}

// sessionExt is the state of the request/response and fan-out scenarios.
type sessionExt struct {
	w       Writer
	resp    proto.RESPServer
	hello   [proto.HelloSize]byte
	helloN  int
	role    byte
	stream  uint32
	wmu     sync.Mutex // serialises forwarded writes to a subscriber
	scratch []byte     // ForwardFrame's header+payload, reused
	out     []byte     // Out's buffer, reused
}

// Session kinds.
const (
	kindStream uint8 = iota // stream, idle, gc: frames in, nothing out
	kindReqResp
	kindFanout
)

// NewSession starts the state of one connection in scenario. writer, called
// only by the fan-out scenario (whose subscribers are written to from other
// connections), returns the connection's Writer; NewSession keeps writer
// itself no longer than the call, so a func literal passed here costs no
// allocation in the other scenarios.
func NewSession(scenario string, writer func() Writer) *Session {
	Global.Conns.Add(1)
	s := &Session{}
	switch scenario {
	case ScenarioReqResp:
		s.kind, s.ext = kindReqResp, &sessionExt{}
	case ScenarioFanout:
		s.kind, s.ext = kindFanout, &sessionExt{w: writer()}
	}
	return s
}

// Out returns an empty buffer for Feed's output that keeps the capacity a
// KeepOut gave back (nil in the scenarios that answer nothing).
func (s *Session) Out() []byte {
	if s.ext == nil {
		return nil
	}
	return s.ext.out[:0]
}

// KeepOut hands Feed's output buffer back to be reused by the next Out.
func (s *Session) KeepOut(out []byte) {
	if s.ext != nil {
		s.ext.out = out[:0]
	}
}

// Feed consumes bytes received on the connection and appends to out what the
// server must send back on it; it returns out.
func (s *Session) Feed(b []byte, out []byte) []byte {
	Global.Bytes.Add(uint64(len(b)))
	switch s.kind {
	case kindReqResp:
		x := s.ext
		before := x.resp.Reqs
		out = x.resp.Feed(b, out)
		Global.Msgs.Add(x.resp.Reqs - before)
		if x.resp.Broken() {
			Global.Errors.Add(1)
		}
	case kindFanout:
		s.feedFanout(b)
	default:
		if n := s.frames.Feed(b); n > 0 {
			Global.Msgs.Add(uint64(n))
		}
	}
	return out
}

// Broken reports whether the peer violated the protocol.
func (s *Session) Broken() bool { return s.kind == kindReqResp && s.ext.resp.Broken() }

// CountFrame records one complete frame whose payload a contender read by
// itself (the bufio + make contender), touching it like FrameSink does.
func (s *Session) CountFrame(payload []byte) {
	Global.Bytes.Add(uint64(proto.HeaderSize + len(payload)))
	Global.Msgs.Add(1)
	if len(payload) > 0 {
		s.frames.Sum ^= payload[0] ^ payload[len(payload)-1]
	}
}

// CountRequest records one complete request of size bytes that a contender
// parsed by itself, and appends the response for command cmd to out.
func (s *Session) CountRequest(size int, cmd []byte, out []byte) []byte {
	Global.Bytes.Add(uint64(size))
	Global.Msgs.Add(1)
	switch {
	case equalFold(cmd, "ping"):
		return append(out, proto.PongResponse...)
	case equalFold(cmd, "get"):
		return append(out, proto.GetResponse...)
	}
	return append(out, proto.ErrResponse...)
}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// Close ends the session: a subscriber leaves its stream.
func (s *Session) Close() {
	if s.closed {
		return
	}
	s.closed = true
	Global.Conns.Add(-1)
	if s.kind != kindFanout || s.ext.role != proto.RoleSubscriber {
		return
	}
	fanout.mu.Lock()
	defer fanout.mu.Unlock()
	list := fanout.subs[s.ext.stream]
	for i, x := range list {
		if x == s {
			fanout.subs[s.ext.stream] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
}

func (s *Session) feedFanout(b []byte) {
	x := s.ext
	if x.helloN < proto.HelloSize {
		k := copy(x.hello[x.helloN:], b)
		x.helloN += k
		b = b[k:]
		if x.helloN < proto.HelloSize {
			return
		}
		s.feedFanoutHello(x.hello[:])
	}
	if len(b) == 0 || x.role != proto.RolePublisher {
		return
	}
	if n := s.frames.Feed(b); n > 0 {
		Global.Msgs.Add(uint64(n))
	}
	s.Forward(b)
}

// Forward sends b, a run of the publisher's frame stream, to every subscriber
// of the session's stream.
func (s *Session) Forward(b []byte) {
	fanout.mu.RLock()
	subs := fanout.subs[s.ext.stream]
	fanout.mu.RUnlock()
	for _, sub := range subs {
		sub.ext.wmu.Lock()
		err := sub.ext.w(b)
		sub.ext.wmu.Unlock()
		if err != nil {
			Global.Errors.Add(1)
			continue
		}
		Global.Forwarded.Add(uint64(len(b)))
	}
}

// ForwardFrame is Forward for a contender that read a whole frame itself: it
// rebuilds the frame so that each subscriber gets one write.
func (s *Session) ForwardFrame(payload []byte) {
	x := s.ext
	x.scratch = binary.BigEndian.AppendUint32(x.scratch[:0], uint32(len(payload)))
	x.scratch = append(x.scratch, payload...)
	s.Forward(x.scratch)
}

// Scenario returns the session's scenario.
func (s *Session) Scenario() string {
	switch s.kind {
	case kindReqResp:
		return ScenarioReqResp
	case kindFanout:
		return ScenarioFanout
	}
	return ScenarioStream
}

// HelloDone reports whether the fan-out hello has been read, and the role.
func (s *Session) HelloDone() (bool, byte) {
	if s.kind != kindFanout {
		return false, 0
	}
	return s.ext.helloN == proto.HelloSize, s.ext.role
}

// SetHello records a hello a contender read by itself.
func (s *Session) SetHello(h []byte) {
	Global.Bytes.Add(proto.HelloSize)
	s.feedFanoutHello(h)
}

func (s *Session) feedFanoutHello(h []byte) {
	x := s.ext
	copy(x.hello[:], h)
	x.helloN = proto.HelloSize
	x.role, x.stream = proto.ParseHello(h)
	if x.role == proto.RoleSubscriber {
		fanout.mu.Lock()
		fanout.subs[x.stream] = append(fanout.subs[x.stream], s)
		fanout.mu.Unlock()
	}
}

package server

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/bench/internal/proto"
)

// runMain starts Main for a contender and returns its address, a function
// that asks for a Snapshot, and one that ends it.
func runMain(t *testing.T, contender, scenario string) (string, func() Snapshot, func()) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Main([]string{"-contender", contender, "-scenario", scenario}, inR, outW)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	require.True(t, lines.Scan())
	addr, ok := strings.CutPrefix(lines.Text(), ReadyPrefix)
	require.True(t, ok, lines.Text())
	stats := func() Snapshot {
		_, err := io.WriteString(inW, "stats\n")
		require.NoError(t, err)
		require.True(t, lines.Scan())
		var s Snapshot
		require.NoError(t, json.Unmarshal(lines.Bytes(), &s))
		return s
	}
	stop := func() {
		_, _ = io.WriteString(inW, "quit\n")
		go func() {
			for lines.Scan() {
			}
		}()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	}
	return addr, stats, stop
}

func waitStats(t *testing.T, stats func() Snapshot, cond func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := stats()
		if cond(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestContendersServeStreamAndRESP(t *testing.T) {
	for _, name := range []string{StdlibReused, StdlibBufio, StdlibPool, Gnet, Netpoll,
		ZcioUringHandler, ZcioUringBlocking, ZcioFallbackHandler, ZcioFallbackBlocking} {
		t.Run("contender="+name, func(t *testing.T) {
			if why := Unavailable(name); why != "" {
				t.Skip(why)
			}
			before := Global.Msgs.Load()
			addr, stats, stop := runMain(t, name, ScenarioReqResp)
			defer stop()
			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
			req := append(append([]byte{}, proto.PingRequest...), proto.GetRequest...)
			_, err = c.Write(req)
			require.NoError(t, err)
			want := string(proto.PongResponse) + string(proto.GetResponse)
			got := make([]byte, len(want))
			_, err = io.ReadFull(c, got)
			require.NoError(t, err)
			assert.Equal(t, want, string(got))
			s := waitStats(t, stats, func(s Snapshot) bool { return s.Msgs >= before+2 })
			assert.GreaterOrEqual(t, s.Msgs, before+2)
			assert.Positive(t, s.RSS)
			assert.Positive(t, s.CPU)
		})
	}
}

func TestFanoutForwardsToSubscriber(t *testing.T) {
	for _, name := range []string{StdlibReused, StdlibBufio, Gnet, Netpoll, ZcioFallbackHandler, ZcioFallbackBlocking} {
		t.Run("contender="+name, func(t *testing.T) { testFanout(t, name) })
	}
}

func testFanout(t *testing.T, name string) {
	addr, _, stop := runMain(t, name, ScenarioFanout)
	defer stop()
	sub, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer sub.Close()
	_, err = sub.Write(proto.AppendHello(nil, proto.RoleSubscriber, 7))
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond) // let the server register the subscriber
	pub, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer pub.Close()
	frame := proto.AppendFrame(nil, []byte("hello subscribers"))
	_, err = pub.Write(append(proto.AppendHello(nil, proto.RolePublisher, 7), frame...))
	require.NoError(t, err)
	require.NoError(t, sub.SetReadDeadline(time.Now().Add(5*time.Second)))
	got := make([]byte, len(frame))
	_, err = io.ReadFull(sub, got)
	require.NoError(t, err)
	assert.Equal(t, frame, got)
}

func TestMainRejectsUnknownContender(t *testing.T) {
	err := Main([]string{"-contender", "nope"}, strings.NewReader(""), io.Discard)
	assert.ErrorIs(t, err, ErrUnknownContender)
}

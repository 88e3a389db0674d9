package reader

import (
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// emfileChildEnv names the engine the child process of
// TestServeOutOfFDs runs with.
const emfileChildEnv = "ZCIO_EMFILE_TEST_CHILD"

// Serve, out of file descriptors, backs off and retries: the connection
// waiting in the backlog is served once descriptors are free again, and a
// Close during a long back-off ends Serve at once, not when the wait is
// over. It runs in a child process because it lowers RLIMIT_NOFILE.
func TestServeOutOfFDs(t *testing.T) {
	if name := os.Getenv(emfileChildEnv); name != "" {
		ran := false
		for _, kind := range engineKinds(t) {
			if kind.String() == name {
				serveOutOfFDs(t, kind)
				ran = true
			}
		}
		require.True(t, ran, "no engine named %q", name)
		return
	}
	for _, kind := range engineKinds(t) {
		t.Run(kind.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestServeOutOfFDs$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), emfileChildEnv+"="+kind.String())
			out, err := cmd.CombinedOutput()
			t.Logf("child:\n%s", out)
			require.NoError(t, err, "the child failed")
			assert.Contains(t, string(out), "--- PASS: TestServeOutOfFDs", "the child ran nothing")
		})
	}
}

func serveOutOfFDs(t *testing.T, kind EngineKind) {
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	restore := func() { require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)) }
	defer func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) }()
	// exhaust makes every new descriptor fail with EMFILE: the limit is
	// one above the highest number a descriptor may have, and a new one
	// takes the lowest free number.
	exhaust := func() {
		fd, err := syscall.Dup(0)
		require.NoError(t, err)
		require.NoError(t, syscall.Close(fd))
		low := lim
		low.Cur = uint64(fd)
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low))
	}
	listen := func() (*Listener, net.Conn) {
		ln, err := Listen("tcp", "127.0.0.1:0", WithEngine(kind), WithEngines(1))
		require.NoError(t, err)
		peer, err := net.Dial("tcp", ln.Addr().String()) // waits in the backlog
		require.NoError(t, err)
		return ln, peer
	}

	t.Run("served once descriptors are free", func(t *testing.T) {
		ln, peer := listen()
		defer peer.Close()
		h := &echoHandler{}
		exhaust()
		served := make(chan error, 1)
		go func() { served <- Serve(ln, h) }()
		time.Sleep(200 * time.Millisecond)
		assert.Zero(t, h.opened.Load(), "accepted a connection without a descriptor for it")
		restore()
		require.Eventually(t, func() bool { return h.opened.Load() == 1 }, 5*time.Second, 5*time.Millisecond,
			"the waiting connection was not served after descriptors were freed")
		_, err := peer.Write([]byte("ping"))
		require.NoError(t, err)
		got := make([]byte, 4)
		require.NoError(t, peer.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err = io.ReadFull(peer, got)
		require.NoError(t, err)
		assert.Equal(t, "ping", string(got))
		require.NoError(t, ln.Close())
		assert.ErrorIs(t, <-served, net.ErrClosed)
	})

	t.Run("Close ends a long back-off", func(t *testing.T) {
		ln, peer := listen()
		defer peer.Close()
		exhaust()
		served := make(chan error, 1)
		go func() { served <- Serve(ln, &echoHandler{}) }()
		// The waits double from 5 ms: 1.275 s in, Serve starts waiting 1 s.
		time.Sleep(1400 * time.Millisecond)
		closed := time.Now()
		require.NoError(t, ln.Close())
		select {
		case err := <-served:
			assert.ErrorIs(t, err, net.ErrClosed)
			assert.Less(t, time.Since(closed), 400*time.Millisecond, "Serve waited out its back-off after Close")
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after Close")
		}
		restore()
	})
}

package reader_test

import (
	"flag"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/segq"
	"github.com/zcio/zcio/reader"
	"github.com/zcio/zcio/reader/readertest"
)

// TestMain fails the package on leaked goroutines or file descriptors.
func TestMain(m *testing.M) {
	// The runtime's poller opens its own descriptors on first use: start it
	// before counting.
	if pr, pw, err := os.Pipe(); err == nil {
		pr.Close()
		pw.Close()
	}
	fds := countFDs()
	code := m.Run()
	if code == 0 && !toolFlags() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > 1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > 1 {
			buf := make([]byte, 1<<16)
			println("leaked goroutines:", n, string(buf[:runtime.Stack(buf, true)]))
			code = 1
		}
		if now := countFDs(); fds >= 0 && now > fds {
			println("leaked file descriptors:", now-fds)
			code = 1
		}
	}
	os.Exit(code)
}

// toolFlags reports whether the fuzzing engine (which keeps goroutines of
// its own) or a profile (an open file) runs: the leak check is off then.
func toolFlags() bool {
	for _, name := range []string{"test.fuzz", "test.cpuprofile", "test.memprofile", "test.blockprofile",
		"test.mutexprofile", "test.trace"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return true
		}
	}
	return false
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// chunkReader returns data in the given chunk sizes, then end.
type chunkReader struct {
	data   []byte
	chunks []int
	end    error
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, c.end
	}
	k := len(c.data)
	if len(c.chunks) > 0 {
		k = c.chunks[0]
	}
	n := copy(p, c.data[:k])
	c.data = c.data[n:]
	switch {
	case len(c.chunks) == 0:
	case n < k:
		c.chunks[0] -= n
	default:
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func newArena(t testing.TB, blockSize, blocks int) *arena.Arena {
	t.Helper()
	a, err := arena.New(arena.Config{BlockSize: blockSize, Blocks: blocks})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	return a
}

// pullFactory builds pull Readers over a chunkReader.
func pullFactory(t testing.TB, s readertest.Stream, opts ...reader.Option) (*reader.Reader, *arena.Arena, func()) {
	a := newArena(t, s.BlockSize, s.Blocks)
	r, err := reader.NewReader(&chunkReader{data: s.Data, chunks: append([]int(nil), s.Chunks...), end: s.End},
		append(opts, reader.WithArena(a))...)
	require.NoError(t, err)
	return r, a, func() {}
}

// queueFactory builds Readers over a segq.Queue fed by a producer goroutine
// that packs chunks into shared blocks, as an engine with incremental
// buffers does, each segment with its own reference.
func queueFactory(t testing.TB, s readertest.Stream, opts ...reader.Option) (*reader.Reader, *arena.Arena, func()) {
	a := newArena(t, s.BlockSize, s.Blocks)
	resume := make(chan struct{}, 1)
	q := segq.New(segq.Config{
		Arena:    a,
		Limit:    (s.Blocks - 1) * s.BlockSize,
		OnResume: func() { signal(resume) },
	})
	r := reader.NewQueueReader(q, opts...)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		produce(t, a, q, s, resume)
	}()
	return r, a, wg.Wait
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// produce pushes s into q; it stops early once the consumer closes q.
func produce(t testing.TB, a *arena.Arena, q *segq.Queue, s readertest.Stream, resume chan struct{}) {
	var cur arena.Ref
	have, fill := false, 0
	defer func() {
		if have {
			a.Release(cur)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	data := s.Data
	for _, c := range s.Chunks {
		for c > 0 {
			if have && fill == a.BlockSize() {
				a.Release(cur)
				have = false
			}
			for !have {
				if q.Closed() {
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("producer: arena dry for too long")
					return
				}
				if cur, have = a.Take(); !have {
					time.Sleep(50 * time.Microsecond)
				}
				fill = 0
			}
			k := min(c, a.BlockSize()-fill)
			copy(a.Bytes(cur.ID())[fill:], data[:k])
			a.Retain(cur)
			pause := q.Push(segq.Segment{Ref: cur, Off: uint32(fill), Len: uint32(k)})
			fill += k
			data = data[k:]
			c -= k
			for pause {
				select {
				case <-resume:
					pause = false
				case <-time.After(time.Millisecond):
					if q.Closed() {
						return
					}
					if time.Now().After(deadline) {
						t.Errorf("producer: paused for too long")
						return
					}
				}
			}
		}
	}
	q.Finish(s.End)
}

// newPull returns a pull Reader over data in chunks, with a small arena of
// its own test's.
func newPull(t testing.TB, data string, chunks []int, opts ...reader.Option) (*reader.Reader, *arena.Arena) {
	s := readertest.Stream{Data: []byte(data), Chunks: chunks, End: io.EOF, BlockSize: arena.MinBlockSize, Blocks: 4}
	r, a, _ := pullFactory(t, s, opts...)
	return r, a
}

// ones returns n chunks of one byte.
func ones(n int) []int {
	c := make([]int, n)
	for i := range c {
		c[i] = 1
	}
	return c
}

// streamOf describes s as one EOF-terminated stream in chunks of chunk bytes.
func streamOf(s string, chunk, blocks int) readertest.Stream {
	var c []int
	for n := len(s); n > 0; n -= chunk {
		c = append(c, min(n, chunk))
	}
	return readertest.Stream{Data: []byte(s), Chunks: c, End: io.EOF, BlockSize: arena.MinBlockSize, Blocks: blocks}
}

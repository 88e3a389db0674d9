package reader_test

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/reader"
)

// seqReader returns its chunks one per Read, then (0, end) forever.
type seqReader struct {
	chunks [][]byte
	end    error
}

func (s *seqReader) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, s.end
	}
	n := copy(p, s.chunks[0])
	s.chunks[0] = s.chunks[0][n:]
	if len(s.chunks[0]) == 0 {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

// A source that ends with io.ErrUnexpectedEOF (a truncated gzip or TLS
// stream does): ReadLine reports it (it used to hand out empty lines
// forever, taking the error for the stream's own end inside a line).
func TestReadLineReportsASourcesUnexpectedEOF(t *testing.T) {
	r, err := reader.NewReader(&seqReader{chunks: [][]byte{[]byte("abc\n")}, end: io.ErrUnexpectedEOF})
	require.NoError(t, err)
	defer r.Close()
	var lines []string
	var last error
	for range 10 { // bounded: a correct Reader stops after 2 calls
		last = r.ReadLine(func(v [][]byte) { lines = append(lines, string(bytes.Join(v, nil))) })
		if last != nil {
			break
		}
	}
	assert.Equal(t, []string{"abc"}, lines, "phantom empty lines after the source failed")
	assert.ErrorIs(t, last, io.ErrUnexpectedEOF)
}

// Same, when the source fails in the middle of a line: the error comes
// back, and the partial line is not shown as a whole one.
func TestReadLineKeepsAPartialLineBeforeASourceError(t *testing.T) {
	r, err := reader.NewReader(&seqReader{chunks: [][]byte{[]byte("ab")}, end: io.ErrUnexpectedEOF})
	require.NoError(t, err)
	defer r.Close()
	var calls int
	var last error
	for range 10 {
		last = r.ReadLine(func([][]byte) { calls++ })
		if last != nil {
			break
		}
	}
	assert.Zero(t, calls, "a partial line shown as a whole one")
	assert.ErrorIs(t, last, io.ErrUnexpectedEOF)
	assert.Equal(t, 2, r.Buffered(), "the bytes that arrived stay readable")
}

// badWriter returns a count it was told to.
type badWriter struct {
	n   func(p []byte) int
	got []byte
}

func (w *badWriter) Write(p []byte) (int, error) {
	w.got = append(w.got, p...)
	return w.n(p), nil
}

func writeToNoPanic(t *testing.T, w io.Writer) (n int64, panicked any, err error) {
	t.Helper()
	a, aerr := arena.New(arena.Config{BlockSize: arena.MinBlockSize, Blocks: 4, Debug: true})
	require.NoError(t, aerr)
	r, rerr := reader.NewReader(&seqReader{chunks: [][]byte{[]byte("hello "), []byte("world")}, end: io.EOF}, reader.WithArena(a))
	require.NoError(t, rerr)
	func() {
		defer func() { panicked = recover() }()
		n, err = r.WriteTo(w)
	}()
	_ = r.Close()
	return n, panicked, err
}

// A writer that claims more than len(p): WriteTo stops with
// ErrInvalidCount (it used to drive the Reader's count negative and panic).
func TestWriteToRefusesAnOversizedCount(t *testing.T) {
	n, p, err := writeToNoPanic(t, &badWriter{n: func(p []byte) int { return len(p) + 10 }})
	assert.Nil(t, p, "WriteTo panicked on a writer's bad count")
	assert.ErrorIs(t, err, reader.ErrInvalidCount)
	assert.Zero(t, n)
}

// A writer that returns a negative count (it used to panic in
// net.Buffers).
func TestWriteToRefusesANegativeCount(t *testing.T) {
	n, p, err := writeToNoPanic(t, &badWriter{n: func(p []byte) int { return -1 }})
	assert.Nil(t, p, "WriteTo panicked on a writer's bad count")
	assert.ErrorIs(t, err, reader.ErrInvalidCount)
	assert.Zero(t, n)
}

// A writer that writes short with a nil error: io.ErrShortWrite, as
// io.Copy says (it used to resend bytes, then spin on (0, nil)).
func TestWriteToStopsAtAShortWrite(t *testing.T) {
	calls := 0
	w := &badWriter{n: func(p []byte) int {
		calls++
		if calls > 1000 {
			panic("writer called 1000 times: WriteTo spins on (0, nil)")
		}
		return len(p) / 2
	}}
	n, p, err := writeToNoPanic(t, w)
	assert.Nil(t, p)
	assert.ErrorIs(t, err, io.ErrShortWrite)
	assert.Equal(t, int64(3), n, "what the writer took of its first write")
	assert.Equal(t, 1, calls)
}

// panicOnce panics at its first Read, then serves data.
type panicOnce struct {
	done bool
	data []byte
}

func (p *panicOnce) Read(b []byte) (int, error) {
	if !p.done {
		p.done = true
		panic("source panicked")
	}
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.data)
	p.data = p.data[n:]
	return n, nil
}

// A source that panics inside Wait leaves Wait's context in the Reader: a
// later call without a context fails once that context is cancelled.
func TestWaitRestoresItsContextWhenTheSourcePanics(t *testing.T) {
	r, err := reader.NewReader(&panicOnce{data: []byte("x")})
	require.NoError(t, err)
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	func() {
		defer func() { recover() }()
		_ = r.Wait(ctx, 1)
	}()
	cancel() // the Wait call is over; its context must not matter any more
	b, err := r.ReadByte()
	assert.NoError(t, err, "a later ReadByte observed the context of an earlier Wait")
	assert.Equal(t, byte('x'), b)
}

// A view kept past its callback faults on a debug arena with a pull Reader
// too: a consumed block goes back to the arena (which protects it) rather
// than being filled again in place, where the kept view showed the next
// bytes.
func TestPullReaderDebugFaultsOnAKeptView(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("debug protection needs mprotect (Linux)")
	}
	r, err := reader.NewReader(&seqReader{chunks: [][]byte{[]byte("AAAA"), []byte("BBBB")}, end: io.EOF},
		reader.WithArenaConfig(arena.Config{BlockSize: arena.MinBlockSize, Blocks: 4, Debug: true}))
	require.NoError(t, err)
	defer r.Close()
	require.True(t, r.Arena().Debug())
	var kept []byte
	require.NoError(t, r.ReadRange(4, func(b []byte) { kept = b }))
	require.NoError(t, r.ReadRange(4, func(b []byte) { assert.Equal(t, "BBBB", string(b)) }))
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var got byte
	fault := func() (p any) {
		defer func() { p = recover() }()
		got = kept[0] // the block went back: it must fault
		return nil
	}()
	assert.NotNil(t, fault, "a kept view read %q instead of faulting", got)
}

package reader_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/internal/segq"
	"github.com/zcio/zcio/reader"
)

func TestReadRangeAcrossBlocks(t *testing.T) {
	data := strings.Repeat("0123456789", 1500) // 15000 bytes: four 4 KiB blocks
	r, a := newPull(t, data, []int{5000, 1, 7000, 2999})
	var got []byte
	var views int
	require.NoError(t, r.ReadRange(len(data), func(b []byte) { views++; got = append(got, b...) }))
	assert.Equal(t, data, string(got))
	assert.Greater(t, views, 3, "one view per segment at least")
	_, err := r.ReadByte()
	assert.ErrorIs(t, err, io.EOF)
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestReadRangeGivesBlocksBackAsYielded(t *testing.T) {
	data := strings.Repeat("x", 3*arena.MinBlockSize)
	r, a := newPull(t, data, nil)
	inUse := []int{}
	require.NoError(t, r.ReadRange(len(data), func([]byte) { inUse = append(inUse, a.InUse()) }))
	require.Len(t, inUse, 3)
	assert.Greater(t, inUse[0], inUse[2], "consumed blocks go back while later ones are yielded")
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestPeekAcrossBoundaryWithoutCopy(t *testing.T) {
	r, a := newPull(t, "hello world", []int{3, 5, 3})
	var n int
	require.NoError(t, r.Peek(11, func(v [][]byte) {
		n = len(v)
		assert.Equal(t, "hello world", string(bytes.Join(v, nil)))
	}))
	assert.Equal(t, 1, n, "consecutive reads into one block are one view")
	assert.Equal(t, 11, r.Buffered())
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestPeekEndOfStream(t *testing.T) {
	r, a := newPull(t, "abc", nil)
	called := false
	err := r.Peek(5, func([][]byte) { called = true })
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.False(t, called)
	var got []byte
	require.NoError(t, r.ReadRange(3, func(b []byte) { got = append(got, b...) }), "what arrived stays readable")
	assert.Equal(t, "abc", string(got))
	assert.ErrorIs(t, r.Peek(1, func([][]byte) {}), io.EOF)
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestPeekTooLarge(t *testing.T) {
	r, a := newPull(t, "abc", nil)
	err := r.Peek(r.Limit()+1, func([][]byte) {})
	assert.ErrorIs(t, err, reader.ErrTooLarge)
	assert.Contains(t, err.Error(), "limit")
	b, err := r.ReadByte()
	require.NoError(t, err)
	assert.Equal(t, byte('a'), b, "nothing consumed")
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestByteScannerAcrossBlocks(t *testing.T) {
	r, a := newPull(t, "abc", ones(3))
	b, err := r.ReadByte()
	require.NoError(t, err)
	assert.Equal(t, byte('a'), b)
	require.NoError(t, r.UnreadByte())
	assert.ErrorIs(t, r.UnreadByte(), reader.ErrInvalidUnreadByte)
	for _, want := range []byte("abc") {
		b, err = r.ReadByte()
		require.NoError(t, err)
		assert.Equal(t, want, b)
	}
	require.NoError(t, r.UnreadByte())
	b, err = r.ReadByte()
	require.NoError(t, err)
	assert.Equal(t, byte('c'), b)
	_, err = r.ReadByte()
	assert.ErrorIs(t, err, io.EOF)
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestIntegersStraddlingSegments(t *testing.T) {
	var buf []byte
	buf = binary.BigEndian.AppendUint16(buf, 0x0102)
	buf = binary.LittleEndian.AppendUint16(buf, 0x0304)
	buf = binary.BigEndian.AppendUint32(buf, 0x05060708)
	buf = binary.LittleEndian.AppendUint32(buf, 0x090a0b0c)
	buf = binary.BigEndian.AppendUint64(buf, 0x0d0e0f1011121314)
	buf = binary.LittleEndian.AppendUint64(buf, 0x15161718191a1b1c)
	buf = binary.AppendUvarint(buf, 1<<63)
	buf = binary.AppendVarint(buf, -12345)
	r, a := newPull(t, string(buf), ones(len(buf)))
	u16, err := r.ReadUint16BE()
	require.NoError(t, err)
	assert.Equal(t, uint16(0x0102), u16)
	u16, err = r.ReadUint16LE()
	require.NoError(t, err)
	assert.Equal(t, uint16(0x0304), u16)
	u32, err := r.ReadUint32BE()
	require.NoError(t, err)
	assert.Equal(t, uint32(0x05060708), u32)
	u32, err = r.ReadUint32LE()
	require.NoError(t, err)
	assert.Equal(t, uint32(0x090a0b0c), u32)
	u64, err := r.ReadUint64BE()
	require.NoError(t, err)
	assert.Equal(t, uint64(0x0d0e0f1011121314), u64)
	u64, err = r.ReadUint64LE()
	require.NoError(t, err)
	assert.Equal(t, uint64(0x15161718191a1b1c), u64)
	u64, err = r.ReadUvarint()
	require.NoError(t, err)
	assert.Equal(t, uint64(1<<63), u64)
	i64, err := r.ReadVarint()
	require.NoError(t, err)
	assert.Equal(t, int64(-12345), i64)
	_, err = r.ReadUint32BE()
	assert.ErrorIs(t, err, io.EOF)
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestIntegerShortStream(t *testing.T) {
	r, a := newPull(t, "\x01\x02\x03", ones(3))
	_, err := r.ReadUint32BE()
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, 3, r.Buffered(), "nothing consumed")
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestVarintOverflowAndTruncation(t *testing.T) {
	r, a := newPull(t, strings.Repeat("\xff", 10)+"\x01", nil)
	_, err := r.ReadUvarint()
	assert.ErrorIs(t, err, reader.ErrVarintOverflow)
	assert.Equal(t, 11, r.Buffered(), "nothing consumed")
	require.NoError(t, r.Close())

	r, a2 := newPull(t, "\xff\xff", ones(2))
	_, err = r.ReadUvarint()
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
	assert.Zero(t, a2.InUse())
}

func TestReadLineCRLFStraddling(t *testing.T) {
	data := "one\r\ntwo\nthree\r\nlast\r"
	r, a := newPull(t, data, ones(len(data)))
	var lines []string
	for {
		err := r.ReadLine(func(v [][]byte) { lines = append(lines, string(bytes.Join(v, nil))) })
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
	}
	assert.Equal(t, []string{"one", "two", "three", "last\r"}, lines)
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestReadSliceLineTooLong(t *testing.T) {
	data := strings.Repeat("a", 100) + "\nshort\n"
	r, a := newPull(t, data, []int{7, 50, 50}, reader.WithMaxLine(64))
	called := false
	err := r.ReadSlice('\n', func([][]byte) { called = true })
	require.ErrorIs(t, err, reader.ErrLineTooLong)
	assert.EqualError(t, err, "zcio/reader: line too long")
	assert.False(t, called)
	n, err := r.Discard(101)
	require.NoError(t, err)
	assert.Equal(t, 101, n)
	var line string
	require.NoError(t, r.ReadSlice('\n', func(v [][]byte) { line = string(bytes.Join(v, nil)) }))
	assert.Equal(t, "short\n", line)
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestIOTestReader(t *testing.T) {
	data := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog\n", 700))
	for _, chunk := range []int{1, 7, 4096, 10000} {
		var chunks []int
		for n := len(data); n > 0; n -= chunk {
			chunks = append(chunks, min(chunk, n))
		}
		r, a := newPull(t, string(data), chunks)
		assert.NoError(t, iotest.TestReader(r, data), "chunk=%d", chunk)
		require.NoError(t, r.Close())
		assert.Zero(t, a.InUse())
	}
}

func TestReadShortAndEOFOnlyWithZero(t *testing.T) {
	r, a := newPull(t, "abcdef", []int{2, 4})
	p := make([]byte, 10)
	n, err := r.Read(p)
	require.NoError(t, err)
	assert.Equal(t, "ab", string(p[:n]), "short read, no wait for more")
	n, err = r.Read(p)
	require.NoError(t, err)
	assert.Equal(t, "cdef", string(p[:n]))
	n, err = r.Read(p)
	assert.Zero(t, n)
	assert.ErrorIs(t, err, io.EOF)
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestWriteToBuffer(t *testing.T) {
	data := strings.Repeat("z", 50000)
	r, a := newPull(t, data, []int{100, 10000, 39900})
	var w bytes.Buffer
	n, err := r.WriteTo(&w)
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), n)
	assert.Equal(t, data, w.String())
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

// TestWriteToSocket relays through a real TCP connection, where net.Buffers
// uses writev(2).
func TestWriteToSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	data := strings.Repeat("0123456789abcdef", 8192)
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	r, a := newPull(t, data, []int{1, 4095, 3000, 9000, 100})
	n, err := r.WriteTo(c)
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), n)
	require.NoError(t, c.Close())
	select {
	case b := <-got:
		assert.Equal(t, data, string(b))
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not finish")
	}
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

type failWriter struct{ room int }

func (w *failWriter) Write(p []byte) (int, error) {
	n := min(len(p), w.room)
	w.room -= n
	if n < len(p) {
		return n, io.ErrShortWrite
	}
	return n, nil
}

func TestWriteToWriterError(t *testing.T) {
	r, a := newPull(t, "abcdefgh", nil)
	n, err := r.WriteTo(&failWriter{room: 3})
	assert.ErrorIs(t, err, io.ErrShortWrite)
	assert.Equal(t, int64(3), n)
	assert.Equal(t, 5, r.Buffered(), "accepted bytes consumed, the rest kept")
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestRetainOutlivesReadsAndClose(t *testing.T) {
	data := strings.Repeat("r", 5000) + strings.Repeat("s", 20000)
	r, a := newPull(t, data, []int{3000, 3000, 19000})
	s, err := r.Retain(5000)
	require.NoError(t, err)
	require.NoError(t, r.ReadRange(20000, func([]byte) {}))
	require.NoError(t, r.Close())
	assert.NotZero(t, a.InUse(), "the Slice holds its blocks")
	done := make(chan string)
	go func() { done <- string(s.AppendTo(nil)); s.Release() }()
	assert.Equal(t, strings.Repeat("r", 5000), <-done)
	assert.Nil(t, s.Views())
	assert.Zero(t, a.InUse())
	assert.PanicsWithValue(t, "zcio/reader: Slice of 5000 bytes released twice", s.Release)
}

func TestClosedMatchesNetErrClosed(t *testing.T) {
	r, a := newPull(t, "abc", nil)
	require.NoError(t, r.Peek(1, func([][]byte) {}))
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
	assert.ErrorIs(t, r.Close(), net.ErrClosed)
	_, err := r.Read(make([]byte, 1))
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.ErrorIs(t, r.ReadRange(1, func([]byte) {}), net.ErrClosed)
	_, err = r.Retain(1)
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.Zero(t, r.Buffered())
}

func TestOwnArenaUnmappedOnClose(t *testing.T) {
	r, err := reader.NewReader(strings.NewReader("hello"))
	require.NoError(t, err)
	assert.Equal(t, (reader.DefaultBlocks-1)*reader.DefaultBlockSize, r.Limit())
	var got string
	require.NoError(t, r.ReadRange(5, func(b []byte) { got = string(b) }))
	assert.Equal(t, "hello", got)
	require.NoError(t, r.Close())
	assert.Zero(t, r.Arena().InUse())
}

// newQueue returns an empty queue over a fresh arena, and a helper pushing
// bytes into it.
func newQueue(t *testing.T, limit int) (*segq.Queue, *arena.Arena, func(string)) {
	a := newArena(t, arena.MinBlockSize, 8)
	q := segq.New(segq.Config{Arena: a, Limit: limit})
	push := func(s string) {
		ref, ok := a.Take()
		require.True(t, ok)
		copy(a.Bytes(ref.ID()), s)
		q.Push(segq.Segment{Ref: ref, Len: uint32(len(s))})
	}
	return q, a, push
}

func TestDeadlineInterruptsWait(t *testing.T) {
	q, a, push := newQueue(t, 0)
	r := reader.NewQueueReader(q)
	push("ab")
	r.SetDeadline(time.Now().Add(20 * time.Millisecond))
	start := time.Now()
	err := r.Peek(3, func([][]byte) {})
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, 2, r.Buffered(), "nothing consumed")
	r.SetDeadline(time.Time{})
	push("c")
	var got []byte
	require.NoError(t, r.Peek(3, func(v [][]byte) { got = bytes.Join(v, nil) }))
	assert.Equal(t, "abc", string(got))
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

// A pull Reader over a net.Conn whose read deadline passed returns the
// timeout and reads again at the next call, as bufio.Reader does; other
// errors end its stream for good, without calling the source again.
func TestPullReaderRetriesAfterTimeout(t *testing.T) {
	c, peer := net.Pipe()
	defer c.Close()
	r, err := reader.NewReader(c)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	_, err = r.ReadByte()
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.NoError(t, c.SetReadDeadline(time.Time{}))
	wrote := make(chan error, 1)
	go func() { _, err := peer.Write([]byte("ok")); wrote <- err }()
	var got []byte
	require.NoError(t, r.ReadRange(2, func(b []byte) { got = append(got, b...) }))
	assert.Equal(t, "ok", string(got))
	require.NoError(t, <-wrote)
	require.NoError(t, peer.Close())
	for range 2 {
		_, err = r.ReadByte()
		assert.ErrorIs(t, err, io.EOF)
	}
	require.NoError(t, r.Close())

	failing := &countingReader{err: errors.New("disk on fire")}
	r, err = reader.NewReader(failing)
	require.NoError(t, err)
	for range 2 {
		_, err = r.ReadByte()
		assert.ErrorIs(t, err, failing.err)
	}
	assert.Equal(t, 1, failing.reads, "a failed source is read again")
	require.NoError(t, r.Close())
}

// countingReader fails every Read with err and counts the calls.
type countingReader struct {
	err   error
	reads int
}

func (c *countingReader) Read([]byte) (int, error) { c.reads++; return 0, c.err }

func TestContextInterruptsWait(t *testing.T) {
	q, a, push := newQueue(t, 0)
	r := reader.NewQueueReader(q)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); time.Sleep(10 * time.Millisecond); cancel() }()
	assert.ErrorIs(t, r.Wait(ctx, 1), context.Canceled)
	wg.Wait()
	push("x")
	require.NoError(t, r.Wait(context.Background(), 1))
	assert.Equal(t, 1, r.Buffered())

	base, stop := context.WithCancel(context.Background())
	stop()
	r2 := reader.NewQueueReader(segq.New(segq.Config{Arena: a}), reader.WithContext(base))
	_, err := r2.ReadByte()
	assert.ErrorIs(t, err, context.Canceled)
	require.NoError(t, r2.Close())
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

func TestNonBlocking(t *testing.T) {
	q, a, push := newQueue(t, 0)
	r := reader.NewQueueReader(q)
	r.SetNonBlocking(true)
	push("abc")
	err := r.ReadRange(4, func([]byte) { t.Error("yielded on ErrWouldBlock") })
	assert.ErrorIs(t, err, reader.ErrWouldBlock)
	n, err := r.Discard(4)
	assert.ErrorIs(t, err, reader.ErrWouldBlock)
	assert.Zero(t, n)
	push("d")
	var got []byte
	require.NoError(t, r.ReadRange(4, func(b []byte) { got = append(got, b...) }))
	assert.Equal(t, "abcd", string(got))
	q.Finish(nil)
	_, err = r.ReadByte()
	assert.ErrorIs(t, err, io.EOF)
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

// TestQueueRequestStraddlingPause checks that a request within the limit
// completes when the producer paused with a partly consumed head.
func TestQueueRequestStraddlingPause(t *testing.T) {
	s := strings.Repeat("p", 3*arena.MinBlockSize)
	r, a, done := queueFactory(t, streamOf(s, 2*arena.MinBlockSize, 3))
	require.NoError(t, r.ReadRange(arena.MinBlockSize-1, func([]byte) {}))
	require.NoError(t, r.Peek(r.Limit(), func([][]byte) {}))
	n, err := r.Discard(len(s))
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, len(s)-arena.MinBlockSize+1, n)
	require.NoError(t, r.Close())
	done()
	assert.Zero(t, a.InUse())
}

func TestAllocs(t *testing.T) {
	msg := make([]byte, 0, 1<<20)
	for len(msg) < cap(msg)-2000 {
		msg = binary.BigEndian.AppendUint32(msg, 1000)
		msg = append(msg, bytes.Repeat([]byte{'m'}, 996)...)
		msg = append(msg, "line\r\n"...)
	}
	r, a := newPull(t, string(msg), nil)
	sink := 0
	yield := func(b []byte) { sink += len(b) }
	views := func(v [][]byte) { sink += len(v) }
	allocs := testing.AllocsPerRun(500, func() {
		n, err := r.ReadUint32BE()
		if err != nil {
			panic(err)
		}
		if err := r.Peek(4, views); err != nil {
			panic(err)
		}
		if err := r.ReadRange(int(n)-4, yield); err != nil {
			panic(err)
		}
		if err := r.ReadLine(views); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs)
	assert.NotZero(t, sink)
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

// TestPullReusesHotBlocks: a Reader that keeps up reads into the same two
// blocks over and over, as bufio reads into its one buffer.
func TestPullReusesHotBlocks(t *testing.T) {
	data := strings.Repeat("0123456789", 100000) // 1 MB
	var chunks []int
	for n := len(data); n > 0; n -= 777 {
		chunks = append(chunks, min(n, 777))
	}
	r, a := newPull(t, data, chunks)
	takes := a.Stats().Takes
	for range len(data) / 100 {
		require.NoError(t, r.ReadRange(100, func([]byte) {}))
		require.LessOrEqual(t, a.InUse(), 2)
	}
	assert.LessOrEqual(t, a.Stats().Takes-takes, uint64(2), "blocks taken from the arena")
	require.NoError(t, r.Close())
	assert.Zero(t, a.InUse())
}

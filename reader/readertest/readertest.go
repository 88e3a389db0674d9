// Package readertest is the conformance suite of zcio's [reader.Reader]: it
// runs every method against a reference model (a plain byte slice with the
// semantics of bufio.Reader and encoding/binary) over a stream that a Factory
// delivers in random chunks, so that block boundaries fall inside integers,
// varints and line ends. The reader package runs it over its pull adapter and
// an in-memory segment queue; each engine runs it over real sockets.
//
// Memory ownership: a Factory owns the arena it returns and the stream's
// producer; the suite closes the Reader, calls the Factory's done function
// and then checks that the arena has no block in use.
package readertest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/reader"
)

// ErrStream is the error a stream ends with in scenarios that do not end
// with io.EOF (a reset connection, a failed TLS record).
var ErrStream = errors.New("readertest: stream failed")

// Stream describes what a Factory must deliver.
type Stream struct {
	// Data is the bytes of the stream.
	Data []byte
	// Chunks are the sizes of the deliveries, in order, summing to
	// len(Data): a source should make each its own read or segment (an
	// engine may merge or split them, as the kernel does).
	Chunks []int
	// End ends the stream after Data: io.EOF, or ErrStream.
	End error
	// BlockSize and Blocks size the arena the Factory should map.
	BlockSize, Blocks int
}

// Factory returns a Reader over s, built with opts, the arena it reads into,
// and a function that waits for the producer (if any) to stop and give back
// every block it holds. The suite calls done after closing the Reader.
type Factory func(t testing.TB, s Stream, opts ...reader.Option) (r *reader.Reader, a *arena.Arena, done func())

// Options tunes Run.
type Options struct {
	// Scenarios is the number of random scenarios; 0 means 200.
	Scenarios int
	// Seed seeds the scenarios; runs with the same seed are identical.
	Seed uint64
	// NoStreamError skips scenarios that end with ErrStream, for sources
	// that can only end with io.EOF.
	NoStreamError bool
	// MaxData caps the stream length; 0 means 64 KiB.
	MaxData int
}

// Run runs the conformance scenarios against f, each as a subtest.
func Run(t *testing.T, f Factory, o Options) {
	if o.Scenarios == 0 {
		o.Scenarios = 200
	}
	if o.MaxData == 0 {
		o.MaxData = 64 << 10
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5a10))
	for i := range o.Scenarios {
		sc := RandomScenario(rng, o.MaxData, !o.NoStreamError)
		t.Run(fmt.Sprintf("scenario=%d/%s", i, sc), func(t *testing.T) {
			Check(t, f, sc)
		})
	}
	t.Run("reentrant", func(t *testing.T) { Reentrant(t, f) })
}

// Reentrant checks that Reader methods called from inside the same Reader's
// callbacks are refused with reader.ErrReentrant and consume nothing, that
// a callback that panics leaves the Reader usable, and that every byte still
// arrives once, in order.
func Reentrant(t *testing.T, f Factory) {
	data := RandomData(rand.New(rand.NewPCG(7, 7)), 300)
	s := Stream{Data: data, Chunks: []int{100, 100, 100}, End: io.EOF, BlockSize: arena.MinBlockSize, Blocks: 4}
	r, a, done := f(t, s)
	refused := func(what string, err error) {
		t.Helper()
		assert.ErrorIs(t, err, reader.ErrReentrant, what)
	}
	nested := func(in string) {
		t.Helper()
		_, err := r.ReadByte()
		refused("ReadByte in "+in, err)
		refused("Peek in "+in, r.Peek(1, func([][]byte) { t.Errorf("a Peek nested in %s ran its callback", in) }))
		_, err = r.Discard(1)
		refused("Discard in "+in, err)
		_, err = r.Read(make([]byte, 4))
		refused("Read in "+in, err)
		_, err = r.ReadUvarint()
		refused("ReadUvarint in "+in, err)
	}
	var got []byte
	require.NoError(t, r.ReadRange(10, func(b []byte) {
		got = append(got, b...)
		nested("ReadRange")
	}))
	require.NoError(t, r.Peek(5, func([][]byte) { nested("Peek") }))
	delim := data[30] // its first occurrence from offset 10 is at 30 or before
	require.NoError(t, r.ReadSlice(delim, func(line [][]byte) {
		for _, v := range line {
			got = append(got, v...)
		}
		nested("ReadSlice")
	}))
	assert.Panics(t, func() { _ = r.Peek(3, func([][]byte) { panic("callback panics") }) })
	b, err := r.ReadByte()
	require.NoError(t, err, "ReadByte after a callback panicked")
	got = append(got, b)
	var rest bytes.Buffer
	_, err = r.WriteTo(writerFunc(func(p []byte) (int, error) {
		nested("WriteTo's writer")
		return rest.Write(p)
	}))
	require.NoError(t, err)
	got = append(got, rest.Bytes()...)
	assert.Equal(t, data, got, "the stream arrived changed")
	require.NoError(t, r.Close())
	done()
	assert.Zero(t, a.InUse(), "arena blocks in use after the scenario")

	// Close from inside a callback closes the Reader as the call returns;
	// the views stay valid until then.
	r, a, done = f(t, s)
	require.NoError(t, r.ReadRange(10, func(b []byte) {
		assert.NoError(t, r.Close(), "Close in ReadRange")
		assert.Equal(t, data[:len(b)], b, "a view changed after Close in its callback")
	}))
	_, err = r.ReadByte()
	assert.ErrorIs(t, err, reader.ErrClosed, "ReadByte after a Close in a callback")
	assert.ErrorIs(t, r.Close(), reader.ErrClosed, "second Close")
	done()
	assert.Zero(t, a.InUse(), "arena blocks in use after a Close in a callback")
}

// writerFunc adapts a func to io.Writer.
type writerFunc func(p []byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// Scenario is one stream and the operations run over it.
type Scenario struct {
	Stream  Stream
	MaxLine int // 0: the Reader's default
	Ops     []Op
}

func (sc Scenario) String() string {
	end := "eof"
	if sc.Stream.End != io.EOF {
		end = "err"
	}
	return fmt.Sprintf("len=%d/chunks=%d/blocks=%dx%d/end=%s/ops=%d", len(sc.Stream.Data), len(sc.Stream.Chunks),
		sc.Stream.Blocks, sc.Stream.BlockSize, end, len(sc.Ops))
}

// Kind names a Reader method.
type Kind uint8

// The operations the suite drives.
const (
	OpReadRange Kind = iota
	OpPeek
	OpDiscard
	OpReadByte
	OpUnreadByte
	OpUint16BE
	OpUint16LE
	OpUint32BE
	OpUint32LE
	OpUint64BE
	OpUint64LE
	OpUvarint
	OpVarint
	OpReadSlice
	OpReadLine
	OpRead
	OpRetain
	OpBuffered
	OpWriteTo
	numKinds
)

var kindNames = [...]string{"ReadRange", "Peek", "Discard", "ReadByte", "UnreadByte", "Uint16BE", "Uint16LE",
	"Uint32BE", "Uint32LE", "Uint64BE", "Uint64LE", "Uvarint", "Varint", "ReadSlice", "ReadLine", "Read", "Retain",
	"Buffered", "WriteTo"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Op is one call: N is the byte count (ReadRange, Peek, Discard, Read,
// Retain), Delim the delimiter of ReadSlice.
type Op struct {
	Kind  Kind
	N     int
	Delim byte
}

func (o Op) String() string { return fmt.Sprintf("%v(%d,%q)", o.Kind, o.N, o.Delim) }

// RandomScenario draws a scenario: data rich in line ends and small varints,
// chunks from 1 byte to three blocks, arenas of 2 to 6 blocks of 4 KiB, and
// operations sized around the Reader's limit.
func RandomScenario(rng *rand.Rand, maxData int, streamErr bool) Scenario {
	s := Stream{BlockSize: arena.MinBlockSize, Blocks: 2 + rng.IntN(5), End: io.EOF}
	if streamErr && rng.IntN(4) == 0 {
		s.End = ErrStream
	}
	s.Data = RandomData(rng, rng.IntN(maxData+1))
	s.Chunks = RandomChunks(rng, len(s.Data), 3*s.BlockSize)
	sc := Scenario{Stream: s}
	if rng.IntN(3) == 0 {
		sc.MaxLine = 1 + rng.IntN(200)
	}
	limit := (s.Blocks - 1) * s.BlockSize
	nops := 1 + rng.IntN(200)
	for range nops {
		sc.Ops = append(sc.Ops, RandomOp(rng, limit))
	}
	return sc
}

// RandomData returns n bytes mixing text lines ("\n" and "\r\n"), varints and
// random binary.
func RandomData(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n+16)
	for len(b) < n {
		switch rng.IntN(4) {
		case 0:
			for range rng.IntN(80) {
				b = append(b, 'a'+byte(rng.IntN(26)))
			}
			if rng.IntN(2) == 0 {
				b = append(b, '\r')
			}
			b = append(b, '\n')
		case 1:
			b = binary.AppendUvarint(b, rng.Uint64()>>rng.IntN(64))
		case 2:
			b = binary.AppendVarint(b, int64(rng.Uint64())>>rng.IntN(64))
		default:
			for range rng.IntN(64) {
				b = append(b, byte(rng.Uint32()))
			}
		}
	}
	return b[:n]
}

// RandomChunks splits n bytes into chunks of 1 to max bytes, biased to small.
func RandomChunks(rng *rand.Rand, n, max int) []int {
	var c []int
	for n > 0 {
		k := 1 + rng.IntN(1+rng.IntN(max))
		k = min(k, n)
		c = append(c, k)
		n -= k
	}
	return c
}

// RandomOp draws one operation with counts around limit.
func RandomOp(rng *rand.Rand, limit int) Op {
	o := Op{Kind: Kind(rng.IntN(int(numKinds)))}
	if o.Kind == OpWriteTo && rng.IntN(8) != 0 {
		o.Kind = OpReadByte // WriteTo drains the stream: keep it rare
	}
	switch rng.IntN(8) {
	case 0:
		o.N = rng.IntN(limit + 2*arena.MinBlockSize)
	case 1:
		o.N = limit - 2 + rng.IntN(4)
	default:
		o.N = rng.IntN(64)
	}
	o.Delim = "\n\r\x00a"[rng.IntN(4)]
	return o
}

// Check runs sc against a Reader from f and against the model, then closes
// the Reader and checks that every block went back.
func Check(t testing.TB, f Factory, sc Scenario) {
	var opts []reader.Option
	if sc.MaxLine > 0 {
		opts = append(opts, reader.WithMaxLine(sc.MaxLine))
	}
	r, a, done := f(t, sc.Stream, opts...)
	m := &Model{Data: orEmpty(sc.Stream.Data), End: sc.Stream.End, Limit: r.Limit(), MaxLine: r.Limit()}
	if sc.MaxLine > 0 && sc.MaxLine < m.MaxLine {
		m.MaxLine = sc.MaxLine
	}
	for i, op := range sc.Ops {
		if !Step(t, r, m, op) {
			t.Errorf("op %d of %d: %v at offset %d of %d", i, len(sc.Ops), op, m.Pos, len(m.Data))
			break
		}
	}
	require.NoError(t, r.Close(), "Close")
	assert.ErrorIs(t, r.Close(), net.ErrClosed, "second Close")
	_, err := r.ReadByte()
	assert.ErrorIs(t, err, net.ErrClosed, "ReadByte after Close")
	done()
	assert.Zero(t, a.InUse(), "arena blocks in use after the scenario")
}

// Model is the reference: the stream as a byte slice and a read position.
type Model struct {
	Data    []byte
	Pos     int
	End     error
	Limit   int
	MaxLine int
	unread  bool // the last op was a successful ReadByte
}

func (m *Model) rem() int { return len(m.Data) - m.Pos }

// endErr is the error of a request that the stream ends inside.
func (m *Model) endErr() error {
	if m.End == io.EOF && m.rem() > 0 {
		return io.ErrUnexpectedEOF
	}
	return m.End
}

// fixedErr is the expected error of a request for n bytes at once.
func (m *Model) fixedErr(n int) error {
	switch {
	case n < 0:
		return reader.ErrNegativeCount
	case n > m.Limit:
		return reader.ErrTooLarge
	case n > m.rem():
		return m.endErr()
	}
	return nil
}

// Step runs op on r and on m and reports whether they agreed.
func Step(t testing.TB, r *reader.Reader, m *Model, op Op) bool {
	unread := m.unread
	m.unread = false
	ok := true
	same := func(want, got any, what string) {
		if !assert.Equal(t, want, got, "%v: %s", op, what) {
			ok = false
		}
	}
	sameErr := func(want, got error) {
		if want == nil {
			if !assert.NoError(t, got, "%v", op) {
				ok = false
			}
			return
		}
		if !assert.ErrorIs(t, got, want, "%v", op) {
			ok = false
		}
	}
	switch op.Kind {
	case OpReadRange:
		var got []byte
		err := r.ReadRange(op.N, func(b []byte) { got = append(got, b...) })
		want := m.fixedErr(op.N)
		if op.N > m.Limit && op.N >= 0 {
			// Streams: everything there is, then the end.
			k := min(op.N, m.rem())
			want = nil
			if k < op.N {
				want = m.End
				if m.End == io.EOF && k > 0 {
					want = io.ErrUnexpectedEOF
				}
			}
			same(m.Data[m.Pos:m.Pos+k], orEmpty(got), "bytes")
			m.Pos += k
		} else if want == nil {
			same(m.Data[m.Pos:m.Pos+op.N], orEmpty(got), "bytes")
			m.Pos += op.N
		} else {
			same(0, len(got), "bytes yielded on error")
		}
		sameErr(want, err)
	case OpPeek, OpRetain:
		var got []byte
		var err error
		if op.Kind == OpPeek {
			err = r.Peek(op.N, func(v [][]byte) {
				for _, b := range v {
					got = append(got, b...)
				}
			})
		} else {
			var s *reader.Slice
			s, err = r.Retain(op.N)
			if err == nil {
				got = s.AppendTo(nil)
				same(op.N, s.Len(), "Slice.Len")
				s.Release()
			}
		}
		want := m.fixedErr(op.N)
		sameErr(want, err)
		if want == nil {
			same(m.Data[m.Pos:m.Pos+op.N], orEmpty(got), "bytes")
			if op.Kind == OpRetain {
				m.Pos += op.N
			}
		}
	case OpDiscard:
		n, err := r.Discard(op.N)
		switch {
		case op.N < 0:
			sameErr(reader.ErrNegativeCount, err)
		case op.N <= m.rem():
			sameErr(nil, err)
			same(op.N, n, "discarded")
			m.Pos += op.N
		default:
			sameErr(m.End, err)
			same(m.rem(), n, "discarded")
			m.Pos = len(m.Data)
		}
	case OpReadByte:
		b, err := r.ReadByte()
		if m.rem() == 0 {
			sameErr(m.End, err)
		} else {
			sameErr(nil, err)
			same(m.Data[m.Pos], b, "byte")
			m.Pos++
			m.unread = true
		}
	case OpUnreadByte:
		err := r.UnreadByte()
		if unread {
			sameErr(nil, err)
			m.Pos--
		} else {
			sameErr(reader.ErrInvalidUnreadByte, err)
		}
	case OpUint16BE, OpUint16LE, OpUint32BE, OpUint32LE, OpUint64BE, OpUint64LE:
		ok = m.fixedInt(t, r, op) && ok
	case OpUvarint, OpVarint:
		ok = m.varint(t, r, op) && ok
	case OpReadSlice, OpReadLine:
		ok = m.line(t, r, op) && ok
	case OpRead:
		p := make([]byte, max(op.N, 0))
		n, err := r.Read(p)
		switch {
		case len(p) == 0:
			sameErr(nil, err)
			same(0, n, "n")
		case m.rem() == 0:
			sameErr(m.End, err)
			same(0, n, "n")
		default:
			sameErr(nil, err)
			if n < 1 || n > min(len(p), m.rem()) {
				t.Errorf("%v: Read returned n=%d with %d bytes left", op, n, m.rem())
				return false
			}
			same(m.Data[m.Pos:m.Pos+n], p[:n], "bytes")
			m.Pos += n
		}
	case OpBuffered:
		m.unread = unread // Buffered reads nothing: UnreadByte may follow
		if n := r.Buffered(); n < 0 || n > m.rem() {
			t.Errorf("Buffered() = %d with %d bytes left", n, m.rem())
			return false
		}
	case OpWriteTo:
		var w bytes.Buffer
		n, err := r.WriteTo(&w)
		want := m.End
		if want == io.EOF {
			want = nil
		}
		sameErr(want, err)
		same(int64(m.rem()), n, "written")
		same(m.Data[m.Pos:], orEmpty(w.Bytes()), "bytes")
		m.Pos = len(m.Data)
	default:
		t.Fatalf("unknown op %v", op)
	}
	return ok
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (m *Model) fixedInt(t testing.TB, r *reader.Reader, op Op) bool {
	var got uint64
	var err error
	var size int
	var want uint64
	d := m.Data[m.Pos:]
	switch op.Kind {
	case OpUint16BE:
		var v uint16
		v, err = r.ReadUint16BE()
		got, size = uint64(v), 2
		if len(d) >= 2 {
			want = uint64(binary.BigEndian.Uint16(d))
		}
	case OpUint16LE:
		var v uint16
		v, err = r.ReadUint16LE()
		got, size = uint64(v), 2
		if len(d) >= 2 {
			want = uint64(binary.LittleEndian.Uint16(d))
		}
	case OpUint32BE:
		var v uint32
		v, err = r.ReadUint32BE()
		got, size = uint64(v), 4
		if len(d) >= 4 {
			want = uint64(binary.BigEndian.Uint32(d))
		}
	case OpUint32LE:
		var v uint32
		v, err = r.ReadUint32LE()
		got, size = uint64(v), 4
		if len(d) >= 4 {
			want = uint64(binary.LittleEndian.Uint32(d))
		}
	case OpUint64BE:
		got, err = r.ReadUint64BE()
		size = 8
		if len(d) >= 8 {
			want = binary.BigEndian.Uint64(d)
		}
	case OpUint64LE:
		got, err = r.ReadUint64LE()
		size = 8
		if len(d) >= 8 {
			want = binary.LittleEndian.Uint64(d)
		}
	}
	wantErr := m.fixedErr(size)
	if wantErr != nil {
		return assert.ErrorIs(t, err, wantErr, "%v", op)
	}
	m.Pos += size
	return assert.NoError(t, err, "%v", op) && assert.Equal(t, want, got, "%v", op)
}

func (m *Model) varint(t testing.TB, r *reader.Reader, op Op) bool {
	d := m.Data[m.Pos:min(len(m.Data), m.Pos+binary.MaxVarintLen64)]
	want, k := binary.Uvarint(d)
	var wantErr error
	switch {
	case k < 0 || (k == 0 && len(d) == binary.MaxVarintLen64):
		wantErr = reader.ErrVarintOverflow
	case k == 0:
		wantErr = m.endErr()
	}
	var got uint64
	var err error
	if op.Kind == OpUvarint {
		got, err = r.ReadUvarint()
	} else {
		var v int64
		v, err = r.ReadVarint()
		got = uint64(v)
		w, _ := binary.Varint(d)
		want = uint64(w)
	}
	if wantErr != nil {
		return assert.ErrorIs(t, err, wantErr, "%v", op)
	}
	m.Pos += k
	return assert.NoError(t, err, "%v", op) && assert.Equal(t, want, got, "%v", op)
}

func (m *Model) line(t testing.TB, r *reader.Reader, op Op) bool {
	delim := op.Delim
	if op.Kind == OpReadLine {
		delim = '\n'
	}
	rest := m.Data[m.Pos:]
	var want []byte
	var wantErr error
	consumed := 0
	i := bytes.IndexByte(rest, delim)
	switch {
	case i >= 0 && i < m.MaxLine:
		want, consumed = rest[:i+1], i+1
	case i >= 0 || len(rest) >= m.MaxLine:
		wantErr = reader.ErrLineTooLong
	case op.Kind == OpReadLine && m.End == io.EOF && len(rest) > 0:
		want, consumed = rest, len(rest)
	default:
		wantErr = m.endErr()
	}
	if op.Kind == OpReadLine && wantErr == nil && len(want) > 0 && want[len(want)-1] == '\n' {
		want = want[:len(want)-1]
		if len(want) > 0 && want[len(want)-1] == '\r' {
			want = want[:len(want)-1]
		}
	}
	var got []byte
	called := false
	fn := func(v [][]byte) {
		called = true
		for _, b := range v {
			got = append(got, b...)
		}
	}
	var err error
	if op.Kind == OpReadLine {
		err = r.ReadLine(fn)
	} else {
		err = r.ReadSlice(delim, fn)
	}
	if wantErr != nil {
		return assert.ErrorIs(t, err, wantErr, "%v", op) && assert.False(t, called, "%v: callback called on error", op)
	}
	m.Pos += consumed
	return assert.NoError(t, err, "%v", op) && assert.Equal(t, want, orEmpty(got), "%v", op)
}

// DecodeOps turns fuzz input into operations, three bytes each: the kind,
// then a count that is small (under 64) for most inputs and otherwise spans
// 0 to limit plus two blocks, and the delimiter from the kind byte's top bits.
func DecodeOps(b []byte, limit int) []Op {
	var ops []Op
	for ; len(b) >= 3; b = b[3:] {
		o := Op{Kind: Kind(b[0] % byte(numKinds)), Delim: "\n\r\x00a"[b[0]>>6]}
		if b[1] < 0xc0 {
			o.N = int(b[2] % 64)
		} else {
			o.N = (int(b[1]&0x3f)<<8 | int(b[2])) % (limit + 2*arena.MinBlockSize)
			if b[1]&0x3f == 0x3f {
				o.N = limit - 1 + int(b[2]%3)
			}
		}
		ops = append(ops, o)
	}
	return ops
}

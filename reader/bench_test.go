package reader_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/reader"
)

// netSource imitates a network connection: it replays a stream of whole
// messages forever, each Read returning the next chunk of 1 byte to 2 KiB
// (or less when p is smaller). Every contender pays the same copy out of it,
// as it would pay the kernel's copy out of a socket.
type netSource struct {
	data   []byte
	chunks []int
	pos, c int
}

func newNetSource(data []byte, seed uint64) *netSource {
	rng := rand.New(rand.NewPCG(seed, 99))
	chunks := make([]int, 4096)
	for i := range chunks {
		chunks[i] = 1 + rng.IntN(2048)
	}
	return &netSource{data: data, chunks: chunks}
}

func (s *netSource) Read(p []byte) (int, error) {
	k := min(len(p), s.chunks[s.c], len(s.data)-s.pos)
	s.c = (s.c + 1) % len(s.chunks)
	n := copy(p, s.data[s.pos:s.pos+k])
	s.pos += n
	if s.pos == len(s.data) {
		s.pos = 0
	}
	return n, nil
}

// fixedStream is whole messages of size bytes, about 4 MiB of them.
func fixedStream(size int) []byte {
	n := max(1, (4<<20)/size)
	b := make([]byte, n*size)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// framedStream is messages of a 4-byte big-endian length and a payload of
// 16 bytes to 2*avg-16 bytes (mean avg), about 4 MiB of them.
func framedStream(avg int) []byte {
	rng := rand.New(rand.NewPCG(uint64(avg), 1))
	var b []byte
	for len(b) < 4<<20 {
		n := 16 + rng.IntN(2*avg-31)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		for i := range n {
			b = append(b, byte(i))
		}
	}
	return b
}

const benchBlock = 16 << 10 // zcio block size, and bufio buffer size for parity

var sizes = []int{64, 1 << 10, 4 << 10, 16 << 10}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// gcMeter reports the collections and the megabytes allocated during a run.
type gcMeter struct{ m runtime.MemStats }

func startGC() *gcMeter {
	g := &gcMeter{}
	runtime.GC()
	runtime.ReadMemStats(&g.m)
	return g
}

func (g *gcMeter) report(b *testing.B) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.NumGC-g.m.NumGC), "GCs")
	b.ReportMetric(float64(m.TotalAlloc-g.m.TotalAlloc)/1e6, "MB-alloc")
}

func newZcio(b *testing.B, src io.Reader, opts ...reader.Option) *reader.Reader {
	opts = append([]reader.Option{reader.WithArenaConfig(arena.Config{BlockSize: benchBlock, Blocks: 4})}, opts...)
	r, err := reader.NewReader(src, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	return r
}

// touch stands for the application's use of a message: it reads the first
// and the last byte of each piece.
func touch(acc *byte, p []byte) {
	if len(p) > 0 {
		*acc ^= p[0] ^ p[len(p)-1]
	}
}

// BenchmarkFixed reads fixed-size messages from the random-chunk source, on
// every P at once (the seed's concurrent 1 KiB reads, at several sizes).
func BenchmarkFixed(b *testing.B) {
	for _, size := range sizes {
		data := fixedStream(size)
		for _, impl := range []string{"zcio", "bufio-make", "bufio-reuse"} {
			b.Run(fmt.Sprintf("size=%s/impl=%s", sizeName(size), impl), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				var mu sync.Mutex
				var seed uint64
				gc := startGC()
				b.RunParallel(func(pb *testing.PB) {
					mu.Lock()
					seed++
					src := newNetSource(data, seed)
					var r *reader.Reader
					if impl == "zcio" {
						r = newZcio(b, src)
					}
					mu.Unlock()
					br := bufio.NewReaderSize(src, benchBlock)
					var acc byte
					yield := func(p []byte) { touch(&acc, p) }
					buf := make([]byte, size)
					for pb.Next() {
						var err error
						switch impl {
						case "zcio":
							err = r.ReadRange(size, yield)
						case "bufio-make":
							m := make([]byte, size)
							_, err = io.ReadFull(br, m)
							touch(&acc, m)
						default:
							_, err = io.ReadFull(br, buf)
							touch(&acc, buf)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
					sinkByte(acc)
				})
				gc.report(b)
			})
		}
	}
}

var benchSink byte

var sinkMu sync.Mutex

func sinkByte(v byte) {
	sinkMu.Lock()
	benchSink ^= v
	sinkMu.Unlock()
}

// framedReader parses one length-prefixed message per call.
type framedReader interface{ next() error }

type zcioFramed struct {
	r     *reader.Reader
	acc   byte
	yield func([]byte)
}

func newZcioFramed(b *testing.B, src io.Reader) *zcioFramed {
	z := &zcioFramed{r: newZcio(b, src)}
	z.yield = func(p []byte) { touch(&z.acc, p) }
	return z
}

func (z *zcioFramed) next() error {
	n, err := z.r.ReadUint32BE()
	if err != nil {
		return err
	}
	return z.r.ReadRange(int(n), z.yield)
}

type bufioFramed struct {
	br    *bufio.Reader
	hdr   [4]byte
	buf   []byte
	reuse bool
	acc   byte
}

func newBufioFramed(src io.Reader, reuse bool) *bufioFramed {
	return &bufioFramed{br: bufio.NewReaderSize(src, benchBlock), reuse: reuse}
}

func (f *bufioFramed) next() error {
	if _, err := io.ReadFull(f.br, f.hdr[:]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint32(f.hdr[:]))
	var p []byte
	if f.reuse {
		if cap(f.buf) < n {
			f.buf = make([]byte, n)
		}
		p = f.buf[:n]
	} else {
		p = make([]byte, n)
	}
	if _, err := io.ReadFull(f.br, p); err != nil {
		return err
	}
	touch(&f.acc, p)
	return nil
}

func newFramed(b *testing.B, impl string, src io.Reader) framedReader {
	switch impl {
	case "zcio":
		return newZcioFramed(b, src)
	case "bufio-make":
		return newBufioFramed(src, false)
	}
	return newBufioFramed(src, true)
}

var impls = []string{"zcio", "bufio-make", "bufio-reuse"}

// BenchmarkFramed parses header+payload messages (4-byte length, payload
// averaging avg bytes) from one random-chunk source.
func BenchmarkFramed(b *testing.B) {
	for _, avg := range []int{64, 1 << 10, 4 << 10} {
		data := framedStream(avg)
		for _, impl := range impls {
			b.Run(fmt.Sprintf("avg=%s/impl=%s", sizeName(avg), impl), func(b *testing.B) {
				f := newFramed(b, impl, newNetSource(data, 1))
				b.ReportAllocs()
				b.SetBytes(int64(avg + 4))
				gc := startGC()
				b.ResetTimer()
				for b.Loop() {
					if err := f.next(); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				gc.report(b)
			})
		}
	}
}

// ballast is a live heap of pointers that every collection must mark.
type ballastNode struct {
	next *ballastNode
	_    [6]uintptr // 64 B a node
}

func makeBallast(mb int) []*ballastNode {
	n := mb << 20 / 64
	nodes := make([]*ballastNode, n)
	for i := range nodes {
		nodes[i] = &ballastNode{}
		if i > 0 {
			nodes[i].next = nodes[i-1]
		}
	}
	return nodes
}

// BenchmarkGCPressure parses 1 KiB header+payload messages next to a 256 MB
// live heap of pointers, so that each collection the parser causes costs a
// full mark.
func BenchmarkGCPressure(b *testing.B) {
	data := framedStream(1 << 10)
	ballast := makeBallast(256)
	defer runtime.KeepAlive(ballast)
	for _, impl := range impls {
		b.Run(fmt.Sprintf("live=256MB/avg=1KiB/impl=%s", impl), func(b *testing.B) {
			f := newFramed(b, impl, newNetSource(data, 2))
			b.ReportAllocs()
			b.SetBytes(1<<10 + 4)
			gc := startGC()
			b.ResetTimer()
			for b.Loop() {
				if err := f.next(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			gc.report(b)
		})
	}
}

// BenchmarkStreamingServer runs 100 streams, each parsed by its own
// goroutine as a server's connection handlers would; b.N messages in all.
// The zcio streams share one arena.
func BenchmarkStreamingServer(b *testing.B) {
	const streams = 100
	data := framedStream(1 << 10)
	for _, impl := range impls {
		b.Run(fmt.Sprintf("streams=%d/avg=1KiB/impl=%s", streams, impl), func(b *testing.B) {
			var shared *arena.Arena
			if impl == "zcio" {
				a, err := arena.New(arena.Config{BlockSize: benchBlock, Blocks: 4 * streams})
				if err != nil {
					b.Fatal(err)
				}
				shared = a
				defer func() {
					if err := a.Close(); err != nil {
						b.Error(err)
					}
				}()
			}
			fs := make([]framedReader, streams)
			for i := range fs {
				src := newNetSource(data, uint64(i))
				if impl == "zcio" {
					r, err := reader.NewReader(src, reader.WithArena(shared), reader.WithLimit(3*benchBlock))
					if err != nil {
						b.Fatal(err)
					}
					defer r.Close()
					z := &zcioFramed{r: r}
					z.yield = func(p []byte) { touch(&z.acc, p) }
					fs[i] = z
				} else {
					fs[i] = newFramed(b, impl, src)
				}
			}
			b.ReportAllocs()
			b.SetBytes(1<<10 + 4)
			gc := startGC()
			b.ResetTimer()
			var wg sync.WaitGroup
			for i, f := range fs {
				n := b.N / streams
				if i < b.N%streams {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						if err := f.next(); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			gc.report(b)
		})
	}
}

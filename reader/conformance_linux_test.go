//go:build linux

package reader_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
	"github.com/zcio/zcio/reader"
	"github.com/zcio/zcio/reader/readertest"
)

// TestConformanceEngines runs the Reader conformance suite over real
// connections: the stream goes through loopback TCP, one write per chunk,
// and each engine delivers it (the kernel may merge or split the chunks).
// Engines need a few blocks of their own (a spill reserve), so arenas have
// at least 8; the Reader's limit stays what the scenario asks.
func TestConformanceEngines(t *testing.T) {
	kinds := []reader.EngineKind{reader.Fallback}
	if reader.Probe().IOUring == nil {
		kinds = append(kinds, reader.IOUring)
	}
	n := 60
	if testing.Short() {
		n = 15
	}
	for i, kind := range kinds {
		t.Run(kind.String(), func(t *testing.T) {
			readertest.Run(t, engineFactory(kind), readertest.Options{Seed: uint64(10 + i), Scenarios: n, NoStreamError: true})
		})
	}
}

func engineFactory(kind reader.EngineKind) readertest.Factory {
	return func(t testing.TB, s readertest.Stream, opts ...reader.Option) (*reader.Reader, *arena.Arena, func()) {
		blocks := max(s.Blocks, 8)
		ln, err := reader.Listen("tcp", "127.0.0.1:0", append([]reader.Option{
			reader.WithEngine(kind), reader.WithEngines(1), reader.WithBlockSize(s.BlockSize),
			reader.WithMemory(blocks * s.BlockSize), reader.WithQueueLimit((s.Blocks - 1) * s.BlockSize),
		}, opts...)...)
		require.NoError(t, err)
		peer, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		c, err := ln.Accept()
		require.NoError(t, err)
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			_ = peer.SetWriteDeadline(time.Now().Add(20 * time.Second))
			data := s.Data
			for _, k := range s.Chunks {
				if _, err := peer.Write(data[:k]); err != nil {
					return
				}
				data = data[k:]
			}
			_ = peer.(*net.TCPConn).CloseWrite()
		}()
		a := reader.EngineArena(c)
		return c.Reader(), a, func() {
			_ = peer.Close()
			<-sent
			_ = c.Close()
			_ = ln.Close()
		}
	}
}

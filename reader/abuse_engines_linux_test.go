//go:build linux

package reader_test

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/reader"
)

// Engine Readers (both engines, debug arenas): panicking callbacks leave the
// Reader usable, data complete and in order, and every block back.
func TestEngineCallbackPanicsOnDebugArenas(t *testing.T) { testEnginePanics(t, 200) }
func TestEngineCallbacksOnDebugArenas(t *testing.T)      { testEnginePanics(t, 0) }

func testEnginePanics(t *testing.T, rounds int) {
	for _, eng := range []reader.EngineKind{reader.IOUring, reader.Fallback} {
		t.Run(eng.String(), func(t *testing.T) {
			ln, err := reader.Listen("tcp", "127.0.0.1:0", reader.WithEngine(eng), reader.WithEngines(1), reader.WithDebug(), reader.WithMemory(1<<20))
			if err != nil {
				t.Skip(err)
			}
			defer ln.Close()
			data := []byte(strings.Repeat("0123456789abcdef\n", 20000))
			go func() {
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return
				}
				for p := data; len(p) > 0; {
					k := min(len(p), 1000)
					nc.Write(p[:k])
					p = p[k:]
				}
				nc.Close()
			}()
			c, err := ln.Accept()
			require.NoError(t, err)
			r := c.Reader()
			r.SetDeadline(time.Now().Add(20 * time.Second))
			var got []byte
			boom := func(f func()) {
				defer func() { recover() }()
				f()
			}
			for round := 0; round < rounds; round++ {
				if rounds == 0 {
					break
				}
				boom(func() { _ = r.ReadRange(5000, func([]byte) { panic("x") }) })
				boom(func() { _ = r.Peek(3000, func([][]byte) { panic("x") }) })
				boom(func() { _ = r.ReadSlice('\n', func([][]byte) { panic("x") }) })
				boom(func() { _ = r.ReadLine(func([][]byte) { panic("x") }) })
				require.NoError(t, r.ReadLine(func(v [][]byte) { got = append(append(got, bytes.Join(v, nil)...), '\n') }))
			}
			var rest bytes.Buffer
			_, err = r.WriteTo(&rest)
			require.NoError(t, err)
			got = append(got, rest.Bytes()...)
			assert.True(t, bytes.Equal(data, got), "bytes lost, duplicated or reordered (%d vs %d)", len(got), len(data))
			require.NoError(t, c.Close())
			_, err = r.ReadByte()
			assert.ErrorIs(t, err, net.ErrClosed)
		})
	}
}

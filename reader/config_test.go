package reader

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Settings that cannot work are refused with errors matching
// ErrInvalidConfig, and nothing is left open.
func TestInvalidConfigIsRefused(t *testing.T) {
	cases := map[string]struct {
		opts []Option
		env  string
		want string
	}{
		"memory too small": {opts: []Option{WithMemory(64 << 10), WithEngines(4)}, want: "memory budget 65536 bytes"},
		"unknown engine":   {opts: []Option{WithEngine(EngineKind(99))}, want: "unknown engine"},
		"block size 3000":  {opts: []Option{WithBlockSize(3000)}, want: "block size 3000"},
		"block size 2 MiB": {opts: []Option{WithBlockSize(2 << 20)}, want: "block size 2097152"},
		"bad environment":  {env: "bogus", want: EnvEngine + `="bogus"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv(EnvEngine, tc.env)
			ln, err := Listen("tcp", "127.0.0.1:0", tc.opts...)
			if ln != nil {
				_ = ln.Close()
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			assert.ErrorContains(t, err, tc.want)
			assert.ErrorContains(t, err, "zcio/reader: ")
		})
	}
	t.Run("serve nil", func(t *testing.T) {
		assert.ErrorIs(t, Serve(nil, nil), ErrInvalidConfig)
		ln, err := Listen("tcp", "127.0.0.1:0", WithEngine(Fallback))
		require.NoError(t, err)
		defer ln.Close()
		assert.ErrorIs(t, Serve(ln, nil), ErrInvalidConfig)
	})
}

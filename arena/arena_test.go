package arena_test

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zcio/zcio/arena"
)

func newArena(t testing.TB, cfg arena.Config) *arena.Arena {
	t.Helper()
	a, err := arena.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.Zero(t, a.InUse(), "blocks still in use at the end of the test")
		assert.NoError(t, a.Close())
	})
	return a
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  arena.Config
		want string
	}{
		{"negative block size", arena.Config{BlockSize: -4096, Blocks: 1}, "block size -4096"},
		{"block size below a page", arena.Config{BlockSize: 2048, Blocks: 1}, "block size 2048 outside"},
		{"block size above 1 MiB", arena.Config{BlockSize: 2 << 20, Blocks: 1}, "outside"},
		{"block size not a power of two", arena.Config{BlockSize: 12288, Blocks: 1}, "not a power of two"},
		{"negative block count", arena.Config{BlockSize: 4096, Blocks: -1}, "block count -1"},
		{"too many blocks", arena.Config{BlockSize: 4096, Blocks: arena.MaxBlocks + 1}, "block count 32769"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := arena.New(tc.cfg)
			require.Error(t, err)
			assert.Nil(t, a)
			assert.ErrorIs(t, err, arena.ErrInvalidConfig)
			assert.Contains(t, err.Error(), "zcio/arena:")
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// Where int has 32 bits, Blocks*BlockSize can wrap (4,097 blocks of 1 MiB
// would map 1 MiB, and block 4,096 would alias block 0): New refuses what
// does not fit in an int.
func TestNewRejectsSizeBeyondInt(t *testing.T) {
	if bits.UintSize != 32 {
		t.Skip("every valid configuration fits in a 64-bit int (at most 32 GiB)")
	}
	a, err := arena.New(arena.Config{Blocks: 4097, BlockSize: arena.MaxBlockSize})
	if a != nil {
		t.Errorf("accepted: %d blocks, %d bytes mapped", a.Len(), a.Size())
		_ = a.Close()
	}
	assert.ErrorIs(t, err, arena.ErrInvalidConfig)
	assert.ErrorContains(t, err, "do not fit in an int")
}

func TestZeroConfigUsesDefaults(t *testing.T) {
	a := newArena(t, arena.Config{})
	assert.Equal(t, arena.DefaultBlocks, a.Len())
	assert.Equal(t, arena.DefaultBlockSize, a.BlockSize())
	assert.Equal(t, arena.DefaultBlocks*arena.DefaultBlockSize, a.Size())
}

func TestLimitsAreAccepted(t *testing.T) {
	for _, cfg := range []arena.Config{
		{BlockSize: arena.MinBlockSize, Blocks: 1},
		{BlockSize: arena.MaxBlockSize, Blocks: 2},
		{BlockSize: arena.MinBlockSize, Blocks: arena.MaxBlocks},
	} {
		a := newArena(t, cfg)
		assert.Equal(t, cfg.Blocks, a.Len())
		assert.Len(t, a.Bytes(uint16(cfg.Blocks-1)), cfg.BlockSize)
	}
}

func TestBlocksAreDisjointAndWritable(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 4096, Blocks: 8})
	refs := make([]arena.Ref, 0, 8)
	for i := 0; i < 8; i++ {
		r, ok := a.Take()
		require.True(t, ok)
		b := a.Bytes(r.ID())
		require.Len(t, b, 4096)
		assert.Equal(t, 4096, cap(b), "a block view must not reach into the next block")
		for j := range b {
			b[j] = byte(r.ID())
		}
		refs = append(refs, r)
	}
	for _, r := range refs {
		for _, c := range a.Bytes(r.ID()) {
			require.Equal(t, byte(r.ID()), c, "block %d overwritten by another block", r.ID())
		}
		a.Release(r)
	}
}

func TestExhaustionAndRecovery(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 4096, Blocks: 4})
	var refs []arena.Ref
	seen := map[uint16]bool{}
	for i := 0; i < 4; i++ {
		r, ok := a.Take()
		require.True(t, ok)
		assert.False(t, seen[r.ID()], "block %d handed out twice", r.ID())
		seen[r.ID()] = true
		refs = append(refs, r)
	}
	r, ok := a.Take()
	assert.False(t, ok, "a dry arena must say so")
	assert.Equal(t, arena.Ref{}, r)
	s := a.Stats()
	assert.Equal(t, 4, s.InUse)
	assert.Equal(t, 4, s.PeakInUse)
	assert.Equal(t, uint64(1), s.FailedTakes)

	a.Release(refs[2])
	r, ok = a.Take()
	require.True(t, ok, "a released block must be taken again")
	assert.Equal(t, refs[2].ID(), r.ID())
	assert.Equal(t, refs[2].Gen()+1, r.Gen(), "a new lifetime has a new generation")
	refs[2] = r
	for _, r := range refs {
		a.Release(r)
	}
	s = a.Stats()
	assert.Equal(t, 0, s.InUse)
	assert.Equal(t, 4, s.PeakInUse)
	assert.Equal(t, uint64(5), s.Takes)
	assert.Equal(t, uint64(5), s.GiveBacks)
	assert.Equal(t, uint64(1), s.FailedTakes)
}

// Serial takes hand blocks out newest-free first across the whole arena,
// not just within one free-list shard: a batch of takes (a buffer ring
// refilling) reuses the blocks given back most recently and leaves cold
// ones untouched, so they never become resident.
func TestTakeReusesTheMostRecentlyReleasedBlocks(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 4096, Blocks: 64})
	refs := make([]arena.Ref, a.Len())
	for i := range refs {
		r, ok := a.Take()
		require.True(t, ok)
		refs[i] = r
	}
	// Release in an order that jumps between shards (ids are spread over
	// them by id modulo the shard count).
	order := rand.New(rand.NewPCG(1, 2)).Perm(len(refs))
	for _, i := range order {
		a.Release(refs[i])
	}
	for k := len(order) - 1; k >= 0; k-- {
		r, ok := a.Take()
		require.True(t, ok)
		assert.Equal(t, refs[order[k]].ID(), r.ID(), "take %d is not the block released %d-th", len(order)-1-k, k)
		refs[order[k]] = r
	}
	// A hot set of 8 released last is what a batch of 8 takes gets back.
	hot := map[uint16]bool{}
	for _, i := range order {
		if i%8 != 0 {
			a.Release(refs[i])
		}
	}
	for _, i := range order {
		if i%8 == 0 {
			a.Release(refs[i])
			hot[refs[i].ID()] = true
		}
	}
	batch := make([]arena.Ref, 0, len(hot))
	for range hot {
		r, ok := a.Take()
		require.True(t, ok)
		assert.True(t, hot[r.ID()], "block %d is cold", r.ID())
		batch = append(batch, r)
	}
	for _, r := range batch {
		a.Release(r)
	}
}

func TestDoubleReleasePanics(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 4096, Blocks: 2})
	r, ok := a.Take()
	require.True(t, ok)
	a.Release(r)
	msg := fmt.Sprintf("zcio/arena: release of block %d gen %d: already released (block is free at gen %d): double release", r.ID(), r.Gen(), r.Gen()+1)
	assert.PanicsWithValue(t, msg, func() { a.Release(r) })
	assert.Equal(t, 0, a.InUse(), "a refused release changes nothing")
	// The block is handed out once, not twice.
	r1, ok1 := a.Take()
	r2, ok2 := a.Take()
	require.True(t, ok1)
	require.True(t, ok2)
	assert.NotEqual(t, r1.ID(), r2.ID())
	_, ok = a.Take()
	assert.False(t, ok)
	a.Release(r1)
	a.Release(r2)
}

func TestStaleRefPanics(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 4096, Blocks: 1})
	old, ok := a.Take()
	require.True(t, ok)
	a.Release(old)
	cur, ok := a.Take()
	require.True(t, ok)
	require.Equal(t, old.ID(), cur.ID())

	msg := fmt.Sprintf("zcio/arena: release of block %d gen %d: stale reference (block is at gen %d with 1 references)", old.ID(), old.Gen(), cur.Gen())
	assert.PanicsWithValue(t, msg, func() { a.Release(old) })
	assert.Panics(t, func() { a.Retain(old) })
	assert.Equal(t, 1, a.Refs(cur.ID()), "the current owner keeps its block")
	a.Release(cur)
}

func TestRetainKeepsBlockUntilLastRelease(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 4096, Blocks: 1})
	r, ok := a.Take()
	require.True(t, ok)
	a.Retain(r)
	a.Retain(r)
	assert.Equal(t, 3, a.Refs(r.ID()))
	a.Release(r)
	a.Release(r)
	_, ok = a.Take()
	assert.False(t, ok, "block must stay taken while a reference remains")
	got, ok := a.Lookup(r.ID())
	assert.True(t, ok)
	assert.Equal(t, r, got)
	a.Release(r)
	_, ok = a.Lookup(r.ID())
	assert.False(t, ok, "a free block has no current lifetime")
	assert.Equal(t, 0, a.InUse())
}

func TestRefHandOffAcrossGoroutines(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 4096, Blocks: 16})
	const rounds = 2000
	ch := make(chan arena.Ref, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := range ch {
			b := a.Bytes(r.ID())
			if b[0] != byte(r.Gen()) {
				panic("receiver saw bytes of another lifetime")
			}
			a.Release(r) // the second of two references
		}
	}()
	for i := 0; i < rounds; i++ {
		r, ok := a.Take()
		for !ok {
			runtime.Gosched()
			r, ok = a.Take()
		}
		a.Bytes(r.ID())[0] = byte(r.Gen())
		a.Retain(r)
		ch <- r
		a.Release(r) // the sender's reference
	}
	close(ch)
	wg.Wait()
	s := a.Stats()
	assert.Equal(t, 0, s.InUse)
	assert.Equal(t, uint64(rounds), s.Takes)
	assert.Equal(t, uint64(rounds), s.GiveBacks)
}

func TestConcurrentTakeGiveBack(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 4096, Blocks: 64})
	const workers, rounds = 8, 5000
	owner := make([]int32, a.Len()) // which worker holds each block; guarded by the arena's protocol
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failures []string
	for w := 1; w <= workers; w++ {
		wg.Add(1)
		go func(w int32) {
			defer wg.Done()
			held := make([]arena.Ref, 0, 8)
			for i := 0; i < rounds; i++ {
				if r, ok := a.Take(); ok {
					mu.Lock()
					if owner[r.ID()] != 0 {
						failures = append(failures, fmt.Sprintf("block %d taken by %d while held by %d", r.ID(), w, owner[r.ID()]))
					}
					owner[r.ID()] = w
					mu.Unlock()
					held = append(held, r)
				}
				if len(held) == cap(held) || (i%3 == 0 && len(held) > 0) {
					r := held[len(held)-1]
					held = held[:len(held)-1]
					mu.Lock()
					owner[r.ID()] = 0
					mu.Unlock()
					a.Release(r)
				}
			}
			for _, r := range held {
				mu.Lock()
				owner[r.ID()] = 0
				mu.Unlock()
				a.Release(r)
			}
		}(int32(w))
	}
	wg.Wait()
	assert.Empty(t, failures)
	s := a.Stats()
	assert.Equal(t, 0, s.InUse)
	assert.Equal(t, s.Takes, s.GiveBacks)
	assert.LessOrEqual(t, s.PeakInUse, 64)
	assert.Positive(t, s.PeakInUse)
}

func TestCloseWithBlocksInUse(t *testing.T) {
	a, err := arena.New(arena.Config{BlockSize: 4096, Blocks: 4})
	require.NoError(t, err)
	r, ok := a.Take()
	require.True(t, ok)
	err = a.Close()
	require.Error(t, err)
	assert.ErrorIs(t, err, arena.ErrInUse)
	assert.Contains(t, err.Error(), "1 of 4 blocks")
	a.Bytes(r.ID())[0] = 7 // still mapped: no fault
	a.Release(r)
	require.NoError(t, a.Close())
	assert.ErrorIs(t, a.Close(), arena.ErrClosed)
}

func TestOptionsAreHonoured(t *testing.T) {
	a := newArena(t, arena.Config{BlockSize: 1 << 20, Blocks: 4, Prefault: true, HugePages: true, Debug: true})
	if runtime.GOOS == "linux" {
		assert.True(t, a.Debug(), "mprotect exists on Linux: debug mode must be on")
		thp, _ := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
		if len(thp) > 0 && !strings.Contains(string(thp), "[never]") {
			assert.True(t, a.HugePages(), "THP is %q: madvise should be accepted", strings.TrimSpace(string(thp)))
		}
	}
	r, ok := a.Take()
	require.True(t, ok)
	b := a.Bytes(r.ID())
	b[0], b[len(b)-1] = 1, 2 // a taken block is writable in debug mode
	a.Release(r)
}

// debugChildEnv selects the child's role when the test binary re-executes itself.
const debugChildEnv = "ZCIO_ARENA_DEBUG_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(debugChildEnv) == "use-after-release" {
		useAfterRelease()
		os.Exit(0) // not reached when debug mode works
	}
	os.Exit(m.Run())
}

// useAfterRelease keeps a view past its block's release and reads it.
func useAfterRelease() {
	a, err := arena.New(arena.Config{BlockSize: 4096, Blocks: 2, Debug: true})
	if err != nil || !a.Debug() {
		fmt.Fprintln(os.Stderr, "no debug arena:", err)
		os.Exit(3)
	}
	r, _ := a.Take()
	view := a.Bytes(r.ID())
	view[0] = 42
	fmt.Fprintf(os.Stderr, "view at %p\n", &view[0])
	a.Release(r)
	fmt.Fprintln(os.Stderr, "read after release:", view[0])
}

func TestDebugModeFaultsOnUseAfterRelease(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("debug protection needs mprotect (Linux)")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), debugChildEnv+"=use-after-release", "GOTRACEBACK=single")
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	require.True(t, errors.As(err, &exitErr), "child must fail, got %v: %s", err, out)
	text := string(out)
	assert.Contains(t, text, "signal SIGSEGV", "child must die of a segmentation fault")
	assert.NotContains(t, text, "read after release", "the stale read must not complete")
	// The fault address is the view's own address.
	var addr uintptr
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "view at ") {
			_, err := fmt.Sscanf(line, "view at %v", &addr)
			require.NoError(t, err)
		}
	}
	require.NotZero(t, addr, "child did not report its view: %s", text)
	assert.Contains(t, text, fmt.Sprintf("addr=%#x", addr))
}

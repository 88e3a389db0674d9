package harness

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestMain lets the test binary serve as the harness's server and load
// generator children, as the real command does.
func TestMain(m *testing.M) {
	if ok, err := ChildMain(); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Each repetition after the first runs every contender once, in an order of
// its own: no contender always follows the same one.
func TestRepOrderShuffles(t *testing.T) {
	live := make([]Contender, 8)
	for i := range live {
		live[i].Name = string(rune('a' + i))
	}
	names := func(cs []Contender) string {
		var b strings.Builder
		for _, c := range cs {
			b.WriteString(c.Name)
		}
		return b.String()
	}
	assert.Equal(t, "abcdefgh", names(repOrder(live, 1)), "the first repetition keeps the order given")
	seen := map[string]bool{}
	for rep := 2; rep <= 4; rep++ {
		got := repOrder(live, rep)
		assert.ElementsMatch(t, live, got, "rep %d runs every contender once", rep)
		assert.Equal(t, names(got), names(repOrder(live, rep)), "rep %d's order is reproducible", rep)
		seen[names(got)] = true
	}
	assert.Len(t, seen, 3, "each repetition has an order of its own")
	assert.Equal(t, "abcdefgh", names(live), "the given slice is not reordered")
}

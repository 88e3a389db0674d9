package harness

import (
	"fmt"
	"os"
	"testing"
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

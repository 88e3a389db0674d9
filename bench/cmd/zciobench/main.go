// Command zciobench compares zcio's engines with the standard library and
// peer libraries, each server in its own process, and prints, saves (JSON)
// and draws (SVG) the results. Run it without arguments for the default
// comparison; -h lists the flags.
package main

import (
	"fmt"
	"os"

	"github.com/zcio/zcio/bench/internal/harness"
)

func main() {
	if err := harness.Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "zciobench:", err)
		os.Exit(1)
	}
}

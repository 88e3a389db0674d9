// Command iouringgo-server runs the iouring-go contender in its own process.
// iouring-go links only with -ldflags=-checklinkname=0, so the harness builds
// this binary separately:
//
//	go build -tags iouringgo -ldflags=-checklinkname=0 ./cmd/iouringgo-server
//
// Without the iouringgo tag it builds a stub that says so.
package main

import (
	"fmt"
	"os"

	"github.com/zcio/zcio/bench/internal/server"
)

func main() {
	if err := server.Main(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "iouringgo-server:", err)
		os.Exit(1)
	}
}

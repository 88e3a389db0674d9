// Command goroutinecost measures what one parked goroutine costs the Go
// runtime, with no connection state at all: the floor under any
// goroutine-per-connection (blocking mode) server's idle memory.
//
// It makes -n channels, then parks a goroutine on each, and prints per
// goroutine the growth of the live heap (the runtime's goroutine structure,
// the sudog it waits on, its closure) and of the stack memory in use, and
// separately what the channels took.
package main

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
)

func main() {
	n := flag.Int("n", 10000, "goroutines to park")
	flag.Parse()
	if *n <= 0 {
		fmt.Println("goroutinecost: -n must be positive")
		return
	}
	var before, mid, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	chans := make([]chan struct{}, *n)
	for i := range chans {
		chans[i] = make(chan struct{})
	}
	runtime.GC()
	runtime.ReadMemStats(&mid)
	var parked sync.WaitGroup
	parked.Add(*n)
	for _, c := range chans {
		go func() {
			parked.Done()
			<-c
		}()
	}
	parked.Wait()
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := func(a, b uint64) float64 { return float64(int64(a)-int64(b)) / float64(*n) }
	heap, stack := per(after.HeapAlloc, mid.HeapAlloc), per(after.StackInuse, mid.StackInuse)
	fmt.Printf("%d parked goroutines, each: heap %.0f B (goroutine structure, sudog, closure), stack %.0f B, sum %.0f B; "+
		"its channel (and slice slot) %.0f B more\n", *n, heap, stack, heap+stack, per(mid.HeapAlloc, before.HeapAlloc))
	for _, c := range chans {
		close(c)
	}
}

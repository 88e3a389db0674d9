package reader_test

import (
	"testing"

	"github.com/zcio/zcio/reader/readertest"
)

func TestConformancePull(t *testing.T) {
	readertest.Run(t, pullFactory, readertest.Options{Seed: 1, Scenarios: scenarios(t)})
}

func TestConformanceQueue(t *testing.T) {
	readertest.Run(t, queueFactory, readertest.Options{Seed: 2, Scenarios: scenarios(t)})
}

func scenarios(t *testing.T) int {
	if testing.Short() {
		return 30
	}
	return 200
}

//go:build race

package reader

// raceEnabled: the race detector is on (frames are larger, stacks deeper).
const raceEnabled = true

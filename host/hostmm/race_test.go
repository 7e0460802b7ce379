//go:build race

package hostmm

// raceEnabled: the race detector is on; long tests use smaller counts.
const raceEnabled = true

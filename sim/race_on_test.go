//go:build race

package sim

// raceEnabled shortens the runs under the race detector (about ten times
// slower).
const raceEnabled = true

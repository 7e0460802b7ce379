//go:build race

package s2pt

// raceOn reports a -race build: the slow randomized tests do less work.
const raceOn = true

//go:build !race

package s2pt

const raceOn = false

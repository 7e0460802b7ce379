//go:build !linux

package bench

// threadCPU falls back to the wall clock where no thread CPU clock is
// available.
func threadCPU() int64 { return wallNs() }

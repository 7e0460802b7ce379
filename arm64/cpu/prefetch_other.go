//go:build !amd64 && !arm64

package cpu

// prefetch does nothing where the host has no prefetch instruction here.
func prefetch(p *uint64) {}

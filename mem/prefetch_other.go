//go:build !amd64 && !arm64

package mem

// Prefetch does nothing where the host has no prefetch instruction here.
func Prefetch(p *uint64) {}

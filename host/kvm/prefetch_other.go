//go:build !amd64 && !arm64

package kvm

// prefetch does nothing where the host has no prefetch instruction here.
func prefetch(p *uint64) {}

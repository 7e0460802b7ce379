//go:build amd64 || arm64

package kvm

// prefetch asks the host CPU to bring the cache line of *p in (a software
// prefetch: it does not wait for the line, and changes nothing).
//
//go:noescape
func prefetch(p *uint64)

//go:build amd64 || arm64

package cpu

// prefetch asks the host CPU to bring the cache line of *p in (a software
// prefetch: it does not wait for the line, and changes nothing). A TLB
// miss prefetches the word it translated before filling the TLB. (host/kvm
// has the same instruction for its batches.)
//
//go:noescape
func prefetch(p *uint64)

//go:build amd64 || arm64

package mem

// Prefetch asks the host CPU to bring the cache line of *p in (a software
// prefetch: it does not wait for the line, and changes nothing modelled).
// The batches' hit loops prefetch the guest words of a group of accesses,
// a TLB miss the word it translated before filling the TLB.
//
//go:noescape
func Prefetch(p *uint64)

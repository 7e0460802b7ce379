//go:build (amd64 || arm64) && !race

package mem

// StoreWord stores v in a word of modelled memory that other goroutines
// may read concurrently, single-copy atomic as an aligned 64-bit store
// must be (DDI 0487 B2.2.1). On a 64-bit platform a plain aligned word
// store is one: the Go memory model makes every read of a memory location
// no larger than a machine word observe one whole write, racing or not.
// It is not atomic.StoreUint64, which on amd64 is an XCHG that waits for
// the cache line (a guest store missing the host's cache stalled the
// PE's hit path as long as a load miss). The race detector's build uses
// atomic.StoreUint64 (wordstore_atomic.go), so that it sees such accesses
// as synchronized.
func StoreWord(p *uint64, v uint64) { *p = v }

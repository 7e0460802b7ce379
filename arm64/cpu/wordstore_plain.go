//go:build (amd64 || arm64) && !race

package cpu

// storeWord stores v in a word of guest memory, single-copy atomic as an
// aligned 64-bit store must be (DDI 0487 B2.2.1). On a 64-bit platform a
// plain aligned word store is one: the Go memory model makes every read of
// a memory location no larger than a machine word observe one whole write,
// racing or not. It is not atomic.StoreUint64, which on amd64 is an XCHG
// that waits for the line (a store missing the cache stalled the hit path
// for as long as the load of a miss); the race detector's build uses that
// one (wordstore_atomic.go), so that it sees concurrent guest accesses to
// a word as synchronized.
func storeWord(p *uint64, v uint64) { *p = v }

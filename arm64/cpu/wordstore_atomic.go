//go:build !((amd64 || arm64) && !race)

package cpu

import "sync/atomic"

// storeWord stores v in a word of guest memory, single-copy atomic
// (wordstore_plain.go has the plain store of the 64-bit platforms).
func storeWord(p *uint64, v uint64) { atomic.StoreUint64(p, v) }

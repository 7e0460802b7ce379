//go:build !((amd64 || arm64) && !race)

package mem

import "sync/atomic"

// StoreWord stores v in a word of modelled memory, single-copy atomic
// (wordstore_plain.go has the plain store of the 64-bit platforms).
func StoreWord(p *uint64, v uint64) { atomic.StoreUint64(p, v) }

package hostmm

import "github.com/nestmmu/nestmmu/mem"

// pte is one entry of the host page table: a frame mapping, a swap entry,
// a migration entry or nothing. It is this package's own format, not the
// ARM one. Entries change only under their chunk lock; the lockless hit
// path of FaultIn reads them and may set the young and dirty bits.
type pte uint64

const (
	ptePresent   pte = 1 << iota // maps the frame in the address bits
	pteWrite                     // writes allowed (clear: read-only or KSM/COW)
	pteYoung                     // accessed since the last aging scan
	pteDirty                     // written since mapped
	pteHuge                      // part of a 2 MiB block mapping (frames contiguous)
	pteKSM                       // the frame is a KSM page, shared read-only
	pteSwap                      // not present: contents in the swap slot in the address bits
	pteMigrating                 // not present: being migrated (held only under the chunk lock)

	pteAddrShift     = 12
	pteAddrMask  pte = ^pte(1<<pteAddrShift - 1)
)

func (e pte) present() bool { return e&ptePresent != 0 }
func (e pte) pa() mem.PA    { return mem.PA(e & pteAddrMask) }
func (e pte) slot() uint64  { return uint64(e >> pteAddrShift) }

func mkPresent(pa mem.PA, flags pte) pte { return pte(pa)&pteAddrMask | ptePresent | flags }
func mkSwap(slot uint64) pte             { return pte(slot)<<pteAddrShift | pteSwap }

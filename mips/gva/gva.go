// Package gva is KVM/MIPS trap-and-emulate's GVA->HPA page table: a
// two-level table (pgd, then pages of PTEs) indexed by guest virtual
// address at the host page size, walked by the fast TLB refill handler and
// managed by the slow paths.
//
// A PTE keeps the EntryLo the refill handler writes in its low 32 bits and
// software bits above them, the way Linux/MIPS keeps software bits that the
// refill handler shifts away. An empty PTE converts to an invalid EntryLo,
// so the refill needs no presence check.
//
// Two walks live here and nowhere else: Pair, the architectural walk the
// refill handler does for one address (allocation-free), and Walk, the
// management walk over a range that calls a Visitor at each leaf and after
// each table page (flush, make-clean and counting are visitors).
package gva

import (
	"fmt"
	"math/bits"
)

// PTE is one GVA page-table entry.
type PTE uint64

// Hardware bits (the EntryLo written to the host TLB) and software bits.
const (
	G        PTE = 1 << 0 // global (never set for GVA mappings)
	V        PTE = 1 << 1 // valid
	D        PTE = 1 << 2 // dirty: writes allowed by the host TLB
	CMask    PTE = 0x38   // cache attribute
	PFNMask  PTE = 0x3fffffc0
	Present  PTE = 1 << 32 // a mapping exists
	Write    PTE = 1 << 33 // the mapping may be made writable (guest D=1)
	Modified PTE = 1 << 34 // the host page is dirty and D was granted
	Commpage PTE = 1 << 35 // the mapping is the commpage
)

// CacheCoherent is the cacheable-noncoherent attribute (C=3) KVM uses.
const CacheCoherent PTE = 3 << 3

// EntryLo returns the EntryLo the refill handler loads for the PTE.
func (p PTE) EntryLo() uint32 { return uint32(p & (PFNMask | CMask | D | V | G)) }

// HPA returns the host physical page address of the PTE.
func (p PTE) HPA() uint64 { return uint64(p&PFNMask) << 6 }

// Make returns a present, valid PTE for host page hpa.
func Make(hpa uint64) PTE { return PTE(hpa>>6)&PFNMask | V | Present | CacheCoherent }

// Table is one GVA page table (the guest kernel one or the guest user one).
type Table struct {
	pageShift uint // log2 host page size
	pteShift  uint // log2 PTEs per table page (4-byte PTEs on MIPS32)
	pgd       [][]PTE
	free      [][]PTE

	// Live is the number of PTE pages in the table.
	Live int
	// Allocated and Freed count PTE pages taken and released.
	Allocated, Freed uint64
}

// New returns an empty table for host pages of pageSize bytes.
func New(pageSize uint32) (*Table, error) {
	if pageSize < 4096 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return nil, fmt.Errorf("gva: page size %d is not a power of two in [4096,65536]", pageSize)
	}
	ps := uint(bits.TrailingZeros32(pageSize))
	t := &Table{pageShift: ps, pteShift: ps - 2}
	t.pgd = make([][]PTE, 1<<(32-ps-t.pteShift))
	return t, nil
}

// PageShift returns log2 of the page size.
func (t *Table) PageShift() uint { return t.pageShift }

// span returns the bytes of VA one PTE page covers.
func (t *Table) span() uint64 { return uint64(1) << (t.pageShift + t.pteShift) }

// Pair returns the even and odd PTEs of the pair containing va: the fast
// refill handler's walk (pgd index, then PTE index with the low bit
// cleared). A missing PTE page reads as empty PTEs.
func (t *Table) Pair(va uint32) (even, odd PTE) {
	pt := t.pgd[va>>(t.pageShift+t.pteShift)]
	if pt == nil {
		return 0, 0
	}
	i := (va >> t.pageShift) & (1<<t.pteShift - 1) &^ 1
	return pt[i], pt[i+1]
}

// Lookup returns the PTE for va.
func (t *Table) Lookup(va uint32) PTE {
	pt := t.pgd[va>>(t.pageShift+t.pteShift)]
	if pt == nil {
		return 0
	}
	return pt[(va>>t.pageShift)&(1<<t.pteShift-1)]
}

// Slot returns the PTE for va, allocating its PTE page if needed.
func (t *Table) Slot(va uint32) *PTE {
	gi := va >> (t.pageShift + t.pteShift)
	pt := t.pgd[gi]
	if pt == nil {
		if n := len(t.free); n > 0 {
			pt = t.free[n-1]
			t.free = t.free[:n-1]
		} else {
			pt = make([]PTE, 1<<t.pteShift)
		}
		t.pgd[gi] = pt
		t.Live++
		t.Allocated++
	}
	return &pt[(va>>t.pageShift)&(1<<t.pteShift-1)]
}

// Visitor is an operation over a range of the table.
type Visitor interface {
	// Leaf is called for every PTE of the range in a present PTE page.
	Leaf(va uint32, p *PTE)
	// Post is called after the leaves of a PTE page; covered reports that
	// the range covers the whole page. Returning true frees the page,
	// which the visitor must have left empty.
	Post(va uint32, covered bool) (free bool)
}

// Walk visits [start, end) (end may be 1<<32) in address order. Missing PTE
// pages are skipped, as the kernel's walk skips invalid_pte_table.
func (t *Table) Walk(start, end uint64, v Visitor) {
	if end > 1<<32 {
		end = 1 << 32
	}
	span := t.span()
	for base := start &^ (span - 1); base < end; base += span {
		gi := base >> (t.pageShift + t.pteShift)
		pt := t.pgd[gi]
		if pt == nil {
			continue
		}
		lo, hi := max(start, base), min(end, base+span)
		if f, ok := v.(*Flusher); ok {
			// The flush's leaves without a call per PTE: what Flusher.Leaf
			// does to each.
			m := uint64(1)<<t.pteShift - 1
			for i := lo >> t.pageShift & m; i <= (hi-1)>>t.pageShift&m; i++ {
				if pt[i] != 0 {
					pt[i] = 0
					f.Cleared++
				}
			}
		} else {
			for va := lo &^ (1<<t.pageShift - 1); va < hi; va += 1 << t.pageShift {
				v.Leaf(uint32(va), &pt[(va>>t.pageShift)&(1<<t.pteShift-1)])
			}
		}
		if v.Post(uint32(base), lo == base && hi == base+span) {
			clear(pt)
			t.pgd[gi] = nil
			t.free = append(t.free, pt)
			t.Live--
			t.Freed++
		}
	}
}

// Flusher clears every PTE it visits and frees fully covered PTE pages
// (kvm_mips_flush_gva_pt). It counts what it did.
type Flusher struct {
	Cleared int // non-empty PTEs cleared
	Freed   int // PTE pages freed
}

// Leaf implements Visitor.
func (f *Flusher) Leaf(_ uint32, p *PTE) {
	if *p != 0 {
		*p = 0
		f.Cleared++
	}
}

// Post implements Visitor.
func (f *Flusher) Post(_ uint32, covered bool) bool {
	if covered {
		f.Freed++
	}
	return covered
}

// Cleaner write-protects every PTE it visits (clears D and Modified), so
// the next store refaults and is logged dirty again. The commpage is KVM's
// own page and stays writable.
type Cleaner struct {
	Cleaned int
}

// Leaf implements Visitor.
func (c *Cleaner) Leaf(_ uint32, p *PTE) {
	if *p&(D|Modified) != 0 && *p&Commpage == 0 {
		*p &^= D | Modified
		c.Cleaned++
	}
}

// Post implements Visitor.
func (c *Cleaner) Post(uint32, bool) bool { return false }

// Counter counts present PTEs.
type Counter struct {
	Present int
}

// Leaf implements Visitor.
func (c *Counter) Leaf(_ uint32, p *PTE) {
	if *p&Present != 0 {
		c.Present++
	}
}

// Post implements Visitor.
func (c *Counter) Post(uint32, bool) bool { return false }

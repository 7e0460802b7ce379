// Package hosttlb models the host MIPS TLB that a trap-and-emulate guest
// runs on: a fully associative, ASID-tagged, software-refilled TLB of
// even/odd page pairs at the host page size, with random replacement
// (TLBWR), probe (TLBP) and invalidation by writing unique entries in host
// KSeg0 that no user address can match (Linux's UNIQUE_ENTRYHI).
//
// Lookup and WriteRandom are the hot paths of the fast refill and are
// allocation-free.
package hosttlb

import (
	"fmt"
	"math/bits"
)

// Entry is one host TLB entry: EntryHi (VPN2 | ASID) and the two EntryLo
// halves in the MIPS32 EntryLo format. The page mask is the host page size
// for every entry.
type Entry struct {
	Hi  uint32
	Lo0 uint32
	Lo1 uint32
}

// EntryLo bits used here (MIPS32 EntryLo).
const (
	LoG   = 1 << 0
	LoV   = 1 << 1
	LoD   = 1 << 2
	LoPFN = 0x3fffffc0
)

// uniqueBase is where invalid entries are parked: host KSeg0, never a user
// address, one distinct VPN2 per index.
const uniqueBase = 0x80000000

// TLB is the host TLB.
type TLB struct {
	e         []Entry
	global    []bool
	pageShift uint
	vpn2Mask  uint32
	rng       uint64
	wired     int
	// The hardware compares all entries at once; the model finds the
	// candidates through chains of the entries by a hash of their VPN2
	// (every entry that can match an address has its VPN2, so it is on the
	// address's chain): head[h] and link[i] hold index+1 (0 ends a
	// chain), in index order, bucket[i] is entry i's chain. A lookup or
	// probe compares the chain's entries only and answers as a scan of all
	// of them would.
	head      []uint16
	link      []uint16
	bucket    []uint32
	hashShift uint
	// dup and dupPass are Duplicates' hash table, kept between calls.
	dup     []uint32
	dupPass uint32
}

// New returns a host TLB of n entries (1 to 1024) for
// pages of pageSize bytes (a power of two from 4 KiB to 64 KiB), with
// random replacement seeded by seed. Every entry starts unique and invalid.
func New(n int, pageSize uint32, seed uint64) (*TLB, error) {
	if n < 1 || n > 1024 {
		return nil, fmt.Errorf("hosttlb: entry count %d out of range [1,1024]", n)
	}
	if pageSize < 4096 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return nil, fmt.Errorf("hosttlb: page size %d is not a power of two in [4096,65536]", pageSize)
	}
	t := &TLB{
		e:         make([]Entry, n),
		global:    make([]bool, n),
		pageShift: uint(bits.TrailingZeros32(pageSize)),
		rng:       seed | 1,
		link:      make([]uint16, n),
		bucket:    make([]uint32, n),
	}
	t.vpn2Mask = ^(uint32(2)<<t.pageShift - 1)
	buckets := 64
	for buckets < 2*n {
		buckets <<= 1
	}
	t.head = make([]uint16, buckets)
	t.hashShift = 32 - uint(bits.TrailingZeros(uint(buckets)))
	for i := n - 1; i >= 0; i-- {
		// Chain every entry, in index order, before FlushAll rewrites
		// them (each write unlinks the entry from the chain it is on).
		t.bucket[i] = 0
		t.link[i] = t.head[0]
		t.head[0] = uint16(i + 1)
	}
	t.FlushAll()
	return t, nil
}

// Len returns the number of entries.
func (t *TLB) Len() int { return len(t.e) }

// PageShift returns log2 of the page size.
func (t *TLB) PageShift() uint { return t.pageShift }

// Entry returns entry i.
func (t *TLB) Entry(i int) Entry { return t.e[i] }

// match reports whether entry i translates va for asid.
func (t *TLB) match(i int, va uint32, asid uint8) bool {
	e := &t.e[i]
	return (e.Hi^va)&t.vpn2Mask == 0 && (t.global[i] || uint8(e.Hi) == asid)
}

// Lookup returns the EntryLo half that translates va for asid and whether
// an entry matched. It does not check V or D: the caller raises TLB Invalid
// or TLB Modified as the hardware would.
func (t *TLB) Lookup(va uint32, asid uint8) (lo uint32, hit bool) {
	// Probe's walk, written out so that it is compiled in place.
	for c := t.head[t.hash(va)]; c != 0; c = t.link[c-1] {
		if i := int(c - 1); t.match(i, va, asid) {
			e := &t.e[i]
			if va>>(t.pageShift&31)&1 == 0 {
				return e.Lo0, true
			}
			return e.Lo1, true
		}
	}
	return 0, false
}

// hash is the chain of the entries whose VPN2 is va's.
func (t *TLB) hash(va uint32) uint32 {
	return ((va & t.vpn2Mask) * 0x9e3779b1) >> (t.hashShift & 31) // < 32: a plain shift
}

// Probe returns the index of the entry matching va and asid, or -1 (TLBP).
// Were two entries to match, it returns the lower index, as a scan from
// entry 0 would: a chain is kept in index order.
func (t *TLB) Probe(va uint32, asid uint8) int {
	for c := t.head[t.hash(va)]; c != 0; c = t.link[c-1] {
		i := int(c - 1)
		if t.match(i, va, asid) {
			return i
		}
	}
	return -1
}

// next is xorshift64*, the model's source for TLBWR's Random.
func (t *TLB) next() uint64 {
	x := t.rng
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	t.rng = x
	return x * 0x2545f4914f6cdd1d
}

// WriteRandom writes e at a random non-wired index (TLBWR) and returns the
// index. The caller guarantees e does not duplicate a live entry.
func (t *TLB) WriteRandom(e Entry) int {
	n := uint64(len(t.e) - t.wired)
	i := t.wired + int((t.next()>>32)*n>>32)
	t.write(i, e)
	return i
}

// WriteIndexed writes e at index i (TLBWI).
func (t *TLB) WriteIndexed(i int, e Entry) { t.write(i, e) }

func (t *TLB) write(i int, e Entry) {
	e.Hi &= t.vpn2Mask | 0xff
	t.set(i, e, e.Lo0&e.Lo1&LoG != 0)
}

// set replaces entry i, moving it to the chain of its new VPN2.
func (t *TLB) set(i int, e Entry, global bool) {
	if h := t.hash(e.Hi); h != t.bucket[i] {
		t.unlink(i)
		t.bucket[i] = h
		p := &t.head[h]
		for *p != 0 && int(*p) < i+1 {
			p = &t.link[*p-1]
		}
		t.link[i] = *p
		*p = uint16(i + 1)
	}
	t.e[i] = e
	t.global[i] = global
}

// unlink takes entry i off its chain.
func (t *TLB) unlink(i int) {
	p := &t.head[t.bucket[i]]
	for *p != uint16(i+1) {
		p = &t.link[*p-1]
	}
	*p = t.link[i]
}

// Invalidate makes entry i unique and invalid.
func (t *TLB) Invalidate(i int) {
	t.set(i, Entry{Hi: uniqueBase + uint32(i)<<(t.pageShift+1)}, false)
}

// InvalidateVA invalidates the entry matching va for asid, if any, and
// reports whether there was one (kvm_mips_host_tlb_inv: TLBP, then write a
// unique entry).
func (t *TLB) InvalidateVA(va uint32, asid uint8) bool {
	i := t.Probe(va, asid)
	if i < 0 {
		return false
	}
	t.Invalidate(i)
	return true
}

// InvalidateRange invalidates every entry for asid (or global) whose pair
// lies in [start, end), returning how many it invalidated. It scans the
// TLB, which is cheaper than probing page by page once the range holds
// more pairs than the TLB has entries.
func (t *TLB) InvalidateRange(start, end uint64, asid uint8) int {
	n := 0
	for i := range t.e {
		hi := uint64(t.e[i].Hi & t.vpn2Mask)
		if hi >= start && hi < end && hi < uniqueBase && (t.global[i] || uint8(t.e[i].Hi) == asid) {
			t.Invalidate(i)
			n++
		}
	}
	return n
}

// FlushAll invalidates every entry (local_flush_tlb_all).
func (t *TLB) FlushAll() {
	for i := range t.e {
		t.Invalidate(i)
	}
}

// Duplicates returns a description of the first pair of live entries that
// would both match some address, or "" when there is none. Such a pair is
// a machine check on real hardware; tests use this as an invariant after
// every operation, so it hashes the entries by VPN2 instead of comparing
// every pair.
func (t *TLB) Duplicates() string {
	size := 16
	for size < 2*len(t.e) {
		size <<= 1
	}
	if len(t.dup) != size {
		t.dup, t.dupPass = make([]uint32, size), 0
	}
	// A slot holds the pass that wrote it (upper bits) and index+1 (low 11
	// bits), so the table needs no clearing between calls.
	t.dupPass++
	if t.dupPass == 1<<21 {
		clear(t.dup)
		t.dupPass = 1
	}
	tag := t.dupPass << 11
	shift := 32 - uint(bits.TrailingZeros(uint(size)))
	for i := range t.e {
		a := t.e[i]
		vpn := a.Hi & t.vpn2Mask
		for h := vpn * 0x9e3779b1 >> shift; ; h = (h + 1) & uint32(size-1) {
			s := t.dup[h]
			if s&^0x7ff != tag {
				t.dup[h] = tag | uint32(i+1)
				break
			}
			j := int(s&0x7ff) - 1
			b := t.e[j]
			if b.Hi&t.vpn2Mask == vpn && (t.global[i] || t.global[j] || uint8(a.Hi) == uint8(b.Hi)) {
				return fmt.Sprintf("host TLB entries %d and %d both match %#x (asids %d, %d)", j, i, vpn, uint8(b.Hi), uint8(a.Hi))
			}
		}
	}
	return ""
}

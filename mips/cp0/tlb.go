package cp0

// Entry is one guest TLB entry as TLBWI/TLBWR write it.
//
// This implementation zeroes the VPN2 and PFN bits covered by the page mask
// when the entry is written, so TLBR returns them as zero (MIPS32 Vol. III,
// TLBR: "implementation dependent whether these bits are preserved or
// zeroed").
type Entry struct {
	Mask uint32 // PageMask (normalized)
	Hi   uint32 // EntryHi: VPN2 | ASID
	Lo   [2]uint32
	G    bool // global: EntryLo0.G and EntryLo1.G were both set
}

// Valid reports whether either half of the entry is valid. An entry with
// both halves invalid can never have produced a translation.
func (e *Entry) Valid() bool { return (e.Lo[0]|e.Lo[1])&EntryLoV != 0 }

// Span returns the first and one-past-last virtual address the entry's
// pair covers.
func (e *Entry) Span() (start, end uint64) {
	size := uint64(2) << EvenOddBit(e.Mask)
	start = uint64(e.Hi&EntryHiVPN2) &^ (size - 1)
	return start, start + size
}

// Matches reports whether the entry translates va for asid: VPN2 equal
// outside the page mask and ASID equal or the entry global (MIPS32 Vol. III,
// "Address Translation", TLB lookup pseudocode).
func (e *Entry) Matches(va uint32, asid uint8) bool {
	vpnMask := EntryHiVPN2 &^ e.Mask
	if (e.Hi^va)&vpnMask != 0 {
		return false
	}
	return e.G || uint8(e.Hi) == asid
}

// Half returns the EntryLo that translates va (va must match the entry).
func (e *Entry) Half(va uint32) uint32 {
	return e.Lo[(va>>EvenOddBit(e.Mask))&1]
}

// PA returns the physical address of va through EntryLo lo of an entry
// with page mask mask: PFN bits above the page offset, VA bits below.
func PA(lo, mask, va uint32) uint64 {
	off := uint64(1)<<EvenOddBit(mask) - 1
	pfnAddr := uint64(lo&EntryLoPFN) << 6
	return pfnAddr&^off | uint64(va)&off
}

// TLB is the guest's 64-entry TLB.
type TLB struct {
	E [Entries]Entry
}

// Lookup returns the index of the first entry matching va and asid, or -1.
// This is the linear scan KVM/MIPS trap-and-emulate does in C. The guest
// must not create several matching entries (the architecture leaves that
// undefined); the first one wins here.
func (t *TLB) Lookup(va uint32, asid uint8) int {
	for i := range t.E {
		if t.E[i].Matches(va, asid) {
			return i
		}
	}
	return -1
}

// entryFromRegs builds the entry TLBWI/TLBWR write from the CP0 registers
// (MIPS32 Vol. III, TLBWI pseudocode).
func entryFromRegs(hi, lo0, lo1, pagemask uint32) Entry {
	mask := NormalizePageMask(pagemask)
	vpnMask := EntryHiVPN2 &^ mask
	pfnMask := EntryLoPFN &^ (mask >> 7) // PA bit 12 is EntryLo bit 6, VA bit 13 is mask bit 13
	e := Entry{
		Mask: mask,
		Hi:   hi&vpnMask | hi&EntryHiASID,
		G:    lo0&lo1&EntryLoG != 0,
	}
	e.Lo[0] = lo0&pfnMask | lo0&(EntryLoC|EntryLoD|EntryLoV)
	e.Lo[1] = lo1&pfnMask | lo1&(EntryLoC|EntryLoD|EntryLoV)
	return e
}

// Overlaps reports whether two entries could both match some address for
// some ASID: their spans intersect and their ASIDs are equal or either is
// global. Such a pair is what the architecture leaves undefined.
func Overlaps(a, b *Entry) bool {
	as, ae := a.Span()
	bs, be := b.Span()
	if as >= be || bs >= ae {
		return false
	}
	return a.G || b.G || uint8(a.Hi) == uint8(b.Hi)
}

// EntryFromRegs is the entry a TLBWI/TLBWR would write for the given
// EntryHi, EntryLo0, EntryLo1 and PageMask values.
func EntryFromRegs(hi, lo0, lo1, pagemask uint32) Entry {
	return entryFromRegs(hi, lo0, lo1, pagemask)
}

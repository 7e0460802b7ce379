package cp0

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// CommpageRegsSize is the size of the register file at the start of the
// commpage: 32 registers x 8 selects x 4 bytes, like KVM's struct
// mips_coproc (reg[32][8]) on a 32-bit host.
const CommpageRegsSize = 32 * 8 * 4

// RegOffset returns the commpage byte offset of CP0 register (reg, sel).
func RegOffset(reg, sel uint8) uint32 { return (uint32(reg&31)*8 + uint32(sel&7)) * 4 }

// State is the guest's CP0: the register file, stored little-endian in the
// commpage exactly where the guest kernel reads it with loads from $zero,
// and the guest TLB.
type State struct {
	Page []byte // the commpage; registers at RegOffset
	// TLB is the guest TLB. Write it only through the State (Reset,
	// TLBWrite), which keeps idx.
	TLB TLB
	idx tlbIndex
}

// tlbIndex narrows a guest TLB lookup to the entries that can match:
// entries with the smallest page mask (0) are kept by a hash of their
// VPN2, in bucket, the others in large; bit i stands for entry i.
type tlbIndex struct {
	bucket [128]uint64
	large  uint64
}

// tlbBucket hashes VPN2 (EntryHi bits 31:13) to a bucket.
func tlbBucket(vpn2 uint32) uint32 { return (vpn2 >> 13) * 0x9e3779b1 >> 25 }

// set adds (on) or removes entry i, as e, to or from the index.
func (x *tlbIndex) set(i int, e *Entry, on bool) {
	p := &x.large
	if e.Mask == 0 {
		p = &x.bucket[tlbBucket(e.Hi&EntryHiVPN2)]
	}
	if on {
		*p |= 1 << i
	} else {
		*p &^= 1 << i
	}
}

// Lookup returns the index of the first entry matching va and asid, or -1,
// as TLB.Lookup does, comparing only the entries the index gives.
func (s *State) Lookup(va uint32, asid uint8) int {
	for c := s.idx.bucket[tlbBucket(va&EntryHiVPN2)] | s.idx.large; c != 0; c &= c - 1 {
		if i := bits.TrailingZeros64(c); s.TLB.E[i].Matches(va, asid) {
			return i
		}
	}
	return -1
}

// NewState returns the reset state for a commpage of pageSize bytes.
// pageSize must be at least CommpageRegsSize.
func NewState(pageSize uint32) (*State, error) {
	if pageSize < CommpageRegsSize {
		return nil, fmt.Errorf("cp0: commpage size %d is smaller than the register file (%d)", pageSize, CommpageRegsSize)
	}
	s := &State{Page: make([]byte, pageSize)}
	s.Reset()
	return s, nil
}

// Reset puts the registers in their reset state: Random at its upper bound,
// Wired 0, Status.BEV and ERL set as after a cold reset, guest EBase at the
// relocated KSeg0 base, Config1 reporting 64 TLB entries. Every TLB entry is
// written unique and invalid (distinct VPN2 in host KSeg0, which the guest
// can never translate), as an OS does at boot.
func (s *State) Reset() {
	clear(s.Page)
	s.Set(RegRandom, 0, Entries-1)
	s.Set(RegStatus, 0, StatusBEV|StatusERL)
	s.Set(RegEBase, SelEBase, EBaseFixed)
	s.Set(RegConfig, 1, Config1Value)
	s.Set(RegPRId, 0, 0x00019300) // MIPS Technologies 24K
	s.idx = tlbIndex{}
	for i := range s.TLB.E {
		s.TLB.E[i] = Entry{Hi: HostKSeg0 + uint32(i)<<14}
		s.idx.set(i, &s.TLB.E[i], true)
	}
}

// Get returns register (reg, sel).
func (s *State) Get(reg, sel uint8) uint32 {
	return binary.LittleEndian.Uint32(s.Page[RegOffset(reg, sel):])
}

// Set stores register (reg, sel) without any side effect.
func (s *State) Set(reg, sel uint8, v uint32) {
	binary.LittleEndian.PutUint32(s.Page[RegOffset(reg, sel):], v)
}

// ASID returns EntryHi.ASID.
func (s *State) ASID() uint8 { return uint8(s.Get(RegEntryHi, 0)) }

// KernelMode reports whether the guest runs in kernel mode: Status.EXL or
// ERL set, or KSU (here UM) user bit clear.
func (s *State) KernelMode() bool {
	st := s.Get(RegStatus, 0)
	return st&(StatusEXL|StatusERL) != 0 || st&StatusUM == 0
}

// MTC0 writes v to register (reg, sel) through the register's write mask
// and returns the value the register now holds. Read-only registers ignore
// the write; registers this model gives no meaning to are plain storage.
// It has no other side effect except Wired resetting Random (MIPS32 Vol.
// III, Wired: "Random is set to its upper bound when Wired is written").
func (s *State) MTC0(reg, sel uint8, v uint32) uint32 {
	reg, sel = reg&31, sel&7 // rd is 5 bits, sel 3 bits
	old := s.Get(reg, sel)
	n := v
	switch {
	case reg == RegIndex && sel == 0:
		n = old&IndexP | v&IndexMask
	case reg == RegRandom && sel == 0, reg == RegBadVAddr && sel == 0,
		reg == RegPRId && sel == 0, reg == RegConfig && sel <= 1:
		n = old
	case (reg == RegEntryLo0 || reg == RegEntryLo1) && sel == 0:
		n = v & EntryLoMask
	case reg == RegContext && sel == 0:
		n = old&ContextBadVPN2 | v&ContextPTEBase
	case reg == RegPageMask && sel == 0:
		n = NormalizePageMask(v)
	case reg == RegWired && sel == 0:
		n = v & IndexMask
		s.Set(RegRandom, 0, Entries-1)
	case reg == RegEntryHi && sel == 0:
		n = v & (EntryHiVPN2 | EntryHiASID)
	case reg == RegStatus && sel == 0:
		n = old&^StatusWritable | v&StatusWritable
	case reg == RegCause && sel == 0:
		n = old&^CauseWritable | v&CauseWritable
	case reg == RegEBase && sel == SelEBase:
		n = EBaseFixed | v&EBaseWritable
	}
	s.Set(reg, sel, n)
	return n
}

// TLBP probes the TLB for EntryHi and sets Index: the matching index, or
// P=1 with index 0 when nothing matches (the index field is UNPREDICTABLE
// then; this model clears it).
func (s *State) TLBP() {
	hi := s.Get(RegEntryHi, 0)
	i := s.Lookup(hi&EntryHiVPN2, uint8(hi))
	if i < 0 {
		s.Set(RegIndex, 0, IndexP)
		return
	}
	s.Set(RegIndex, 0, uint32(i))
}

// TLBR loads EntryHi, EntryLo0/1 and PageMask from TLB[Index]. Both
// EntryLo G bits read the entry's single G bit.
func (s *State) TLBR() {
	e := &s.TLB.E[s.Get(RegIndex, 0)&IndexMask]
	g := uint32(0)
	if e.G {
		g = EntryLoG
	}
	s.Set(RegEntryHi, 0, e.Hi)
	s.Set(RegEntryLo0, 0, e.Lo[0]|g)
	s.Set(RegEntryLo1, 0, e.Lo[1]|g)
	s.Set(RegPageMask, 0, e.Mask)
}

// PendingEntry is the entry TLBWI/TLBWR would write now.
func (s *State) PendingEntry() Entry {
	return entryFromRegs(s.Get(RegEntryHi, 0), s.Get(RegEntryLo0, 0), s.Get(RegEntryLo1, 0), s.Get(RegPageMask, 0))
}

// WriteIndex returns the index TLBWI writes.
func (s *State) WriteIndex() int { return int(s.Get(RegIndex, 0) & IndexMask) }

// RandomIndex returns the index TLBWR writes.
func (s *State) RandomIndex() int { return int(s.Get(RegRandom, 0) & IndexMask) }

// TLBWrite writes the pending entry at index i. After a TLBWR (random
// true) Random steps down, wrapping from Wired back to 63: the decrement
// rule is implementation dependent; this model decrements once per TLBWR so
// that every machine agrees.
func (s *State) TLBWrite(i int, random bool) {
	s.idx.set(i, &s.TLB.E[i], false)
	s.TLB.E[i] = s.PendingEntry()
	s.idx.set(i, &s.TLB.E[i], true)
	if random {
		r, w := s.Get(RegRandom, 0), s.Get(RegWired, 0)
		if r <= w || r == 0 {
			r = Entries - 1
		} else {
			r--
		}
		s.Set(RegRandom, 0, r)
	}
}

// ExceptionBase returns the exception vector base: 0xbfc00200 when
// Status.BEV=1, EBase[31:12] otherwise.
func (s *State) ExceptionBase() uint32 {
	if s.Get(RegStatus, 0)&StatusBEV != 0 {
		return BEVBase
	}
	return s.Get(RegEBase, SelEBase) & EBaseBase
}

// Fault describes how an exception updates the address registers.
type Fault uint8

// Fault kinds.
const (
	FaultNone Fault = iota // no address (syscall, coprocessor unusable)
	FaultAddr              // address error: BadVAddr only
	FaultTLB               // TLB exceptions: BadVAddr, Context.BadVPN2, EntryHi.VPN2
)

// Enter performs exception entry (MIPS32 Vol. III, "General Exception
// Processing" and "TLB Refill Exception"): with EXL=0 it saves EPC (the
// branch when bd) and Cause.BD and selects the refill offset for a refill;
// with EXL=1 EPC and BD are kept and every exception takes the general
// vector. It sets ExcCode and EXL, updates BadVAddr/Context/EntryHi for
// address-carrying exceptions, and returns the vector address.
func (s *State) Enter(code ExcCode, refill bool, f Fault, va, pc uint32, bd bool) uint32 {
	st := s.Get(RegStatus, 0)
	cause := s.Get(RegCause, 0)
	off := uint32(VectorGeneral)
	if st&StatusEXL == 0 {
		if bd {
			s.Set(RegEPC, 0, pc-4)
			cause |= CauseBD
		} else {
			s.Set(RegEPC, 0, pc)
			cause &^= CauseBD
		}
		if refill {
			off = VectorRefill
		}
	}
	cause = cause&^(CauseExcCode|CauseCE) | uint32(code)<<2
	s.Set(RegCause, 0, cause)
	s.Set(RegStatus, 0, st|StatusEXL)
	if f != FaultNone {
		s.Set(RegBadVAddr, 0, va)
	}
	if f == FaultTLB {
		ctx := s.Get(RegContext, 0)
		s.Set(RegContext, 0, ctx&ContextPTEBase|(va>>9)&ContextBadVPN2)
		hi := s.Get(RegEntryHi, 0)
		s.Set(RegEntryHi, 0, va&EntryHiVPN2|hi&EntryHiASID)
	}
	return s.ExceptionBase() + off
}

// ERET returns from an exception (MIPS32 ERET): from ErrorEPC clearing
// ERL when ERL is set, else from EPC clearing EXL. It returns the new PC.
func (s *State) ERET() uint32 {
	st := s.Get(RegStatus, 0)
	if st&StatusERL != 0 {
		s.Set(RegStatus, 0, st&^StatusERL)
		return s.Get(RegErrorEPC, 0)
	}
	s.Set(RegStatus, 0, st&^StatusEXL)
	return s.Get(RegEPC, 0)
}

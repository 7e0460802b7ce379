// Package cp0 is the guest's architectural view of a MIPS32 system
// coprocessor under KVM trap-and-emulate: the CP0 register file (kept in the
// commpage layout KVM uses), the 64-entry software-managed TLB with TLBP,
// TLBR, TLBWI and TLBWR, exception entry (refill vs general vector, EXL,
// BEV, EPC/BD, BadVAddr, Context, EntryHi), and the guest address-space
// layout of trap-and-emulate (useg, relocated KSeg0, KSeg2/3, commpage).
//
// It also defines the operation and result vocabulary (Op, Result, Machine)
// shared by the trap-and-emulate engine (package te), the reference model
// (package refmodel), the random program generator and the guest OS model,
// so that any two machines can be run side by side on the same program.
//
// Sources: MIPS32 Architecture for Programmers Vol. III (privileged
// resource architecture), chapters "Memory Management", "Exceptions" and
// "CP0 Registers"; KVM/MIPS trap-and-emulate as described in
// shared/reference/mips-te-gva.md.
package cp0

import "math/bits"

// Guest virtual address layout under trap-and-emulate: the guest kernel
// runs in host user mode, so its kernel segments are relocated below 2 GiB.
const (
	GuestUSegEnd  = 0x40000000 // guest useg is [0, GuestUSegEnd), mapped
	GuestKSeg0    = 0x40000000 // guest KSeg0 [0x40000000,0x60000000), unmapped
	GuestKSeg0End = 0x60000000
	GuestKSeg23   = 0x60000000 // guest KSeg2/3 [0x60000000,0x80000000), mapped
	HostKSeg0     = 0x80000000 // host KSeg0/1 [0x80000000,0xc0000000): MMIO
	HostKSeg2     = 0xc0000000 // host KSeg2/3: not usable by the guest
	// KSegPhysMask extracts the physical address of a host KSeg0/1 address
	// (CPHYSADDR).
	KSegPhysMask = 0x1fffffff
	// BEVBase is the exception vector base when Status.BEV=1 (KSeg1
	// 0xbfc00200, MIPS32 Vol. III "Exception Vector Locations").
	BEVBase = 0xbfc00200
)

// CommpageAddr returns the guest virtual address of the commpage for a page
// size: 0x8000 - PAGE_SIZE, reachable with a signed 16-bit offset from
// $zero, or 0 when the page is larger than 32 KiB (KVM_GUEST_COMMPAGE_ADDR).
func CommpageAddr(pageSize uint32) uint32 {
	if pageSize > 0x8000 {
		return 0
	}
	return 0x8000 - pageSize
}

// Entries is the number of guest TLB entries (Config1.MMUSize+1).
const Entries = 64

// CP0 register numbers (rd field of MTC0/MFC0), with select in the name
// when it is not 0.
const (
	RegIndex    = 0
	RegRandom   = 1
	RegEntryLo0 = 2
	RegEntryLo1 = 3
	RegContext  = 4
	RegPageMask = 5
	RegWired    = 6
	RegBadVAddr = 8
	RegEntryHi  = 10
	RegStatus   = 12
	RegCause    = 13
	RegEPC      = 14
	RegPRId     = 15 // select 0; EBase is select 1
	RegEBase    = 15
	SelEBase    = 1
	RegConfig   = 16 // select 1 is Config1
	RegErrorEPC = 30
	RegKScratch = 31 // selects 2..7
)

// Field masks and bits.
const (
	IndexP         = 1 << 31 // Index.P: probe failure
	IndexMask      = 0x3f
	EntryHiVPN2    = 0xffffe000
	EntryHiASID    = 0xff
	EntryLoPFN     = 0x3fffffc0
	EntryLoC       = 0x38
	EntryLoD       = 1 << 2
	EntryLoV       = 1 << 1
	EntryLoG       = 1 << 0
	EntryLoMask    = 0x3fffffff
	PageMaskMask   = 0x1fffe000
	ContextPTEBase = 0xff800000
	ContextBadVPN2 = 0x007ffff0

	StatusCU0 = 1 << 28
	StatusBEV = 1 << 22
	StatusIM  = 0xff00
	StatusUM  = 1 << 4 // KSU[1]; supervisor mode is not implemented
	StatusERL = 1 << 2
	StatusEXL = 1 << 1
	StatusIE  = 1 << 0
	// StatusWritable are the Status bits MTC0 can change in this model.
	StatusWritable = StatusBEV | StatusIM | StatusUM | StatusERL | StatusEXL | StatusIE

	CauseBD       = 1 << 31
	CauseCE       = 3 << 28
	CauseExcCode  = 0x7c
	CauseWritable = 1<<23 | 3<<8 // IV, IP1..0

	// EBaseFixed are the bits of EBase fixed by trap-and-emulate: the
	// guest's exception base lives in its relocated KSeg0.
	EBaseFixed    = 0x40000000
	EBaseWritable = 0x1ffff000
	EBaseBase     = 0xfffff000

	// Config1Value reports MMUSize-1 = 63 (bits 30:25) and M=1 (Config2
	// present is not claimed; bit 31 kept 0).
	Config1Value = 63 << 25
)

// ExcCode is the Cause.ExcCode of an exception.
type ExcCode uint8

// Exception codes (MIPS32 Vol. III, Cause register).
const (
	ExcMod  ExcCode = 1  // TLB modification
	ExcTLBL ExcCode = 2  // TLB exception (load or instruction fetch)
	ExcTLBS ExcCode = 3  // TLB exception (store)
	ExcAdEL ExcCode = 4  // address error (load or instruction fetch)
	ExcAdES ExcCode = 5  // address error (store)
	ExcSys  ExcCode = 8  // syscall
	ExcCpU  ExcCode = 11 // coprocessor unusable
)

// String names the exception code as the architecture does.
func (c ExcCode) String() string {
	switch c {
	case ExcMod:
		return "Mod"
	case ExcTLBL:
		return "TLBL"
	case ExcTLBS:
		return "TLBS"
	case ExcAdEL:
		return "AdEL"
	case ExcAdES:
		return "AdES"
	case ExcSys:
		return "Sys"
	case ExcCpU:
		return "CpU"
	}
	return "Exc" + itoa(uint32(c))
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b [10]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// VectorRefill and VectorGeneral are the offsets from the exception base
// (MIPS32 Vol. III, "Exception Vector Locations").
const (
	VectorRefill  = 0x000
	VectorGeneral = 0x180
)

// NormalizePageMask returns the PageMask value the register holds after
// MTC0 of v. Only bits 28:13 exist; valid masks are runs of ones from bit
// 13 covering whole bit pairs (4K, 16K, ... 256M pages). Writing anything
// else is UNPREDICTABLE in the architecture; this model rounds up to the
// smallest valid mask covering the highest written bit, so every machine
// agrees.
func NormalizePageMask(v uint32) uint32 {
	v &= PageMaskMask
	if v == 0 {
		return 0
	}
	hi := uint32(31)
	for v&(1<<hi) == 0 {
		hi--
	}
	// Masks cover bit pairs 13-14, 15-16, ...: the top bit is even.
	if (hi-13)%2 == 0 {
		hi++
	}
	return (uint32(1)<<(hi+1) - 1) &^ 0x1fff
}

// EvenOddBit returns the VA bit that selects EntryLo0 or EntryLo1 for a
// (normalized) page mask: 12 for 4K pages, 14 for 16K, ... (the bit just
// above the page offset).
func EvenOddBit(mask uint32) uint {
	return 12 + uint(bits.OnesCount32(mask&PageMaskMask))
}

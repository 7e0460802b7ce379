package nested

import (
	"math/bits"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/mem"
)

// guestMemory presents the guest hypervisor's IPA space as the physical
// memory the translation core walks: a word at "PA" p is the word at L1
// IPA p, read through the memslot that backs it and the host's mapping of
// its HVA (as KVM reads guest memory, faulting the page in). A word
// outside every memslot has no memory: the walk takes a synchronous
// External abort. Compare-and-swaps (hardware Access flag and dirty state
// updates of L1's descriptors) are host atomics and mark the page dirty
// in the slot's log.
type guestMemory struct {
	vm *kvm.VM
	n  *VM // its writes are reported to n's observer (SetGuestWriteObserver)
}

// l1IPA is the one conversion from the walker's physical space to the
// guest hypervisor's IPA space.
func l1IPA(p mem.PA) mem.IPA { return mem.IPA(p) }

// Read64 implements mem.Memory.
func (g guestMemory) Read64(p mem.PA) (uint64, bool) {
	ipa := l1IPA(p)
	s := g.vm.Lookup(ipa)
	if s == nil || p%8 != 0 {
		return 0, false
	}
	v, err := g.vm.AddressSpace().Read(s.HVAOf(ipa), 8)
	return v, err == nil
}

// CompareAndSwap64 implements mem.Memory.
func (g guestMemory) CompareAndSwap64(p mem.PA, old, new uint64) (bool, bool) {
	ipa := l1IPA(p)
	s := g.vm.Lookup(ipa)
	if s == nil || p%8 != 0 {
		return false, false
	}
	ok, err := g.vm.AddressSpace().CompareAndSwap64(s.HVAOf(ipa), old, new)
	if err != nil {
		return false, false
	}
	if ok {
		g.vm.MarkDirty(ipa)
		g.n.guestWritten(ipa, 8)
	}
	return ok, true
}

// GuestS2 is the result of a walk of the guest hypervisor's stage 2 for one
// L2 IPA: the fault, or the L1 IPA it maps to and the leaf that maps it.
type GuestS2 struct {
	Fault vmsa.Fault
	// L1 is the output L1 IPA.
	L1 mem.IPA
	// Base and L1Base are the first L2 and L1 IPAs of the leaf; Size is
	// its size and Level its level.
	Base   NestedIPA
	L1Base mem.IPA
	Size   uint64
	Level  int8
	// Perms are the leaf's stage-2 permissions (R1/W1, X1 for EL1 and X0
	// for EL0 with FEAT_XNX).
	Perms vmsa.Perms
	// Device: the leaf's memory type is Device.
	Device bool
}

// guestRegs are the register values the guest stage-2 walk reads: the
// guest hypervisor's virtual VTCR_EL2, VTTBR_EL2, HCR_EL2 and SCTLR_EL2
// (EE: endianness of stage-2 walks), and the ID registers as it sees them.
type guestRegs struct {
	vtcr  sysreg.VTCR
	vttbr sysreg.VTTBR
	hcr   sysreg.HCR
	sctlr sysreg.SCTLR
	id    IDRegs
}

// walkGuestS2 walks the guest hypervisor's stage 2 for ipa with the
// translation core's AArch64.S2Translate over L1 memory. acc is the
// access that faulted (its kind and EL); VTCR_EL2.HA and HD are honoured
// by compare-and-swap in L1 memory.
func walkGuestS2(w *vmsa.Walker, g *guestRegs, ipa NestedIPA, acc vmsa.Access) GuestS2 {
	r := vmsa.Regs{VTCR_EL2: g.vtcr, VTTBR_EL2: g.vttbr, SCTLR_EL2: g.sctlr,
		HCR_EL2: g.hcr&(sysreg.HCR_PTW|sysreg.HCR_FWB|sysreg.HCR_CD) | sysreg.HCR_VM | sysreg.HCR_RW,
		MMFR0:   g.id.MMFR0, MMFR1: g.id.MMFR1, MMFR2: g.id.MMFR2, ISAR2: sysreg.DefaultISAR2}
	tr := w.TranslateS2(&r, mem.IPA(ipa), acc)
	if tr.Fault.IsFault() {
		return GuestS2{Fault: tr.Fault}
	}
	dev := tr.Attrs.Type == vmsa.Device
	if g.hcr.FWB() && g.id.MMFR2.FWB() >= 1 {
		// The walk leaves FWB's MemAttr to the stage-1 combination
		// (AArch64.S2ApplyFWBMemAttrs): MemAttr[2]=0 is Device whatever
		// stage 1 says.
		dev = tr.Attrs.Raw&4 == 0
	}
	size := uint64(1) << tr.S2BlockBits
	out := GuestS2{
		L1:     l1IPA(tr.OA),
		Base:   ipa &^ NestedIPA(size-1),
		L1Base: l1IPA(tr.OA) &^ mem.IPA(size-1),
		Size:   size,
		Level:  tr.S2Level,
		Perms:  tr.Perms,
		Device: dev,
	}
	return out
}

// IDRegs are the ID registers the guest hypervisor reads (ID_AA64MMFR0/1/2
// _EL1, trapped with HCR_EL2.TID3), sanitized to what L0 can honour.
type IDRegs struct {
	MMFR0 sysreg.MMFR0
	MMFR1 sysreg.MMFR1
	MMFR2 sysreg.MMFR2
}

// parangeFor is the largest PARange encoding whose size is at most bits.
func parangeFor(bitsAvail uint) uint64 {
	enc := uint64(0)
	for e := uint64(0); e <= 6; e++ {
		if b, ok := sysreg.PASizeBits(e); ok && b <= bitsAvail {
			enc = e
		}
	}
	return enc
}

// setField replaces the 4-bit field at shift of v.
func setField(v uint64, shift uint, f uint64) uint64 {
	return v&^(0xf<<shift) | (f&0xf)<<shift
}

// sanitizeIDs derives the guest hypervisor's ID registers from the host's
// (host) and the IPA size L0 gave its VM: PARange capped to that IPA size
// (so the guest stage 2 never outputs an L1 IPA beyond it) and FEAT_LPA2
// hidden unless that size is 52 bits. The translation granules, HAFDBS
// (the shadow walk honours HA and HD by compare-and-swap), XNX, the VMID
// and ASID sizes and FEAT_NV (NV and NV2 for a guest hypervisor of its own,
// whose traps L0 forwards) are the host's.
func sanitizeIDs(host *vmsa.Regs, ipaBits uint) IDRegs {
	m0 := uint64(host.MMFR0)
	m0 = setField(m0, 0, min(parangeFor(ipaBits), host.MMFR0.PARange()))
	if ipaBits < 52 {
		// TGran4 0b0001 (52-bit with 4K) -> 0b0000; TGran16 0b0010 -> 0b0001;
		// the stage-2 fields TGran4_2 0b0011 -> 0b0010, TGran16_2 0b0011 -> 0b0010.
		if m0>>28&0xf == 1 {
			m0 = setField(m0, 28, 0)
		}
		if m0>>20&0xf == 2 {
			m0 = setField(m0, 20, 1)
		}
		for _, sh := range []uint{40, 32} {
			if m0>>sh&0xf == 3 {
				m0 = setField(m0, sh, 2)
			}
		}
	}
	return IDRegs{MMFR0: sysreg.MMFR0(m0), MMFR1: host.MMFR1, MMFR2: host.MMFR2}
}

// stage2On reports whether a guest hypervisor's HCR_EL2 h enables stage 2
// for its guest's EL1&0 regime (AArch64.S2Enabled: VM or DC, not TGE).
func stage2On(h sysreg.HCR) bool { return !h.TGE() && (h.VM() || h.DC()) }

// guestVMID is the guest hypervisor's VMID of VTTBR_EL2 (16 bits with
// VTCR_EL2.VS and 16-bit VMIDs).
func guestVMID(g *guestRegs) uint16 {
	return g.vttbr.VMID(g.vtcr.VS() && g.id.MMFR1.VMIDBits() == 2)
}

// guestIPABits is the guest stage 2's input size, 64 - VTCR_EL2.T0SZ.
func guestIPABits(vtcr sysreg.VTCR) uint {
	t := vtcr.T0SZ()
	if t >= 64 {
		return 0
	}
	return 64 - t
}

// granuleOf returns the guest stage 2's granule (VTCR_EL2.TG0, a reserved
// value read as the smallest the ID registers implement).
func granuleOf(g *guestRegs) sysreg.Granule {
	tg := g.vtcr.TG0()
	if g.id.MMFR0.GranuleSupported(tg, true) {
		return tg
	}
	for _, c := range []sysreg.Granule{sysreg.Granule4K, sysreg.Granule16K, sysreg.Granule64K} {
		if g.id.MMFR0.GranuleSupported(c, true) {
			return c
		}
	}
	return sysreg.Granule4K
}

// largestBlock is the largest block a stage-2 leaf of granule g can map
// (1 GiB for 4K, 32 MiB for 16K, 512 MiB for 64K without FEAT_LPA2's
// larger blocks), the range upstream KVM invalidates when it knows no
// better.
func largestBlock(g sysreg.Granule) uint64 {
	level := 1
	if g != sysreg.Granule4K {
		level = 2
	}
	return 1 << desc.Format{Granule: g}.LeafBits(level)
}

// log2 of a power of two.
func log2(x uint64) uint { return uint(bits.TrailingZeros64(x)) }

// WalkGuestStage2 walks the guest hypervisor's stage 2 for an L2 IPA with
// its current virtual VTCR_EL2, VTTBR_EL2, HCR_EL2 and SCTLR_EL2 (what a
// shadow fault does; for AT emulation and explanations). The walk may set
// Access flags and dirty state in L1 memory when VTCR_EL2.HA/HD say so.
func (v *VCPU) WalkGuestStage2(ipa NestedIPA, acc vmsa.Access) GuestS2 {
	g := v.guestRegs()
	return walkGuestS2(&v.walker, &g, ipa, acc)
}

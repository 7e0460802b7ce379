package nested

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// The decisions of nested virtualization that do not depend on what the
// hypervisor making them runs on: L0 (VCPU, on the PE) and a guest
// hypervisor that itself runs a guest hypervisor (EL2VCPU, on the EL2
// interface) both call them.

// vel2Traps are the HCR_EL2 controls a hypervisor sets while a guest
// hypervisor runs at its virtual EL2 in mode m: NV (and NV2, or NV1 for an
// E2H=0 guest hypervisor), the trapped ID registers, AT and TLB
// maintenance; with NV alone and E2H=0 also TVM/TRVM, since the EL1
// register accesses of such a guest hypervisor are its guest's and only
// NV2 would send them to memory.
func vel2Traps(m Mode, e2h bool) sysreg.HCR {
	h := sysreg.HCR_NV | hcrTID3 | sysreg.HCR_AT | sysreg.HCR_TTLB | sysreg.HCR_TTLBIS | sysreg.HCR_TTLBOS
	if m == ModeNV2 {
		h |= sysreg.HCR_NV2
	}
	if !e2h {
		h |= sysreg.HCR_NV1
		if m == ModeNV {
			h |= sysreg.HCR_TVM | hcrTRVM
		}
	}
	return h
}

// foldedControls are the controls of a guest hypervisor's HCR_EL2 over its
// guest's translation that a hypervisor folds into the real HCR_EL2 while
// that guest runs, besides the trap controls: DC (the guest's stage 1 off
// with Normal Write-Back memory, its stage 2 on: the shadow is keyed as
// such, stage2On), PTW (a stage-1 walk to stage-2 Device memory faults:
// the shadow is Device where the guest's stage 2 is, and the fault is the
// guest hypervisor's, walkFaulted), CD and ID (the stage 2 in use makes
// data and instruction accesses Non-cacheable: the guest hypervisor's
// stage 2 is part of the shadow, the host's is Write-Back), and TEA
// (synchronous External aborts routed to EL2: forwarded to the guest
// hypervisor). Not FWB: the shadow's MemAttr is written in the FWB=0
// encoding (host/s2pt), which FWB would read otherwise; the guest's FWB
// decides the shadow's memory type instead (walkGuestS2). Not TGE: it is
// the guest hypervisor's own EL0 regime, not a control over a guest.
const foldedControls = sysreg.HCR_DC | sysreg.HCR_PTW | sysreg.HCR_CD | sysreg.HCR_ID | sysreg.HCR_TEA

// nestedHCR is the real HCR_EL2 while a guest hypervisor's guest runs:
// the hypervisor's controls for any guest (base), its own trap controls for
// a nested guest, the guest hypervisor's effective trap controls (vhcr,
// with its ID registers ids) and its folded controls.
func nestedHCR(base, vhcr sysreg.HCR, ids *IDRegs) sysreg.HCR {
	return base | l2OwnTraps | effectiveControls(vhcr, ids) | vhcr&foldedControls
}

// tgeReturn is the PSTATE a guest hypervisor returns to from its virtual
// EL2 with its HCR_EL2.TGE=1 and spsr naming EL1 or EL0 (cur: its own
// PSTATE as the real EL2 recorded it when its ERET trapped): a return to
// EL1 is illegal (IllegalExceptionReturn: EL and SP unchanged, PSTATE.IL
// set, the rest from spsr); one to EL0 is to its own EL0, in its own
// regime, without a guest.
func tgeReturn(spsr, cur uint64) uint64 {
	const spsrIL = 1 << 20
	if spsr>>2&3 == 1 {
		return spsr&^0x1f | cur&0xf | spsrIL
	}
	return spsr
}

// composeLeaf composes a guest stage-2 leaf g (for the nested IPA ipa) with
// the canonical mapping [base, base+size) -> pa into a leaf of a shadow of
// layout l: its nested base, output and size (the smaller of the two
// mappings rounded down to a leaf size the layout has). ok is false when no
// leaf fits (a canonical page smaller than the shadow granule, which the
// shadow layouts exclude).
func composeLeaf(l s2pt.Layout, g *GuestS2, ipa NestedIPA, base mem.IPA, pa mem.PA, size uint64) (NestedIPA, mem.PA, uint64, bool) {
	limit := min(g.Size, size)
	leaf := l.TableBytes
	for lvl := l.StartLevel; lvl < 3; lvl++ { // the largest leaf within limit
		if b := uint64(1) << l.Format.LeafBits(lvl); l.BlockLevel(lvl) && b <= limit && b > leaf {
			leaf = b
		}
	}
	if leaf > limit {
		return 0, 0, 0, false
	}
	l1 := g.L1Base + mem.IPA(ipa-g.Base)
	l2b := ipa &^ NestedIPA(leaf-1)
	l1b := l1 &^ mem.IPA(leaf-1)
	return l2b, pa + mem.PA(l1b-base), leaf, true
}

// guestProt is the shadow's rights for canonical rights p under the guest
// leaf g: R and W only where both allow, execution per EL as the guest
// allows it (xnx: the hardware implements FEAT_XNX; see xnProt), Device if
// the guest maps Device.
func guestProt(g *GuestS2, p s2pt.Prot, xnx bool) s2pt.Prot {
	var out s2pt.Prot
	if g.Perms.R1 && p&s2pt.ProtR != 0 {
		out |= s2pt.ProtR
	}
	if g.Perms.W1 && p&s2pt.ProtW != 0 {
		out |= s2pt.ProtW
	}
	if p&s2pt.ProtX != 0 {
		out |= xnProt(g.Perms.X0, g.Perms.X1, xnx)
	}
	if g.Device {
		out |= s2pt.ProtDevice
	}
	return out
}

// xnProt is the shadow's execute permission for a guest stage-2 leaf that
// allows execution at EL0 (x0) and EL1 (x1): per EL with FEAT_XNX (XN
// 0b01, 0b11); without it the hardware reads only XN[1], so execution is
// all or nothing and a leaf executable at one EL only is mapped
// non-executable (its fetches fault to L0, which resolves them again:
// never wider than the guest).
func xnProt(x0, x1, xnx bool) s2pt.Prot {
	switch {
	case x0 && x1:
		return s2pt.ProtX
	case !xnx || !x0 && !x1:
		return 0
	case x0:
		return s2pt.ProtX | s2pt.ProtPXN
	}
	return s2pt.ProtX | s2pt.ProtUXN
}

// recycle returns the index of the first of n pool entries, starting at
// *next, that free says nobody uses, and moves *next past it (round-robin
// recycling of shadow MMUs, as KVM's); false when every entry is in use.
func recycle(n int, next *int, free func(i int) bool) (int, bool) {
	for i := 0; i < n; i++ {
		j := (*next + i) % n
		if free(j) {
			*next = (j + 1) % n
			return j, true
		}
	}
	return 0, false
}

// faultAccess is the access a stage-2 abort with syndrome esr was for, at
// EL el: on a stage-1 table walk (S1PTW) a read of the table, or the
// walk's hardware update of an Access flag or dirty state, a write at
// stage 2 (AArch64.S1Walk's descriptor update); WnR says which
// (AArch64.FaultSyndrome reports the fault record's write), except on the
// walk of a fetch (an Instruction Abort has no WnR) or of an AT (CM=1, WnR
// always 1), where only a Permission fault can be the update: recheck then
// asks the caller to check the read first. Otherwise a fetch, a write
// (WnR, not a cache maintenance or AT: CM), else a read.
func faultAccess(fetch bool, esr sysreg.ESR, el uint8) (acc vmsa.Access, recheck bool) {
	acc = vmsa.Access{Kind: vmsa.Read, EL: el}
	switch {
	case esr.S1PTW() && (fetch || esr.CM()):
		if fscPermission(esr.FSC()) {
			acc.Kind, recheck = vmsa.Write, true
		}
	case esr.S1PTW():
		if esr.WnR() {
			acc.Kind = vmsa.Write
		}
	case fetch:
		acc.Kind = vmsa.Fetch
	case esr.WnR() && !esr.CM():
		acc.Kind = vmsa.Write
	}
	return acc, recheck
}

// walkFaulted walks the guest stage 2 (registers g, over w) for the
// nested IPA of a shadow abort with syndrome esr, for the access it was
// for (faultAccess): where the syndrome leaves a walk's read and its
// update apart, the read first (a fault there is the one to report),
// then the write. It returns the walk and the access.
func walkFaulted(w *vmsa.Walker, g *guestRegs, ipa NestedIPA, fetch bool, esr sysreg.ESR, el uint8) (GuestS2, vmsa.Access) {
	acc, recheck := faultAccess(fetch, esr, el)
	if recheck {
		rd := acc
		rd.Kind = vmsa.Read
		if gs := walkGuestS2(w, g, ipa, rd); gs.Fault.IsFault() {
			return gs, rd
		}
	}
	gs := walkGuestS2(w, g, ipa, acc)
	if !gs.Fault.IsFault() && esr.S1PTW() && g.hcr.PTW() && gs.Device {
		// A stage-1 walk to the guest's stage-2 Device memory with its
		// HCR_EL2.PTW (AArch64.S2CheckPermissions).
		gs.Fault = vmsa.Fault{Kind: vmsa.FaultPermission, Level: gs.Level, Stage2: true, S1PTW: true, IPA: mem.IPA(ipa)}
	}
	return gs, acc
}

// stage2Off is the guest leaf for ipa when the guest hypervisor's stage 2
// is off (its HCR_EL2.VM=0): its guest's IPA is its own, every access is
// allowed, and the leaf is as large as the shadow wants (1 GiB).
func stage2Off(ipa NestedIPA) GuestS2 {
	const span = 1 << 30
	return GuestS2{L1: mem.IPA(ipa), Base: ipa &^ (span - 1), L1Base: mem.IPA(ipa) &^ (span - 1), Size: span, Level: -2,
		Perms: vmsa.Perms{R0: true, W0: true, X0: true, R1: true, W1: true, X1: true}}
}

// guestLevelSW is the value a shadow leaf keeps in its software bits for
// the guest leaf's level (0: none).
func guestLevelSW(g *GuestS2) uint8 {
	if g.Level >= -1 {
		return uint8(g.Level + 2)
	}
	return 0
}

// forwardedAbort is the syndrome a guest hypervisor receives for a fault f
// of its stage 2 on the nested IPA ipa, from the abort esr the hardware
// took on the shadow: the same syndrome with its fault status code
// replaced by the guest walk's (kind and guest level), and HPFAR_EL2 the
// IPA except where the architecture leaves it UNKNOWN: a Permission fault
// not on a stage-1 walk, a synchronous External abort on the walk
// (AArch64.ReportException's IPAValid).
func forwardedAbort(esr sysreg.ESR, f vmsa.Fault, ipa NestedIPA) (sysreg.ESR, uint64) {
	out := sysreg.ESR(uint64(esr)&^0x3f | uint64(f.FSC()))
	f.Stage2, f.S1PTW = true, esr.S1PTW()
	if !at.IPAValid(f) {
		return out, HPFARUnknown
	}
	return out, uint64(sysreg.HPFARFor(uint64(ipa)))
}

// hpfarValid reports whether HPFAR_EL2 holds the faulting IPA of a stage-2
// abort with syndrome esr (IPAValid): not for a Permission fault of the
// access itself, whose IPA the hypervisor finds by translating FAR.
func hpfarValid(esr sysreg.ESR) bool { return !fscPermission(esr.FSC()) || esr.S1PTW() }

// guestTLBI decodes a TLBI a guest hypervisor issued at its virtual EL2,
// in the context of its virtual registers g (its VMID, HCR_EL2, VTCR_EL2)
// and its guest's TCR_EL1 (the ASID size of the EL1 forms).
func guestTLBI(op tlb.Op, xt uint64, g *guestRegs, tcr1 sysreg.TCR) (tlb.Scope, tlb.Context, error) {
	lpa2 := g.id.MMFR0.TGran4() == 1 || g.id.MMFR0.TGran16() == 2
	asid16 := tcr1.AS() && g.id.MMFR0.ASIDBits() == 2
	ctx := tlb.Context{EL: 2, VMID: guestVMID(g), HCR: g.hcr, VDS: g.vtcr.DS(), LPA2: lpa2, ASID16: asid16}
	s, err := tlb.ScopeOf(op, xt, ctx)
	if err != nil {
		return s, ctx, fmt.Errorf("nested: TLBI %v from vEL2: %w", op, err)
	}
	return s, ctx, nil
}

// ipas2Range is the nested IPA range [lo, hi) a stage-2 TLBI by IPA (scope
// s of op) removes from a shadow with input size ipaBits: the range forms
// their decoded range (a reserved TG: everything); IPAS2E1 and IPAS2LE1
// the leaf the TTL hint gives when it names the guest's granule gran, else
// the guest leaf the shadow remembers for the address (level), else the
// granule's largest block, as upstream KVM sizes it.
func ipas2Range(op tlb.Op, s *tlb.Scope, gran sysreg.Granule, ipaBits uint, level func(NestedIPA) (int, bool)) (NestedIPA, NestedIPA) {
	lo, hi := NestedIPA(s.Lo), NestedIPA(s.Hi)+1
	switch {
	case s.ReservedTG:
		return 0, NestedIPA(1) << ipaBits
	case op.Base() == tlb.OpIPAS2E1 || op.Base() == tlb.OpIPAS2LE1:
		size := largestBlock(gran)
		if s.Hint.GranuleBits == uint8(gran.Bits()) && s.Hint.Level >= 0 {
			size = 1 << desc.Format{Granule: gran}.LeafBits(int(s.Hint.Level))
		} else if l, ok := level(lo); ok {
			size = 1 << desc.Format{Granule: gran}.LeafBits(l)
		}
		lo &^= NestedIPA(size - 1)
		hi = lo + NestedIPA(size)
	}
	return lo, hi
}

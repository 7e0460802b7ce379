package nested

import (
	"errors"
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/host/vmid"
	"github.com/nestmmu/nestmmu/mem"
)

// shadowMMU is one shadow stage 2: tables in host frames that the modelled
// hardware walks while an L2 runs (L2 IPA -> host PA), with its own VMID
// from L0's allocator. It is keyed as the architecture tags what it
// caches: with the guest's HCR_EL2.VM=1 by the guest's VMID and stage-2
// base (VTTBR_EL2 without CnP) and the VTCR_EL2 captured when it was made;
// with VM=0 by the VMID alone (its contents are then L0's stage 2 for L1,
// L2 IPA = L1 IPA).
type shadowMMU struct {
	vm  *VM
	idx int // in vm.shadows (the reverse map's name for it)
	s2  *s2pt.VM
	// caches are the table-page caches of the shadow, one per nested
	// vCPU (by VCPU.idx, made on its first fault there): each vCPU tops
	// its own up outside the MMU lock and installs from it under the
	// lock, as KVM's per-vCPU memory caches.
	caches []*s2pt.Cache
	vmid   vmid.VM

	guestVM bool         // the guest's HCR_EL2.VM
	gvmid   uint16       // the guest's VMID
	vttbr   sysreg.VTTBR // the guest's VTTBR_EL2 without CnP (VM=1)
	vtcr    sysreg.VTCR  // captured (VM=1)
	sctlr   sysreg.SCTLR // the guest's SCTLR_EL2 (EE: walk endianness), captured
	ghcr    sysreg.HCR   // the guest's HCR_EL2 bits its stage-2 walk reads (FWB, PTW, CD), captured
	ipaBits uint         // the shadow's input size

	refs int // vCPUs running on it
	// lastRan is, per physical CPU, the kvm vCPU ID of the nested vCPU
	// that ran on the shadow there last (-1: none since it was built).
	lastRan []int
}

// ShadowInfo describes a shadow MMU for tests and tools.
type ShadowInfo struct {
	GuestVM   bool
	GuestVMID uint16
	VTTBR     sysreg.VTTBR
	VTCR      sysreg.VTCR
	// VMID is the VMID L0 last gave the shadow; Refs the vCPUs on it.
	VMID uint16
	Refs int
	// Stage2 is the shadow's tables.
	Stage2 *s2pt.VM
}

// shadowInv tags the shadow's TLB maintenance with its current VMID.
type shadowInv struct{ sh *shadowMMU }

func (s shadowInv) InvalidateIPA(ipa mem.IPA, level int) {
	h := s.sh.vm.k.Host()
	var one [1]mem.IPA
	one[0] = ipa
	h.TLBIIPA(h.VMIDOf(&s.sh.vmid), one[:], level)
}

func (s shadowInv) InvalidateVMID() {
	h := s.sh.vm.k.Host()
	h.TLBIVMID(h.VMIDOf(&s.sh.vmid))
}

// matches reports whether the shadow serves the guest state g.
func (sh *shadowMMU) matches(g *guestRegs) bool {
	if sh.s2 == nil {
		return false
	}
	vmOn := g.hcr.VM()
	if sh.guestVM != vmOn || sh.gvmid != guestVMID(g) {
		return false
	}
	return !vmOn || (sh.vttbr == g.vttbr&^1 && sh.vtcr == g.vtcr && sh.ghcr == g.hcr&walkHCR)
}

// walkHCR are the guest's HCR_EL2 bits that change what its stage 2 means
// (they may be cached in TLB entries, so a change needs no flush of the
// old shadow: another one is built).
const walkHCR = sysreg.HCR_FWB | sysreg.HCR_PTW | sysreg.HCR_CD

// in is the shadow's input address for an L2 IPA: s2pt types the input
// space of every stage-2 table as mem.IPA; for a shadow it is L2's.
func in(n NestedIPA) mem.IPA { return mem.IPA(n) }

// shadowLayout chooses the shadow's layout: the guest's IPA size (at least
// 32 bits, at most what the host allows), and the smaller of the guest's
// granule and the host page, so that every guest leaf and every host page
// can be shadowed exactly (a guest granule smaller than the host's is
// shadowed with leaves inside host pages).
func (vm *VM) shadowLayout(g *guestRegs) s2pt.Config {
	id := vm.k.Host().ID()
	gran := vm.k.Layout().Format.Granule
	if g.hcr.VM() {
		if gg := granuleOf(g); gg.Bits() < gran.Bits() && id.MMFR0.GranuleSupported(gg, true) {
			gran = gg
		}
	}
	// A 52-bit IPA needs FEAT_LPA2 (VTCR_EL2.DS) with 4K and 16K, FEAT_LPA
	// with 64K (AArch64.S2MinTxSZ): a guest stage 2 of 52 bits is shadowed
	// at 52 bits where the host has them (mainline caps nested guests at 48).
	hostMax, _ := sysreg.PASizeBits(id.MMFR0.PARange())
	if hostMax == 52 && gran != sysreg.Granule64K && !id.MMFR0.GranuleLPA2(gran, true) {
		hostMax = 48
	}
	ipa := vm.k.Layout().IPABits
	if g.hcr.VM() {
		ipa = min(max(guestIPABits(g.vtcr), 32), hostMax)
	}
	return s2pt.Config{IPABits: ipa, Granule: gran, MMFR0: id.MMFR0, MMFR1: id.MMFR1}
}

// acquire returns the shadow for the guest state g, with a reference the
// caller releases when the vCPU stops running on it. It reuses a matching
// shadow, or recycles one no vCPU uses (round-robin, its old tables torn
// down now, lazily) and builds it empty; entries come on shadow faults.
func (vm *VM) acquire(g *guestRegs) (*shadowMMU, error) {
	vm.k.LockMMU()
	defer vm.k.UnlockMMU()
	for _, sh := range vm.shadows {
		if sh.matches(g) {
			sh.refs++
			return sh, nil
		}
	}
	var victim *shadowMMU
	if i, ok := recycle(len(vm.shadows), &vm.next, func(i int) bool { return vm.shadows[i].refs == 0 }); ok {
		victim = vm.shadows[i]
	}
	if victim == nil {
		return nil, errors.New("nested: every shadow stage 2 is in use")
	}
	if err := victim.teardown(); err != nil {
		return nil, err
	}
	cfg := vm.shadowLayout(g)
	s2, err := s2pt.New(cfg, s2pt.ArenaTables{Arena: vm.k.Host().Arena()}, shadowInv{victim})
	if err != nil {
		return nil, fmt.Errorf("nested: shadow stage 2 for VTCR_EL2 %#x: %w", uint64(g.vtcr), err)
	}
	victim.s2 = s2
	if victim.caches == nil {
		victim.caches = make([]*s2pt.Cache, vm.cfg.VCPUs)
	}
	victim.guestVM, victim.gvmid = g.hcr.VM(), guestVMID(g)
	victim.vttbr, victim.vtcr, victim.sctlr, victim.ipaBits = g.vttbr&^1, g.vtcr, g.sctlr, cfg.IPABits
	victim.ghcr = g.hcr & walkHCR
	if !victim.guestVM {
		victim.vttbr, victim.vtcr, victim.ghcr = 0, 0, 0
	}
	victim.refs = 1
	if victim.lastRan == nil {
		victim.lastRan = make([]int, vm.k.Host().CPUs())
	}
	for i := range victim.lastRan {
		victim.lastRan[i] = -1 // Destroy invalidated the old tables' VMID everywhere
	}
	return victim, nil
}

// cacheFor returns vCPU i's table-page cache for the shadow. Only vCPU i
// calls it, holding a reference (so the shadow is not torn down meanwhile).
func (sh *shadowMMU) cacheFor(i int) *s2pt.Cache {
	if sh.caches[i] == nil {
		sh.caches[i] = sh.s2.NewCache()
	}
	return sh.caches[i]
}

// release drops a vCPU's reference.
func (vm *VM) release(sh *shadowMMU) {
	vm.k.LockMMU()
	if sh.refs > 0 {
		sh.refs--
	}
	vm.k.UnlockMMU()
}

// teardown frees the shadow's tables (TLBI VMALLS12E1IS of its VMID
// first). The MMU lock is held.
func (sh *shadowMMU) teardown() error {
	if sh.s2 == nil {
		return nil
	}
	errs := []error{sh.s2.Destroy()}
	for i, c := range sh.caches {
		if c != nil {
			errs = append(errs, c.Release())
			sh.caches[i] = nil
		}
	}
	sh.s2 = nil
	sh.vm.rmap.clear(sh.idx)
	sh.vm.stats.flushes.Add(1)
	return errors.Join(errs...)
}

// flush removes every entry of the shadow, with the TLB invalidation.
// The MMU lock is held.
func (sh *shadowMMU) flush() error {
	if sh.s2 == nil {
		return nil
	}
	sh.vm.stats.flushes.Add(1)
	sh.vm.rmap.clear(sh.idx)
	return sh.s2.Unmap(0, uint64(1)<<sh.ipaBits)
}

// unmapCovering removes every shadow leaf that overlaps [lo, hi) (a
// straddling block whole: removing more than asked is always allowed),
// with the TLB invalidation. The MMU lock is held.
func (sh *shadowMMU) unmapCovering(lo, hi NestedIPA) error {
	if sh.s2 == nil || hi <= lo {
		return nil
	}
	top := NestedIPA(1) << sh.ipaBits
	if lo >= top {
		return nil
	}
	hi = min(hi, top)
	g := NestedIPA(sh.s2.Layout().TableBytes)
	lo, hi = lo&^(g-1), (hi+g-1)&^(g-1)
	if sh.vm.rmap.reserve(sh.idx, 1) {
		sh.vm.rmap.trim(sh.idx, lo, hi)
	}
	return sh.s2.Unmap(in(lo), uint64(hi-lo))
}

// guestLevel returns the guest leaf level remembered in the shadow leaf
// that maps ipa (software bits of the descriptor), if any.
func (sh *shadowMMU) guestLevel(ipa NestedIPA) (int, bool) {
	if sh.s2 == nil {
		return 0, false
	}
	d, level, err := sh.s2.Lookup(in(ipa))
	if err != nil || d&1 == 0 || desc.KindAt(d, level) == desc.Table {
		return 0, false
	}
	sw := s2pt.SW(d)
	if sw == 0 {
		return 0, false
	}
	return int(sw) - 2, true
}

// Shadows describes the VM's shadow MMUs that hold tables.
func (vm *VM) Shadows() []ShadowInfo {
	vm.k.LockMMU()
	defer vm.k.UnlockMMU()
	var out []ShadowInfo
	for _, sh := range vm.shadows {
		if sh.s2 == nil {
			continue
		}
		out = append(out, ShadowInfo{GuestVM: sh.guestVM, GuestVMID: sh.gvmid, VTTBR: sh.vttbr, VTCR: sh.vtcr,
			VMID: vm.k.Host().VMIDOf(&sh.vmid), Refs: sh.refs, Stage2: sh.s2})
	}
	return out
}

var _ kvm.NestedHooks = (*VM)(nil)

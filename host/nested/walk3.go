package nested

import (
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// The software three-stage walk: what an L2 TLB miss would cost without a
// shadow stage 2, on a machine that walked three stages. A deliberately
// simple reference: L2's stage 1 is walked over L2 IPAs, each descriptor
// read translated by the guest hypervisor's stage 2, whose reads are
// translated by L0's stage 2 for the guest hypervisor, whose reads are
// host memory. Every stage is the translation core's walk; the memories in
// between only translate (and count). A full walk with n, m and k levels
// reads (n+1)(m+1)(k+1)-1 descriptors: 124 with four levels each, against
// (n+1)(m+1)-1 = 24 for the two-dimensional walk over a four-level shadow.

// ThreeStageWalker walks an L2 VA through the three stages of a nested
// vCPU's current state. It reads only: Access flags and dirty state are
// never updated (a walk that would need an update in a table is what the
// hardware walk of the shadow did already). L0's stage 2 for the guest
// hypervisor is walked where it maps the page; the shadow faults of this
// machine install their mappings in the shadows only (kvm.VCPU.FaultFor),
// so where it does not, the page is found through the memslot and the
// host's page tables, as L0's fault would map it on a three-stage machine,
// and counted as the walk of that mapping would read: from the stage's
// start level to a 2 MiB block for a host huge page (4K granule), else to
// a page. Not safe for concurrent use.
type ThreeStageWalker struct {
	v        *VCPU
	host     countingMemory
	l0       l0Memory
	l1       stage2Memory
	s1       vmsa.Walker
	s1regs   vmsa.Regs
	hostRegs vmsa.Regs
}

// l0Memory is the guest hypervisor's IPA space through L0's stage 2 for
// its VM (see ThreeStageWalker).
type l0Memory struct {
	t *ThreeStageWalker
	stage2Memory
}

func (m *l0Memory) Read64(p mem.PA) (uint64, bool) {
	pa, ok := m.translate(mem.IPA(p))
	if !ok {
		return 0, false
	}
	return m.t.host.Read64(pa)
}

// translate gives the host PA of the guest hypervisor's IPA ipa, counting
// L0's stage-2 walk (see ThreeStageWalker).
func (m *l0Memory) translate(ipa mem.IPA) (mem.PA, bool) {
	t := m.t
	before := t.host.reads
	tr := m.w.TranslateS2(&m.regs, ipa, vmsa.Access{Kind: vmsa.Read, EL: 1, NoPerm: true})
	if !tr.Fault.IsFault() {
		return tr.OA, true
	}
	k := t.v.vm.k
	s := k.Lookup(ipa)
	if s == nil {
		return 0, false
	}
	hm, ok := k.AddressSpace().Translate(s.HVAOf(ipa))
	if !ok {
		return 0, false // swapped out: L0 would have to fault it in
	}
	l := k.Layout()
	leaf := 3
	if hm.Huge && l.Format.Granule == sysreg.Granule4K {
		leaf = 2
	}
	t.host.reads = before + uint64(leaf-l.StartLevel+1)
	return hm.PA, true
}

// countingMemory counts the reads of host memory: every one is a
// descriptor read of some stage.
type countingMemory struct {
	m     mem.Memory
	reads uint64
}

func (c *countingMemory) Read64(pa mem.PA) (uint64, bool) {
	c.reads++
	return c.m.Read64(pa)
}

func (c *countingMemory) CompareAndSwap64(mem.PA, uint64, uint64) (bool, bool) { return false, false }

// stage2Memory is an IPA space seen through a stage 2: a read at IPA p
// translates p with the stage-2 walk over the memory below.
type stage2Memory struct {
	w    vmsa.Walker
	regs vmsa.Regs
}

func (s *stage2Memory) Read64(p mem.PA) (uint64, bool) {
	tr := s.w.TranslateS2(&s.regs, mem.IPA(p), vmsa.Access{Kind: vmsa.Read, EL: 1, NoPerm: true})
	if tr.Fault.IsFault() {
		return 0, false
	}
	return s.w.Mem.Read64(tr.OA)
}

func (s *stage2Memory) CompareAndSwap64(mem.PA, uint64, uint64) (bool, bool) { return false, false }

// ThreeStage returns a three-stage walker for the vCPU (L0's host memory
// and stage 2 for the VM, the guest hypervisor's ID registers).
func (v *VCPU) ThreeStage() *ThreeStageWalker {
	h := v.vm.k.Host()
	t := &ThreeStageWalker{v: v, host: countingMemory{m: h.Arena()}, hostRegs: h.ID()}
	t.l0.t = t
	t.l0.w.Mem = &t.host
	t.l1.w.Mem = &t.l0
	t.s1.Mem = &t.l1
	return t
}

// Walk translates the L2 VA va as an access of kind acc at L2's current
// EL would (permissions are not checked: only the walk counts), with L2's
// stage-1 registers on the PE, the guest hypervisor's virtual VTTBR_EL2
// and VTCR_EL2, and L0's stage 2 for the VM as they are now. It returns
// the host PA and the descriptors read; ok is false when a stage faults
// (an L2 page or an L1 table L0 has not mapped, say), reads then being
// those done up to the fault. The vCPU must be in L2.
func (t *ThreeStageWalker) Walk(va mem.VA, kind vmsa.AccessKind) (pa mem.PA, reads uint64, ok bool) {
	v := t.v
	if !v.inL2 {
		return 0, 0, false
	}
	ids := v.vm.ids
	t.l0.regs = t.hostRegs
	v.vm.k.Stage2().ApplyRegs(&t.l0.regs)
	t.l0.regs.HCR_EL2 = sysreg.HCR_VM | sysreg.HCR_RW
	t.l1.regs = vmsa.Regs{MMFR0: ids.MMFR0, MMFR1: ids.MMFR1, MMFR2: ids.MMFR2, ISAR2: t.hostRegs.ISAR2}
	t.l1.regs.VTTBR_EL2 = sysreg.VTTBR(v.vncrGet(offVTTBR))
	t.l1.regs.VTCR_EL2 = sysreg.VTCR(v.vncrGet(offVTCR))
	t.l1.regs.HCR_EL2 = sysreg.HCR_VM | sysreg.HCR_RW
	r := &t.s1regs
	*r = t.l1.regs
	r.HCR_EL2 = sysreg.HCR_RW // stage 1 alone: its output is an L2 IPA
	pe := v.pe
	r.SCTLR_EL1 = sysreg.SCTLR(pe.Get(cpu.SCTLR_EL1))
	r.TCR_EL1 = sysreg.TCR(pe.Get(cpu.TCR_EL1))
	r.TTBR0_EL1 = sysreg.TTBR(pe.Get(cpu.TTBR0_EL1))
	r.TTBR1_EL1 = sysreg.TTBR(pe.Get(cpu.TTBR1_EL1))
	r.MAIR_EL1 = sysreg.MAIR(pe.Get(cpu.MAIR_EL1))

	before := t.host.reads
	acc := vmsa.Access{Kind: kind, EL: pe.EL, NoPerm: true}
	tr := t.s1.Translate(r, vmsa.RegimeEL10, va, acc, vmsa.TranslateOptions{})
	if tr.Fault.IsFault() {
		return 0, t.host.reads - before, false
	}
	g := t.l1.w.TranslateS2(&t.l1.regs, mem.IPA(tr.OA), acc)
	if g.Fault.IsFault() {
		return 0, t.host.reads - before, false
	}
	pa, ok = t.l0.translate(mem.IPA(g.OA))
	return pa, t.host.reads - before, ok
}

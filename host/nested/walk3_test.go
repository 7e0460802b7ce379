package nested_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// The software three-stage walk: a deliberately simple reference for the
// shadow (no shadow, no TLB): L2's stage 1 is walked over L2 IPAs, each
// descriptor read translated by L1's stage 2, whose reads are translated
// by L0's stage 2 for L1, whose reads are host memory. Every stage is the
// translation core's walk; the memories in between only translate.

// countingMem counts the reads of host memory.
type countingMem struct {
	m     mem.Memory
	reads uint64
}

func (c *countingMem) Read64(pa mem.PA) (uint64, bool) {
	c.reads++
	return c.m.Read64(pa)
}

func (c *countingMem) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	return c.m.CompareAndSwap64(pa, old, new)
}

// stage2Mem is the memory of an IPA space seen through a stage 2: a read
// at IPA p translates p with the stage-2 walk over the memory below.
type stage2Mem struct {
	w    vmsa.Walker
	regs vmsa.Regs
}

func (s *stage2Mem) Read64(p mem.PA) (uint64, bool) {
	tr := s.w.TranslateS2(&s.regs, mem.IPA(p), vmsa.Access{Kind: vmsa.Read, EL: 1, NoPerm: true})
	if tr.Fault.IsFault() {
		return 0, false
	}
	return s.w.Mem.Read64(tr.OA)
}

func (s *stage2Mem) CompareAndSwap64(mem.PA, uint64, uint64) (bool, bool) { return false, false }

// threeStage is the reference walker for a rig whose vCPU runs VM A.
type threeStage struct {
	host   *countingMem
	s1     vmsa.Walker
	s1regs vmsa.Regs
	l1, l0 *stage2Mem
}

// newThreeStage builds it from the architectural state: L0's stage 2 for
// L1 (the kvm VM's tables), L1's stage 2 for VM A (its tables in L1
// memory) and L2's stage-1 registers as L1 set them.
func newThreeStage(r *rig, s1 map[cpu.SysReg]uint64) *threeStage {
	host := &countingMem{m: r.host.Arena()}
	l0 := &stage2Mem{w: vmsa.Walker{Mem: host}, regs: r.host.ID()}
	r.kvm.Stage2().ApplyRegs(&l0.regs)
	l0.regs.HCR_EL2 = sysreg.HCR_VM | sysreg.HCR_RW
	ids := r.nvm.IDRegs()
	l1 := &stage2Mem{w: vmsa.Walker{Mem: l0}, regs: vmsa.Regs{MMFR0: ids.MMFR0, MMFR1: ids.MMFR1, MMFR2: ids.MMFR2, ISAR2: r.host.ID().ISAR2}}
	r.a.Stage2().ApplyRegs(&l1.regs)
	l1.regs.HCR_EL2 = sysreg.HCR_VM | sysreg.HCR_RW
	t := &threeStage{host: host, s1: vmsa.Walker{Mem: l1}}
	t.s1regs = l1.regs
	t.s1regs.HCR_EL2 = sysreg.HCR_RW // stage 1 alone: its output is an L2 IPA
	t.s1regs.SCTLR_EL1 = sysreg.SCTLR(s1[cpu.SCTLR_EL1])
	t.s1regs.TCR_EL1 = sysreg.TCR(s1[cpu.TCR_EL1])
	t.s1regs.TTBR0_EL1 = sysreg.TTBR(s1[cpu.TTBR0_EL1])
	t.s1regs.MAIR_EL1 = sysreg.MAIR(s1[cpu.MAIR_EL1])
	t.l1, t.l0 = l1, l0
	return t
}

// translate gives the host PA of L2 VA va and the host-memory reads it
// took (every one a descriptor read of some stage).
func (t *threeStage) translate(va mem.VA) (mem.PA, uint64, bool) {
	before := t.host.reads
	tr := t.s1.Translate(&t.s1regs, vmsa.RegimeEL10, va, vmsa.Access{Kind: vmsa.Read, EL: 1}, vmsa.TranslateOptions{})
	if tr.Fault.IsFault() {
		return 0, t.host.reads - before, false
	}
	g := t.l1.w.TranslateS2(&t.l1.regs, mem.IPA(tr.OA), vmsa.Access{Kind: vmsa.Read, EL: 1})
	if g.Fault.IsFault() {
		return 0, t.host.reads - before, false
	}
	h := t.l0.w.TranslateS2(&t.l0.regs, mem.IPA(g.OA), vmsa.Access{Kind: vmsa.Read, EL: 1})
	return h.OA, t.host.reads - before, !h.Fault.IsFault()
}

// Four-level everything: L1's VM and VM A have 48-bit IPA spaces (4-level
// stage 2s with the 4K granule: L0's for L1, L1's for L2, and hence the
// shadow), and L2's stage 1 has 48-bit VAs (4 levels) mapping VA
// [l2RAM, l2RAM+8 MiB) to the same L2 IPAs page by page, its tables in L2
// memory from l2S1Tables.
const (
	l2S1Tables = l2RAM + 12<<20
	l2Mapped   = 8 << 20
)

// l2S1Regs are L2's stage-1 registers: MMU on, T0SZ=16, 4K granule,
// write-back walks, inner shareable, TTBR1 walks off, IPS 48 bits.
var l2S1Regs = map[cpu.SysReg]uint64{
	cpu.SCTLR_EL1: 1, cpu.TCR_EL1: 16 | 1<<8 | 1<<10 | 3<<12 | 1<<23 | 5<<32,
	cpu.TTBR0_EL1: l2S1Tables, cpu.MAIR_EL1: 0xff,
}

// fourLevelRig boots the rig with 48-bit IPAs, has L1 map all of VM A's
// memory (4K pages), write L2's stage 1 and read every page so that
// its own stage 2 maps them, and enters VM A with its MMU on.
func fourLevelRig(tb testing.TB, opts ...func(*rigConfig)) *rig {
	tb.Helper()
	opts = append([]func(*rigConfig){func(c *rigConfig) { c.ipaBits, c.guestIPABits = 48, 48 }}, opts...)
	r := newRig(tb, nested.ModeNV2, true, 0, opts...)
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	// L1 maps VM A page by page (four levels of its stage 2 walked too).
	s2 := r.a.Stage2()
	cache := s2.NewCache()
	must(cache.Topup(s2.MapPagesNeeded(l2RAM, l1VMA, l2Size, 0)))
	must(s2.Map(cache, l2RAM, l1VMA, l2Size, s2pt.ProtR|s2pt.ProtW|s2pt.ProtX, 0))
	l1 := func(l2 uint64) mem.VA { return mem.VA(l1VMA + (l2 - l2RAM)) }
	put := func(at, v uint64) { must(r.v.Store(l1(at), 8, v)) }
	t0, t1, t2 := uint64(l2S1Tables), uint64(l2S1Tables+0x1000), uint64(l2S1Tables+0x2000)
	put(t0+(l2RAM>>39&511)*8, t1|3)
	put(t1+(l2RAM>>30&511)*8, t2|3)
	for k := uint64(0); k < l2Mapped>>21; k++ {
		t3 := uint64(l2S1Tables+0x3000) + k*0x1000
		put(t2+(l2RAM>>21&511+k)*8, t3|3)
		for p := uint64(0); p < 512; p++ {
			ipa := uint64(l2RAM) + k<<21 + p<<12
			put(t3+p*8, ipa|1<<10|3<<8|0b11) // AF, inner shareable, AttrIndx 0, page
		}
	}
	for a := uint64(0); a < l2Size; a += 4096 {
		_, err := r.v.Load(l1(l2RAM+a), 8) // L0's stage 2 maps it (for the reference walk)
		must(err)
	}
	for reg, v := range l2S1Regs {
		r.a.SetGuestReg(reg, v)
	}
	r.run(tb, r.a)
	return r
}

// TestThreeStageReference: with four levels at every stage, a TLB miss of
// L2 costs (4+1)(4+1)-1 = 24 descriptor reads through the shadow (the
// two-dimensional walk the hardware does) and (4+1)(4+1)(4+1)-1 = 124
// through the software three-stage walk; both give the same host PA,
// which holds what L2 wrote there.
func TestThreeStageReference(t *testing.T) {
	r := fourLevelRig(t)
	ref := newThreeStage(r, l2S1Regs)
	pe := r.v.PE()
	for i, va := range []mem.VA{l2RAM, l2RAM + 0x1008, l2RAM + 0x3f_f000, l2RAM + l2Mapped - 8} {
		r.store(t, va, uint64(i)+0x100) // the shadow maps the page and L2's stage-1 tables now
		want, n3, ok := ref.translate(va)
		if !ok {
			t.Fatalf("the reference walk of VA %#x faults", uint64(va))
		}
		host := &countingMem{m: r.host.Arena()}
		w := vmsa.Walker{Mem: host}
		tr := w.Translate(&pe.Regs, vmsa.RegimeEL10, va, vmsa.Access{Kind: vmsa.Read, EL: 1}, vmsa.TranslateOptions{})
		if tr.Fault.IsFault() || tr.OA != want {
			t.Errorf("VA %#x: through the shadow %#x (%v), the reference %#x", uint64(va), uint64(tr.OA), tr.Fault, uint64(want))
		}
		if host.reads != 24 || n3 != 124 {
			t.Errorf("VA %#x: %d descriptor reads through the shadow (want 24), %d by the reference (want 124)", uint64(va), host.reads, n3)
		}
		if v, ok := r.host.Arena().Read64(want &^ 7); !ok || v != uint64(i)+0x100 {
			t.Errorf("VA %#x: host PA %#x holds %#x", uint64(va), uint64(want), v)
		}
	}
	if err := r.nvm.Check(); err != nil {
		t.Error(err)
	}
}

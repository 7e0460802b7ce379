package nested_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// l2Stage1 writes (as L1, into VM A's memory) a stage 1 for L2 that maps
// VA 0x4000_0000 with a 2 MiB block to L2 IPA out: a level-1 table at L2
// IPA table and a level-2 table after it (39-bit VA, 4K granule, ASID 0,
// nG=1). It returns the TCR_EL1 value to use.
func l2Stage1(t *testing.T, r *rig, table, out nested.NestedIPA) uint64 {
	t.Helper()
	l1 := func(l2 nested.NestedIPA) mem.VA { return mem.VA(l1VMA + mem.IPA(l2-l2RAM)) }
	mustOK(t, r.v.Store(l1(table+1*8), 8, uint64(table+0x1000)|0b11))
	block := uint64(out) | 1<<11 | 1<<10 | 3<<8 | 0b01 // nG, AF, inner shareable, AttrIndx 0
	mustOK(t, r.v.Store(l1(table+0x1000), 8, block))
	return 25 | 1<<8 | 1<<10 | 3<<12 | 1<<23 | 2<<32
}

type sysRegVal struct {
	r cpu.SysReg
	v uint64
}

// enter is what an E2H=1 guest hypervisor on v does to run vm: VTTBR_EL2,
// VTCR_EL2, HCR_EL2 (VM, with extra bits), the guest's EL1 registers
// (the *_EL12 names), ELR_EL2 = 0 and SPSR_EL2 = EL1h, ERET.
func enter(t *testing.T, v *nested.VCPU, vm *guesthyp.VM, extra sysreg.HCR, el1 ...sysRegVal) {
	t.Helper()
	regs := append([]sysRegVal{
		{cpu.HCR_EL2, uint64(sysreg.HCR_RW | sysreg.HCR_E2H | sysreg.HCR_VM | extra)},
		{cpu.VTTBR_EL2, vm.VTTBR()}, {cpu.VTCR_EL2, uint64(vm.Stage2().VTCR())},
		{cpu.ELR_EL2, 0}, {cpu.SPSR_EL2, 0b0101},
	}, el1...)
	for _, s := range regs {
		mustOK(t, v.MSR(s.r, s.v))
	}
	mustOK(t, v.ERET())
	if !v.InL2() {
		t.Fatal("ERET did not enter L2")
	}
}

// TestSharedShadowFlushesPerVCPU: two nested vCPUs run the same L2 (same
// VTTBR_EL2, hence the same shadow) one after the other on one physical
// CPU, with stage-1 tables that map the same VA under the same ASID to
// different pages. On hardware each vCPU is its own PE and never uses the
// other's TLB entries; on one physical CPU L0 must flush the shadow's
// VMID there when another vCPU ran on it last, as KVM does per stage-2
// MMU (last_vcpu_ran). The second vCPU must read its own page.
func TestSharedShadowFlushesPerVCPU(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRig(t, mode, true, 0, func(c *rigConfig) { c.nested.VCPUs = 2 })
			const (
				tabA, tabB = l2RAM + 0x40_0000, l2RAM + 0x40_2000
				outA, outB = l2RAM + 0x20_0000, l2RAM + 0x60_0000
			)
			mustOK(t, r.a.Map(l2RAM, l1VMA, l2Size)) // L1 maps all of VM A up front
			tcr := l2Stage1(t, r, tabA, outA)
			l2Stage1(t, r, tabB, outB)
			mustOK(t, r.v.Store(mem.VA(l1VMA+mem.IPA(outA-l2RAM)), 8, 0xaaaa))
			mustOK(t, r.v.Store(mem.VA(l1VMA+mem.IPA(outB-l2RAM)), 8, 0xbbbb))
			r.a.SetGuestReg(cpu.SCTLR_EL1, 1)
			r.a.SetGuestReg(cpu.TCR_EL1, tcr)
			r.a.SetGuestReg(cpu.TTBR0_EL1, uint64(tabA))
			r.a.SetGuestReg(cpu.MAIR_EL1, 0xff)
			r.run(t, r.a)
			if got := r.load(t, 0x4000_0000); got != 0xaaaa {
				t.Fatalf("vCPU 0 reads %#x", got)
			}
			mustOK(t, r.v.PutCPU()) // it stays in L2, holding the shadow

			kb, err := r.kvm.NewVCPU(1)
			mustOK(t, err)
			vb, err := r.nvm.NewVCPU(kb, nil)
			mustOK(t, err)
			mustOK(t, vb.LoadCPU(0))
			t.Cleanup(func() { _ = vb.PutCPU() })
			enter(t, vb, r.a, 0, sysRegVal{cpu.SCTLR_EL12, 1}, sysRegVal{cpu.TCR_EL12, tcr},
				sysRegVal{cpu.TTBR0_EL12, uint64(tabB)}, sysRegVal{cpu.MAIR_EL12, 0xff})
			if len(r.nvm.Shadows()) != 1 {
				t.Fatalf("shadows %+v: the two vCPUs do not share one", r.nvm.Shadows())
			}
			rb := *r
			rb.v = vb
			if got := rb.load(t, 0x4000_0000); got != 0xbbbb {
				t.Errorf("vCPU 1 reads %#x through its own stage 1, want 0xbbbb (vCPU 0's TLB entry)", got)
			}
		})
	}
}

// TestGuestFWB: the memory type of the shadow follows the guest
// hypervisor's stage-2 MemAttr as its HCR_EL2.FWB says to read it
// (FEAT_S2FWB is offered to it): with FWB=0, MemAttr[3:2]=0b00 is Device
// and anything else Normal; with FWB=1, MemAttr[2]=0 is Device (of type
// MemAttr[1:0]) and MemAttr[2]=1 Normal. The invariant checker reads the
// guest's stage 2 the same way.
func TestGuestFWB(t *testing.T) {
	cases := []struct {
		memAttr uint64
		fwb     bool
		device  bool
	}{
		{0b0001, false, true},  // Device-nGnRE
		{0b1111, false, false}, // Normal Write-Back
		{0b1011, false, false}, // Normal, Outer Write-Through, Inner Write-Back
		{0b0001, true, true},   // Device-nGnRE
		{0b1011, true, true},   // MemAttr[2]=0: Device-GRE
		{0b1000, true, true},   // Device-nGnRnE
		{0b0111, true, false},  // Normal, stage 1's attributes
		{0b0110, true, false},  // Normal Write-Back, forced
	}
	if sysreg.DefaultMMFR2.FWB() == 0 {
		t.Fatal("the host does not implement FEAT_S2FWB")
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("MemAttr=%04b FWB=%v", c.memAttr, c.fwb), func(t *testing.T) {
			r := newRig(t, nested.ModeNV2, true, 0)
			const page = l2RAM + 0x1000
			mustOK(t, r.a.Map(l2RAM, l1VMA, 2<<20))
			// L1 changes the leaf's MemAttr (bits [5:2]) with
			// break-before-make before L2 ever runs.
			err := r.a.Stage2().Walk(mem.IPA(page), mem.IPA(page+1), s2pt.VisitorFunc(func(c2 *s2pt.Ctx, _ s2pt.WalkFlags) error {
				d := c2.Old&^(0xf<<2) | c.memAttr<<2
				if err := c2.Set(0); err != nil {
					return err
				}
				return c2.Set(d)
			}), s2pt.VisitLeaf)
			mustOK(t, err)
			mustOK(t, r.v.Store(l1VMA+0x1000, 8, 0x77))
			var extra sysreg.HCR
			if c.fwb {
				extra = sysreg.HCR_FWB
			}
			enter(t, r.v, r.a, extra)
			if got := r.load(t, page); got != 0x77 {
				t.Errorf("L2 reads %#x", got)
			}
			d := shadowLeaf(t, r, 1, page)
			if dev := d.MemAttr()>>2 == 0; d == 0 || dev != c.device {
				t.Errorf("shadow leaf %#x: Device %v, want %v", uint64(d), dev, c.device)
			}
			checkAll(t, r)
		})
	}
}

// Instruction words (A64 load/store register, immediate post-index:
// size=11 111 0 00 opc 0 imm9 01 Rn Rt).
const (
	insnSTRPost = 0xf8008401 // STR X1, [X0], #8 (opc=00)
	insnLDRPost = 0xf8408401 // LDR X1, [X0], #8 (opc=01)
)

// TestMMIONoSyndromeNested: an L2 store that reports no syndrome (a
// post-index STR: ESR_EL2.ISV=0) to an L2 IPA that L1's stage 2 maps to an
// L1 IPA without memory is an MMIO exit at that L1 IPA, decoded from the
// instruction at L2's PC. L0 reads it through L2's stage 1 and the shadow,
// or, when the shadow does not map the code page, through L1's stage 2 and
// L1's memory; never at the L2 IPA taken as an L1 IPA (L1 keeps a load
// instruction there, which would be decoded as a read). When L1's stage 2
// does not map the code yet, L0 fetches it on the PE as the hardware did
// (the fault goes to L1, which maps it) and the store runs again.
func TestMMIONoSyndromeNested(t *testing.T) {
	const (
		device   = 0x9000_0040 // L2 IPA mapped to L1 IPA 0x8000_0040: no memslot
		deviceL1 = 0x8000_0040
	)
	for _, c := range []struct {
		name    string
		code    mem.VA // L2's PC: an L2 IPA (its stage 1 is off)
		mapped  bool   // L1 maps the code's block before L2 runs
		touched bool   // L2 read its code page (the shadow maps it)
	}{
		{"code page in the shadow", 0x4000_2000, true, true},
		{"code page not in the shadow", 0x4000_2000, true, false},
		{"code page not mapped by L1 yet", l2RAM + 0x2000, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, nested.ModeNV2, true, 0)
			code := c.code
			codeL1 := l1VMA + mem.VA(code&0x1f_ffff)
			if c.mapped {
				mustOK(t, r.a.Map(nested.NestedIPA(code)&^0x1f_ffff, l1VMA, 2<<20))
				mustOK(t, r.v.Store(code, 4, insnLDRPost)) // L1's own memory at the same number
			}
			mustOK(t, r.a.Map(0x9000_0000, 0x8000_0000, 2<<20))
			mustOK(t, r.v.Store(codeL1, 4, insnSTRPost))
			r.run(t, r.a) // L1's model then knows which VM runs
			r.toL1(t)
			enter(t, r.v, r.a, 0, sysRegVal{cpu.ELR_EL2, uint64(code)})
			if c.touched {
				if got := r.load(t, code); got&0xffff_ffff != insnSTRPost {
					t.Fatalf("L2 reads %#x at its PC", got)
				}
				r.v.PE().PC = code
			}
			x := &r.v.KVM().Ctx().X
			x[0], x[1] = device, 0xabcd
			exit, err := r.v.RunL2(kvm.Access{VA: device, Size: 8, Rt: 1, Write: true, NoSyndrome: true})
			if err != nil || exit.Reason != nested.ExitMMIO {
				t.Fatalf("exit %v, %v", exit.Reason, err)
			}
			if m := exit.MMIO; m.IPA != deviceL1 || !m.Write || m.Size != 8 || m.Data[0] != 0xabcd {
				t.Fatalf("decoded %+v, want an 8-byte store of 0xabcd to L1 IPA %#x", m, deviceL1)
			}
			if fw := r.v.Stats().Forwarded; !c.mapped && fw == 0 {
				t.Error("L1 was not asked to map L2's code: the refetch did not happen")
			}
			mustOK(t, r.v.CompleteMMIO([2]uint64{}))
			if x[0] != device+8 || r.v.PE().PC != code+4 {
				t.Errorf("after completion X0 %#x PC %#x", x[0], uint64(r.v.PE().PC))
			}
			checkAll(t, r)
		})
	}
}

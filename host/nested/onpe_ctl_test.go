package nested_test

import (
	"errors"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/nested"
)

// keptPE is the PE's kept registers (an interpreter's) for the on-PE rig:
// L0's own values before SetKeptWriter, then what L0 gives the PE.
type keptPE map[[3]uint8]uint64

func (h keptPE) source(op0, op1, crn, crm, op2 uint8) (uint64, bool) {
	x, ok := h[[3]uint8{crn, crm, op2}]
	return x, ok && (op0 == 3 && op1 == 4 || op0 == 3 && op1 == 0 || op0 == 2)
}

var (
	encCNTVOFF = [3]uint8{14, 0, 3}
	encCPTR    = [3]uint8{1, 1, 2}
	encMDCR    = [3]uint8{1, 1, 1}
	encCNTHCTL = [3]uint8{14, 1, 0}
	encHSTR    = [3]uint8{1, 1, 3}
)

// onPEEnterL2 makes the guest hypervisor of r ERET into its guest (EL1h).
func onPEEnterL2(t *testing.T, r *onPE, mode nested.Mode) {
	t.Helper()
	pe := r.pe
	if mode == nested.ModeNV {
		r.el2Reg(12, 0, 0, false, 0x4000_8000) // VBAR_EL2
		r.el2Reg(1, 1, 0, false, 1<<31)        // HCR_EL2: RW
		r.el2Reg(4, 0, 0, false, 0x3c5)        // SPSR_EL2: EL1h
		r.el2Reg(4, 0, 1, false, 0x4000_2000)  // ELR_EL2
	} else {
		pe.VBAR[1] = 0x4000_8000
		pe.SPSR[1], pe.ELR[1] = 0x3c5, 0x4000_2000
	}
	e := cpu.Exception{Kind: cpu.ERETTrap, TargetEL: 2, ESR: 0x1a<<26 | 1<<25}
	pe.TakeException(&e)
	r.exit()
	if !r.v.InL2() {
		t.Fatalf("%v: ERET did not enter L2", mode)
	}
}

// TestKeptControlsAppliedToL2: the guest hypervisor's CNTVOFF_EL2 offsets
// the PE's virtual counter in both worlds (E2H=0: the offset applies at
// EL2 too), and while its guest runs the PE holds the trap controls of its
// CPTR_EL2 (TCPAC, TFP, TZ), MDCR_EL2 (TDE, TDA) and CNTHCTL_EL2 (EL1PCTEN,
// EL1PCEN cleared) combined with L0's; HSTR_EL2 (AArch32 only) stays
// L0's. Back at vEL2 the PE holds L0's controls again, with the guest
// hypervisor's TFP and TZ (they trap FP/SIMD and SVE at EL2 too) and L0's
// TCPAC.
func TestKeptControlsAppliedToL2(t *testing.T) {
	const l0MDCR, l0CNTHCTL = 6, 3
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		held := keptPE{encCNTVOFF: 0x40, encCPTR: 0, encMDCR: l0MDCR, encCNTHCTL: l0CNTHCTL, encHSTR: 0}
		r := newOnPERig(t, mode)
		r.v.SetIDSource(held.source)
		r.v.SetKeptWriter(func(op0, op1, crn, crm, op2 uint8, x uint64) bool {
			held[[3]uint8{crn, crm, op2}] = x
			return true
		})
		if got := r.el2Reg(1, 1, 1, true, 0); got != l0MDCR {
			t.Errorf("%v: MDCR_EL2 before any write reads %#x, want the reset value %#x", mode, got, l0MDCR)
		}
		r.el2Reg(14, 0, 3, false, 0x1000)                 // CNTVOFF_EL2
		r.el2Reg(1, 1, 2, false, 1<<31|1<<10|1<<8|0x32ff) // CPTR_EL2: TCPAC, TFP, TZ, RES1 bits (with SVE)
		r.el2Reg(1, 1, 1, false, 1<<9|1<<8|2)             // MDCR_EL2: TDA, TDE, HPMN 2
		r.el2Reg(14, 1, 0, false, 1<<2)                   // CNTHCTL_EL2: EL1PCTEN=EL1PCEN=0
		r.el2Reg(1, 1, 3, false, 0xffff)                  // HSTR_EL2
		// At vEL2: its TFP (FP/SIMD at EL2) and L0's TCPAC (cpacrToVEL2).
		want := keptPE{encCNTVOFF: 0x1040, encCPTR: 1<<31 | 1<<10 | 1<<8, encMDCR: l0MDCR, encCNTHCTL: l0CNTHCTL, encHSTR: 0}
		check := func(where string, want keptPE) {
			t.Helper()
			for k, x := range want {
				if held[k] != x {
					t.Errorf("%v: %s the PE holds %#x at S3_4_C%d_C%d_%d, want %#x", mode, where, held[k], k[0], k[1], k[2], x)
				}
			}
		}
		check("at vEL2", want)
		onPEEnterL2(t, r, mode)
		check("in L2", keptPE{encCNTVOFF: 0x1040, encCPTR: 1<<31 | 1<<10 | 1<<8, encMDCR: l0MDCR | 1<<9 | 1<<8, encCNTHCTL: 0, encHSTR: 0})
		// L2's HVC: back at vEL2.
		r.pe.PC += 4
		e := cpu.Exception{Kind: cpu.HypervisorCall, TargetEL: 2, ESR: sysreg.ESR(0x16<<26 | 1<<25)}
		r.pe.TakeException(&e)
		r.exit()
		check("back at vEL2", want)
	}
}

// TestKeptTrapsForwarded: an L2 trap that the guest hypervisor's kept
// controls ask for reaches its vector for a lower EL with the syndrome the
// PE gave (CNTPCT_EL0 with CNTHCTL_EL2.EL1PCTEN=0, CPACR_EL1 with
// CPTR_EL2.TCPAC, MDSCR_EL1 with MDCR_EL2.TDA, an FP/SIMD instruction
// with CPTR_EL2.TFP: EC 0x07, a BRK with MDCR_EL2.TDE: EC 0x3C); one only
// L0's controls take is performed by L0 on the PE's register and L2
// continues past it.
func TestKeptTrapsForwarded(t *testing.T) {
	sysTrap := func(op0, op1, crn, crm, op2 uint8, read bool) func(pe *cpu.PE) {
		return func(pe *cpu.PE) { pe.SysTrap(2, op0, op1, crn, crm, op2, 3, read) }
	}
	cases := []struct {
		name     string
		l1       keptPE // the guest hypervisor's writes
		l0       keptPE // L0's own controls
		take     func(pe *cpu.PE)
		forward  bool
		wantEC   uint64
		wantRead uint64 // X3 after an access L0 performs
	}{
		{"CNTPCT_EL0 EL1PCTEN=0", keptPE{encCNTHCTL: 2}, nil, sysTrap(3, 3, 14, 0, 1, true), true, 0x18, 0},
		{"CPACR_EL1 TCPAC", keptPE{encCPTR: 1 << 31}, nil, sysTrap(3, 0, 1, 0, 2, false), true, 0x18, 0},
		{"MDSCR_EL1 TDA", keptPE{encMDCR: 1 << 9}, nil, sysTrap(2, 0, 0, 2, 2, true), true, 0x18, 0},
		{"MDSCR_EL1 TDE", keptPE{encMDCR: 1 << 8}, nil, sysTrap(2, 0, 0, 2, 2, true), true, 0x18, 0},
		{"FP TFP", keptPE{encCPTR: 1 << 10}, nil, func(pe *cpu.PE) {
			e := cpu.Exception{Kind: cpu.FPAccess, TargetEL: 2, ESR: sysreg.ESR(0x07<<26 | 1<<25 | 1<<24 | 0xe<<20)}
			pe.TakeException(&e)
		}, true, 0x07, 0},
		{"BRK TDE", keptPE{encMDCR: 1 << 8}, nil, func(pe *cpu.PE) {
			e := cpu.Exception{Kind: cpu.Breakpoint, TargetEL: 2, ESR: sysreg.ESR(0x3c<<26 | 1<<25 | 7)}
			pe.TakeException(&e)
		}, true, 0x3c, 0},
		{"CPACR_EL1 L0's TCPAC only", keptPE{encCPTR: 0}, keptPE{encCPTR: 1 << 31}, sysTrap(3, 0, 1, 0, 2, true), false, 0, 0x300000},
		{"MDSCR_EL1 L0's TDA only", keptPE{encMDCR: 6}, keptPE{encMDCR: 1<<9 | 6}, sysTrap(2, 0, 0, 2, 2, true), false, 0, 0x1000},
	}
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, c := range cases {
			held := keptPE{encCNTVOFF: 0, encCPTR: 0, encMDCR: 6, encCNTHCTL: 3, encHSTR: 0,
				{1, 0, 2}: 0x300000, {0, 2, 2}: 0x1000} // CPACR_EL1, MDSCR_EL1
			for k, x := range c.l0 {
				held[k] = x
			}
			r := newOnPERig(t, mode)
			r.v.SetIDSource(held.source)
			r.v.SetKeptWriter(func(op0, op1, crn, crm, op2 uint8, x uint64) bool {
				held[[3]uint8{crn, crm, op2}] = x
				return true
			})
			for k, x := range c.l1 {
				r.el2Reg(k[0], k[1], k[2], false, x)
			}
			onPEEnterL2(t, r, mode)
			pc := r.pe.PC
			c.take(r.pe)
			esr := r.pe.ESR[2]
			r.exit()
			if c.forward {
				if r.v.InL2() || r.pe.EL != 1 || r.pe.PC != 0x4000_8400 {
					t.Errorf("%v %s: not at the guest hypervisor's vector +0x400 (in L2 %v, EL%d PC %#x)",
						mode, c.name, r.v.InL2(), r.pe.EL, uint64(r.pe.PC))
					continue
				}
				if got := r.pe.ESR[1]; got != esr || uint64(got.EC()) != c.wantEC {
					t.Errorf("%v %s: ESR_EL2 %#x, want %#x (EC %#x)", mode, c.name, uint64(got), uint64(esr), c.wantEC)
				}
				if r.pe.ELR[1] != pc {
					t.Errorf("%v %s: ELR_EL2 %#x, want L2's PC %#x", mode, c.name, uint64(r.pe.ELR[1]), uint64(pc))
				}
				continue
			}
			if !r.v.InL2() || r.pe.PC != pc+4 || r.regs[3] != c.wantRead {
				t.Errorf("%v %s: in L2 %v PC %#x X3 %#x, want L2 past the access (%#x) reading %#x",
					mode, c.name, r.v.InL2(), uint64(r.pe.PC), r.regs[3], uint64(pc+4), c.wantRead)
			}
		}
	}
}

// TestKeptTrapNotL1s: with no kept register writer (a PE that holds none
// outside its model), an L2 trap of such a register that no hypervisor's
// controls explain is L0's error, not forwarded.
func TestKeptTrapNotL1s(t *testing.T) {
	r := newOnPERig(t, nested.ModeNV)
	onPEEnterL2(t, r, nested.ModeNV)
	r.pe.SysTrap(2, 2, 0, 0, 2, 2, 3, true)
	e := r.pe.Last
	if _, err := r.v.PEExit(&e, &r.regs, &r.sp); !errors.Is(err, nested.ErrUnhandled) {
		t.Errorf("PEExit = %v, want ErrUnhandled", err)
	}
}

// TestCPACRAndFPAtVEL2: an E2H=0 guest hypervisor's MSR/MRS CPACR_EL1 at
// vEL2 reach its guest's register, which the PE holds only while L2 runs
// (at vEL2 the PE's CPACR_EL1 enables FP/SIMD: no EL1 control applies to
// code at EL2); its own FP/SIMD instruction with its CPTR_EL2.TFP takes
// the trap at EL2 from EL2 (EC 0x07, its vector for the current EL with
// SP_EL2, +0x200, ELR_EL2 at the instruction).
func TestCPACRAndFPAtVEL2(t *testing.T) {
	encCPACR := [3]uint8{1, 0, 2}
	const cpacrVEL2 = 3<<20 | 3<<16 // FPEN, ZEN: neither FP/SIMD nor SVE trapped by CPACR_EL1 at vEL2
	const l2CPACR, fpISS = 1 << 20, 0x07<<26 | 1<<25 | 1<<24 | 0xe<<20
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		held := keptPE{encCNTVOFF: 0, encCPTR: 0, encMDCR: 6, encCNTHCTL: 3, encHSTR: 0, encCPACR: 0}
		r := newOnPERig(t, mode)
		r.v.SetIDSource(held.source)
		r.v.SetKeptWriter(func(op0, op1, crn, crm, op2 uint8, x uint64) bool {
			held[[3]uint8{crn, crm, op2}] = x
			return true
		})
		if held[encCPACR] != cpacrVEL2 || held[encCPTR]&(1<<31) == 0 {
			t.Fatalf("%v: at vEL2 the PE holds CPACR_EL1 %#x, CPTR_EL2 %#x: want FPEN=3, ZEN=3 and TCPAC", mode, held[encCPACR], held[encCPTR])
		}
		cpacr := func(read bool, x uint64) uint64 { // MSR/MRS X3, CPACR_EL1 at vEL2: TCPAC traps it
			r.regs[3] = x
			r.pe.SysTrap(2, 3, 0, 1, 0, 2, 3, read)
			r.exit()
			return r.regs[3]
		}
		cpacr(false, l2CPACR)
		if got := cpacr(true, 0); got != l2CPACR || held[encCPACR] != cpacrVEL2 {
			t.Errorf("%v: CPACR_EL1 at vEL2 reads %#x (PE %#x), want %#x with the PE's unchanged", mode, got, held[encCPACR], l2CPACR)
		}
		onPEEnterL2(t, r, mode)
		if held[encCPACR] != l2CPACR {
			t.Errorf("%v: in L2 the PE's CPACR_EL1 is %#x, want L2's %#x", mode, held[encCPACR], l2CPACR)
		}
		r.pe.PC += 4
		e := cpu.Exception{Kind: cpu.HypervisorCall, TargetEL: 2, ESR: sysreg.ESR(0x16<<26 | 1<<25)}
		r.pe.TakeException(&e)
		r.exit()
		if held[encCPACR] != cpacrVEL2 || cpacr(true, 0) != l2CPACR {
			t.Errorf("%v: back at vEL2 the PE's CPACR_EL1 is %#x, want FPEN=3, L2's kept", mode, held[encCPACR])
		}
		// Its own FP/SIMD and SVE instructions with its CPTR_EL2.TFP and TZ
		// (AArch64.CheckFPAdvSIMDEnabled, CheckSVEEnabled): EC 0x07 and
		// 0x19 taken at EL2 from EL2.
		for _, c := range []struct {
			name string
			bit  uint64
			kind cpu.ExceptionKind
			esr  sysreg.ESR
		}{{"FP/SIMD with TFP", 1 << 10, cpu.FPAccess, fpISS}, {"SVE with TZ", 1 << 8, cpu.SVEAccess, 0x19<<26 | 1<<25}} {
			r.el2Reg(1, 1, 2, false, c.bit) // CPTR_EL2
			if held[encCPTR]&c.bit == 0 {
				t.Fatalf("%v: %s: the guest hypervisor's CPTR_EL2 %#x not on the PE at vEL2 (%#x)", mode, c.name, c.bit, held[encCPTR])
			}
			const pc = 0x4000_0300
			r.pe.PC = pc
			fe := cpu.Exception{Kind: c.kind, TargetEL: 2, ESR: c.esr}
			r.pe.TakeException(&fe)
			r.exit()
			if r.pe.EL != 1 || r.pe.PC != 0x4000_8200 || r.pe.ESR[1] != c.esr || r.pe.ELR[1] != pc {
				t.Errorf("%v: %s at vEL2: EL%d PC %#x ESR %#x ELR %#x, want its vector +0x200, ESR %#x, ELR %#x",
					mode, c.name, r.pe.EL, uint64(r.pe.PC), uint64(r.pe.ESR[1]), uint64(r.pe.ELR[1]), uint64(c.esr), pc)
			}
		}
	}
}

// TestNV2KeptEL1Switched: with FEAT_NV2 an E2H=0 guest hypervisor's
// MSR/MRS at vEL2 of the EL1 registers the PE keeps outside its model
// that have a VNCR offset (CONTEXTIDR_EL1 0x108, MDSCR_EL1 0x158: the PE
// redirects them with NV1=1) reach L0's page; L0 loads them into the PE for
// its guest and saves what the guest left there back into the page.
func TestNV2KeptEL1Switched(t *testing.T) {
	encCONTEXTIDR, encMDSCR := [3]uint8{13, 0, 1}, [3]uint8{0, 2, 2}
	held := keptPE{encCNTVOFF: 0, encCPTR: 0, encMDCR: 6, encCNTHCTL: 3, encHSTR: 0, encCONTEXTIDR: 0, encMDSCR: 0}
	r := newOnPERig(t, nested.ModeNV2)
	r.v.SetIDSource(held.source)
	r.v.SetKeptWriter(func(op0, op1, crn, crm, op2 uint8, x uint64) bool {
		held[[3]uint8{crn, crm, op2}] = x
		return true
	})
	nv2 := func(off uint16, write bool, x uint64) uint64 { // the PE's redirected access at vEL2
		t.Helper()
		v, e := r.pe.NV2Access(off, write, x)
		if e.Taken() {
			t.Fatalf("FEAT_NV2 access at %#x: %v", off, e)
		}
		return v
	}
	nv2(0x108, true, 0xc1)
	nv2(0x158, true, 0x8000)
	onPEEnterL2(t, r, nested.ModeNV2)
	if held[encCONTEXTIDR] != 0xc1 || held[encMDSCR] != 0x8000 {
		t.Errorf("in L2 the PE holds CONTEXTIDR_EL1 %#x MDSCR_EL1 %#x, want the guest hypervisor's 0xc1 0x8000", held[encCONTEXTIDR], held[encMDSCR])
	}
	held[encCONTEXTIDR] = 0xc2 // L2's own write
	r.pe.PC += 4
	e := cpu.Exception{Kind: cpu.HypervisorCall, TargetEL: 2, ESR: sysreg.ESR(0x16<<26 | 1<<25)}
	r.pe.TakeException(&e)
	r.exit()
	if got := nv2(0x108, false, 0); got != 0xc2 {
		t.Errorf("back at vEL2 CONTEXTIDR_EL1 reads %#x from the page, want L2's 0xc2", got)
	}
}

// TestACTLRFromL2ForwardedWithTACR: the guest hypervisor's HCR_EL2.TACR is
// on the PE while its guest runs, and L2's trapped ACTLR_EL1 access (a
// register the PE keeps outside its model) is the guest hypervisor's
// trap: taken to vEL2 with EC 0x18 and ELR_EL2 at the access (vector +
// 0x400).
func TestACTLRFromL2ForwardedWithTACR(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		r := newOnPERig(t, mode)
		v, pe := r.v, r.pe
		v.SetIDSource(func(op0, op1, crn, crm, op2 uint8) (uint64, bool) { return 0, true })
		r.el2Reg(12, 0, 0, false, 0x4000_8000) // VBAR_EL2
		r.el2Reg(1, 1, 0, false, 1<<31|1<<21)  // HCR_EL2: RW, TACR
		r.el2Reg(4, 0, 0, false, 0x3c5)        // SPSR_EL2: EL1h
		r.el2Reg(4, 0, 1, false, 0x4000_2000)  // ELR_EL2
		e := cpu.Exception{Kind: cpu.ERETTrap, TargetEL: 2, ESR: 0x1a<<26 | 1<<25}
		pe.TakeException(&e)
		r.exit()
		if !v.InL2() || !pe.Regs.HCR_EL2.Has(1<<21) {
			t.Fatalf("%v: in L2 %v, the PE's HCR_EL2 %#x: want L2 running with TACR", mode, v.InL2(), uint64(pe.Regs.HCR_EL2))
		}
		pe.SysTrap(2, 3, 0, 1, 0, 1, 5, true) // MRS X5, ACTLR_EL1
		r.exit()
		if v.InL2() || pe.EL != 1 || pe.PC != 0x4000_8400 || pe.ESR[1].EC() != 0x18 || pe.ELR[1] != 0x4000_2000 {
			t.Errorf("%v: L2's ACTLR_EL1 with L1's TACR: in L2 %v, EL%d PC %#x ESR %#x ELR %#x; want vEL2 at 0x40008400, EC 0x18, ELR 0x40002000",
				mode, v.InL2(), pe.EL, uint64(pe.PC), uint64(pe.ESR[1]), uint64(pe.ELR[1]))
		}
	}
}

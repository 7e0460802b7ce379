package nested_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// The controls of L1's HCR_EL2 over L2's translation that L0 folds into
// the PE's HCR_EL2 while L2 runs (besides the trap controls): DC, PTW, CD,
// ID and TEA.

// enterL2 makes L1 (at vEL2) enter L2 at EL1h, PC 0, with HCR_EL2 hcr,
// VM A's stage 2, and L2's SCTLR_EL1, TCR_EL1, TTBR0_EL1 s, t, ttbr.
func enterL2(t *testing.T, r *rig, hcr sysreg.HCR, s, tcr, ttbr uint64) {
	t.Helper()
	el1 := func(reg cpu.SysReg) cpu.SysReg {
		a, _ := reg.EL12()
		return a
	}
	for _, w := range []struct {
		r cpu.SysReg
		v uint64
	}{{cpu.HCR_EL2, uint64(hcr)}, {cpu.VTTBR_EL2, r.a.VTTBR()}, {cpu.VTCR_EL2, uint64(r.a.Stage2().VTCR())},
		{el1(cpu.SCTLR_EL1), s}, {el1(cpu.TCR_EL1), tcr}, {el1(cpu.TTBR0_EL1), ttbr}, {el1(cpu.MAIR_EL1), 0xff},
		{cpu.ELR_EL2, 0}, {cpu.SPSR_EL2, 0b0101}} {
		if err := r.v.MSR(w.r, w.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.v.ERET(); err != nil || !r.v.InL2() {
		t.Fatalf("ERET to L2: %v", err)
	}
}

// TestFoldedDC: L1's HCR_EL2.DC=1 with VM=0 (AArch64.S2Enabled: stage 2 is
// on; SCTLR_EL1.M is treated as 0, stage 1 off): L2's load at VA = L2 IPA
// goes through L1's stage 2, even though L2's SCTLR_EL1.M is 1 with a
// TTBR0_EL1 that points at no tables. Before, L0 ran L2 with stage 1 on
// (no DC in the PE's HCR_EL2) and a VMID-only shadow (VM=0: L2 IPA = L1
// IPA).
func TestFoldedDC(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRig(t, mode, true, 0)
			if err := r.a.Map(l2RAM, l1VMA, 2<<20); err != nil {
				t.Fatal(err)
			}
			if err := r.v.Store(l1VMA+0x1008, 8, 0xdc); err != nil {
				t.Fatal(err)
			}
			enterL2(t, r, sysreg.HCR_RW|sysreg.HCR_E2H|sysreg.HCR_DC, 1, 25|1<<23|2<<32, 0x7000_0000)
			if got := r.load(t, l2RAM+0x1008); got != 0xdc {
				t.Errorf("L2 reads %#x, want 0xdc (L1's stage 2 with DC)", got)
			}
			sh := r.nvm.Shadows()
			if len(sh) != 1 || !sh[0].GuestVM {
				t.Errorf("shadows %+v: want one of L1's stage 2", sh)
			}
			if err := r.nvm.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// l2TablesAt writes L2's stage-1 tables (39-bit VA from level 1, VA 0x1000
// -> L2 IPA l2RAM+0x3000) at L2 IPA tab, which L1 maps to L1 IPA l1tab.
func l2TablesAt(t *testing.T, r *rig, tab, l1tab uint64) {
	t.Helper()
	for _, w := range []struct{ at, v uint64 }{
		{l1tab, tab + 0x1000 | 3}, {l1tab + 0x1000, tab + 0x2000 | 3},
		{l1tab + 0x2000 + 8, l2RAM + 0x3000 | 3 | 3<<8 | 1<<10},
	} {
		if err := r.v.Store(mem.VA(w.at), 8, w.v); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFoldedPTW: L1's stage 2 maps L2's stage-1 tables as Device memory
// (MemAttr 0b0001). With L1's HCR_EL2.PTW=1 a stage-1 walk to stage-2
// Device memory is a stage-2 Permission fault (AArch64.S2CheckPermissions):
// L1 takes it — ESR_EL2 EC 0x24, IL, S1PTW, DFSC Permission at its leaf's
// level (3), HPFAR_EL2 the table's IPA, FAR_EL2 the VA. With PTW=0 the load
// completes.
func TestFoldedPTW(t *testing.T) {
	const tab = l2RAM + 0x10_0000
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, ptw := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/PTW=%v", mode, ptw), func(t *testing.T) {
				r := newRig(t, mode, true, 0)
				rec := &recorder{v: r.v}
				r.v.SetGuestHypervisor(rec)
				l2TablesAt(t, r, tab, l1VMA+0x10_0000)
				if err := r.v.Store(l1VMA+0x3008, 8, 0x77); err != nil {
					t.Fatal(err)
				}
				for _, m := range []struct{ l2, l1, size uint64 }{{l2RAM, l1VMA, 0x10_0000}, {tab, l1VMA + 0x10_0000, 0x3000}} {
					if err := r.a.Map(nested.NestedIPA(m.l2), mem.IPA(m.l1), m.size); err != nil {
						t.Fatal(err)
					}
				}
				for a := uint64(tab); a < tab+0x3000; a += 0x1000 {
					p := ptes(t, r.a.Stage2(), nested.NestedIPA(a))[3]
					if err := r.v.Store(mem.VA(p[0]), 8, p[1]&^(0xf<<2)|1<<2); err != nil { // MemAttr Device-nGnRE
						t.Fatal(err)
					}
				}
				hcr := sysreg.HCR_RW | sysreg.HCR_E2H | sysreg.HCR_VM
				if ptw {
					hcr |= sysreg.HCR_PTW
				}
				enterL2(t, r, hcr, 1, 25|1<<23|2<<32, tab)
				exit, err := r.v.RunL2(kvm.Access{VA: 0x1008, Size: 8, Rt: 2})
				if err != nil {
					t.Fatal(err)
				}
				if !ptw {
					if exit.Reason != nested.ExitNone || r.v.KVM().Ctx().X[2] != 0x77 || rec.n != 0 {
						t.Fatalf("exit %v, X2 %#x, %d exceptions to L1", exit.Reason, r.v.KVM().Ctx().X[2], rec.n)
					}
					return
				}
				want := uint64(0x24)<<26 | 1<<25 | 1<<7 | 0b001111
				if exit.Reason != nested.ExitVEL2 || rec.n != 1 || rec.esr != want || rec.far != 0x1008 || rec.hpfar != uint64(sysreg.HPFARFor(tab)) {
					t.Errorf("exit %v (%d to L1): ESR_EL2 %#x FAR_EL2 %#x HPFAR_EL2 %#x; want %#x 0x1008 %#x",
						exit.Reason, rec.n, rec.esr, rec.far, rec.hpfar, want, uint64(sysreg.HPFARFor(tab)))
				}
			})
		}
	}
}

// TestFoldedTEA: L2's stage-1 table is at an L2 IPA L1 maps to an L1 IPA
// without memory. The walk takes a synchronous External abort
// (AArch64.S1Walk): to L2's EL1 — or, with L1's HCR_EL2.TEA=1, to L1's
// EL2 (AArch64.DataAbort's route_to_el2): ESR_EL2 EC 0x24, IL, DFSC
// 0b010101 (on the walk, level 1), FAR_EL2 the VA, HPFAR_EL2 UNKNOWN, at
// VBAR_EL2 + 0x400. One level down the same: L2 setting TEA for L3, whose
// walk reads L2's hole, takes it at its virtual EL2 from L1's engine.
func TestFoldedTEA(t *testing.T) {
	const tab = l2RAM + 0x10_0000
	want := uint64(0x24)<<26 | 1<<25 | 0b010101
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, tea := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/TEA=%v", mode, tea), func(t *testing.T) {
				r := newRig(t, mode, true, 0)
				rec := &recorder{v: r.v}
				r.v.SetGuestHypervisor(rec)
				if err := r.a.Map(tab, 0x1000_0000, 0x1000); err != nil { // no memslot there
					t.Fatal(err)
				}
				hcr := sysreg.HCR_RW | sysreg.HCR_E2H | sysreg.HCR_VM
				if tea {
					hcr |= sysreg.HCR_TEA
				}
				enterL2(t, r, hcr, 1, 25|1<<23|2<<32, tab)
				exit, err := r.v.RunL2(kvm.Access{VA: 0x1008, Size: 8, Rt: 2})
				if err != nil {
					t.Fatal(err)
				}
				if !tea {
					x := exit.Exception
					if exit.Reason != nested.ExitL2Exception || uint64(x.ESR) != want|1<<26 || rec.n != 0 {
						t.Fatalf("exit %v ESR %#x, %d to L1; want L2's ESR %#x", exit.Reason, uint64(x.ESR), rec.n, want|1<<26)
					}
					return
				}
				if exit.Reason != nested.ExitVEL2 || rec.n != 1 || rec.esr != want || rec.far != 0x1008 || rec.hpfar != nested.HPFARUnknown || rec.pc != 0x4000_0c00 {
					t.Errorf("exit %v (%d to L1): ESR_EL2 %#x FAR_EL2 %#x HPFAR_EL2 %#x at %#x; want %#x 0x1008 UNKNOWN at 0x40000c00",
						exit.Reason, rec.n, rec.esr, rec.far, rec.hpfar, uint64(rec.pc), want)
				}
			})
		}
	}
	for _, m := range recModes {
		t.Run(recName(m.m01, m.e2h, m.m12), func(t *testing.T) {
			const l3tab = 0x5000_0000
			r := newRecRig(t, m.m01, m.e2h, m.m12, func(r *recRig) {
				if err := r.l3.Map(l3tab, l2Hole, 4096); err != nil {
					t.Fatal(err)
				}
				r.l3.SetTraps(sysreg.HCR_TEA)
				r.l3.SetGuestReg(cpu.SCTLR_EL1, 1)
				r.l3.SetGuestReg(cpu.TCR_EL1, 25|1<<23|2<<32)
				r.l3.SetGuestReg(cpu.TTBR0_EL1, l3tab)
			})
			rec := &recorder{v: r.v}
			r.e.SetGuestHypervisor(rec, r.v.L2())
			exit, err := r.v.RunL2(kvm.Access{VA: 0x1008, Size: 8, Rt: 2})
			if err != nil || exit.Reason != nested.ExitSwitched || rec.n != 1 {
				t.Fatalf("exit %v, %v, %d to L2", exit.Reason, err, rec.n)
			}
			if rec.esr != want || rec.far != 0x1008 || rec.hpfar != nested.HPFARUnknown || rec.pc != l2VBAR+0x400 {
				t.Errorf("L2 reads ESR_EL2 %#x FAR_EL2 %#x HPFAR_EL2 %#x at %#x; want %#x 0x1008 UNKNOWN at %#x",
					rec.esr, rec.far, rec.hpfar, uint64(rec.pc), want, l2VBAR+0x400)
			}
		})
	}
}

// TestTGEReturn: HCR_EL2.TGE is not a control over a guest but the
// guest hypervisor's own host regime, and is not mirrored: with it set,
// an ERET from (virtual) EL2 to EL1 is an illegal exception return
// (IllegalExceptionReturn: EL and SP unchanged, PSTATE.IL set, PC from
// ELR_EL2; CurrentEL still reads EL2), and one to EL0 enters the guest
// hypervisor's own EL0 in its EL2&0 regime (E2H=1), whose data accesses
// go through its own translation — never a guest on a shadow. Before,
// either ERET entered a guest. The same for L2 under L1's engine. An
// E2H=0 guest hypervisor's EL0 with TGE (the EL1&0 regime with both stages
// off) is not modelled: an error.
func TestTGEReturn(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, e2h := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v/E2H=%v", mode, e2h), func(t *testing.T) {
				r := newRig(t, mode, e2h, 0)
				if err := r.v.Store(l1RAM+0x10, 8, 0x7e); err != nil {
					t.Fatal(err)
				}
				hcr := sysreg.HCR_RW | sysreg.HCR_TGE
				if e2h {
					hcr |= sysreg.HCR_E2H
				}
				pe := r.v.PE()
				for _, w := range []struct {
					r cpu.SysReg
					v uint64
				}{{cpu.HCR_EL2, uint64(hcr)}, {cpu.ELR_EL2, 0x1000}, {cpu.SPSR_EL2, 0b0101}} {
					if err := r.v.MSR(w.r, w.v); err != nil {
						t.Fatal(err)
					}
				}
				if err := r.v.ERET(); err != nil {
					t.Fatal(err)
				}
				if r.v.InL2() || pe.EL != 1 || !pe.IL || pe.PC != 0x1000 || len(r.nvm.Shadows()) != 0 {
					t.Fatalf("ERET to EL1 with TGE: in L2 %v, EL%d IL %v PC %#x, %d shadows; want vEL2 with IL at 0x1000",
						r.v.InL2(), pe.EL, pe.IL, uint64(pe.PC), len(r.nvm.Shadows()))
				}
				if el, err := r.v.MRS(cpu.CurrentEL); err != nil || el != 2<<2 {
					t.Errorf("CurrentEL %#x, %v; want EL2", el, err)
				}
				pe.IL = false // its handler of the Illegal Execution state would clear it
				for _, w := range []struct {
					r cpu.SysReg
					v uint64
				}{{cpu.ELR_EL2, 0x2000}, {cpu.SPSR_EL2, 0}} {
					if err := r.v.MSR(w.r, w.v); err != nil {
						t.Fatal(err)
					}
				}
				err := r.v.ERET()
				if !e2h {
					if !errors.Is(err, nested.ErrUnhandled) {
						t.Fatalf("ERET to EL0 with {E2H,TGE}={0,1}: %v, want ErrUnhandled", err)
					}
					return
				}
				if err != nil || r.v.InL2() || pe.EL != 0 || pe.PC != 0x2000 || len(r.nvm.Shadows()) != 0 {
					t.Fatalf("ERET to EL0 with TGE: %v, in L2 %v, EL%d PC %#x", err, r.v.InL2(), pe.EL, uint64(pe.PC))
				}
				if got, err := r.v.Load(l1RAM+0x10, 8); err != nil || got != 0x7e {
					t.Errorf("its EL0 reads %#x, %v; want 0x7e", got, err)
				}
			})
		}
	}
	for _, m := range recModes {
		t.Run(recName(m.m01, m.e2h, m.m12), func(t *testing.T) {
			r := newRecRig(t, m.m01, m.e2h, m.m12, nil)
			r.toL2(t)
			c := r.v.L2()
			pe := r.v.PE()
			for _, w := range []struct {
				r cpu.SysReg
				v uint64
			}{{cpu.HCR_EL2, uint64(sysreg.HCR_RW | sysreg.HCR_E2H | sysreg.HCR_TGE)}, {cpu.ELR_EL2, 0x1000}, {cpu.SPSR_EL2, 0b0101}} {
				if err := c.MSR(w.r, w.v); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.ERET(); err != nil {
				t.Fatal(err)
			}
			if r.e.InGuest() || pe.EL != 1 || !pe.IL || pe.PC != 0x1000 {
				t.Fatalf("L2's ERET to EL1 with TGE: L3 runs %v, EL%d IL %v PC %#x", r.e.InGuest(), pe.EL, pe.IL, uint64(pe.PC))
			}
			pe.IL = false
			for _, w := range []struct {
				r cpu.SysReg
				v uint64
			}{{cpu.ELR_EL2, 0x2000}, {cpu.SPSR_EL2, 0}} {
				if err := c.MSR(w.r, w.v); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.ERET(); err != nil || r.e.InGuest() || pe.EL != 0 || pe.PC != 0x2000 {
				t.Fatalf("L2's ERET to EL0 with TGE: %v, L3 runs %v, EL%d PC %#x", err, r.e.InGuest(), pe.EL, uint64(pe.PC))
			}
		})
	}
}

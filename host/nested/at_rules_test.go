package nested_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// L2's stage 1 in TestATRules: 4K granule, 39-bit VAs (T0SZ=25, start
// level 1), SCTLR_EL1.{M,C,I}, tables in L2 memory at l2S1 (L1 memory at l1VMA + 1 MiB).
const (
	l2S1     = l2RAM + 0x10_0000
	l2Page   = l2RAM + 0x20_0000 // VA 0x1000 maps it (AP=00, AttrIndx 0, inner shareable)
	l2Outer  = 0x9000_0000       // L2 IPA outside VM A's slot: L1's stage 2 does not map it
	l2NoMem  = 0x9100_0000       // L2 IPA L1 maps to l1NoMem, where L1 has no memory
	l1NoMem  = 0x8000_0000
	vaPage   = 0x1000
	vaOuter  = 0x2000      // maps L2 IPA l2Outer (a page)
	vaWalk   = 0x4000_0000 // its level-2 table is at L2 IPA l2Outer
	vaNoMem  = 0x8000_0000 // its level-2 table is at L2 IPA l2NoMem
	tcrL2    = 25 | 1<<8 | 1<<10 | 3<<12 | 1<<23 | 2<<32
	parNS    = 1 << 9  // PAR_EL1.NS: reported 1 (UNKNOWN for Non-secure)
	parRES1  = 1 << 11 // PAR_EL1 bit 11, RES1
	s1Table  = 0b11
	s1PageAF = 0b11 | 1<<10 | 3<<8 // page, AF, inner shareable, AttrIndx 0, AP=00
)

// spar is PAR_EL1 for a success (PA[51:12], ATTR, SH, NS, RES1); fpar for
// a fault (F, FST, PTW, S, RES1): DDI 0487, PAR_EL1.
func sparOf(pa uint64, attr uint8, sh uint64) uint64 {
	return pa&^0xfff | uint64(attr)<<56 | sh<<7 | parNS | parRES1
}

func fparOf(fst uint64, ptw, s bool) uint64 {
	v := 1 | fst<<1 | parRES1
	if ptw {
		v |= 1 << 8
	}
	if s {
		v |= 1 << 9
	}
	return v
}

// buildL2Stage1 writes L2's stage-1 tables with L1's stores (L2 IPA x is
// L1 IPA l1VMA + x - l2RAM) and maps VM A's slot, and l2NoMem to l1NoMem,
// in L1's stage 2.
func buildL2Stage1(t testing.TB, r *rig) {
	t.Helper()
	l1 := func(ipa uint64) mem.VA { return mem.VA(l1VMA + ipa - l2RAM) }
	words := []struct{ at, v uint64 }{
		{l2S1 + 0*8, l2S1 + 0x1000 | s1Table},     // level 1, VA [0, 1G)
		{l2S1 + 1*8, l2Outer | s1Table},           // level 1, VA [1G, 2G): its table is outside L1's stage 2
		{l2S1 + 2*8, l2NoMem | s1Table},           // level 1, VA [2G, 3G): its table is where L1 has no memory
		{l2S1 + 0x1000, l2S1 + 0x2000 | s1Table},  // level 2
		{l2S1 + 0x2000 + 1*8, l2Page | s1PageAF},  // level 3: VA 0x1000
		{l2S1 + 0x2000 + 2*8, l2Outer | s1PageAF}, // level 3: VA 0x2000
	}
	for _, w := range words {
		if err := r.v.Store(l1(w.at), 8, w.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.a.Map(l2RAM, l1VMA, l2Size); err != nil {
		t.Fatal(err)
	}
	if err := r.a.Map(l2NoMem, l1NoMem, 2<<20); err != nil {
		t.Fatal(err)
	}
	for reg, v := range map[cpu.SysReg]uint64{cpu.SCTLR_EL1: 1 | 1<<2 | 1<<12, cpu.TCR_EL1: tcrL2, cpu.TTBR0_EL1: l2S1, cpu.MAIR_EL1: 0xff} {
		r.a.SetGuestReg(reg, v)
	}
}

// TestATRules: the PAR_EL1 the guest hypervisor reads after its AT
// instructions, and the exceptions they and L2's ATs take, derived from
// the rules for the state buildL2Stage1 sets up (L1's stage 2 maps VM A's
// 16 MiB at L1 IPA l1VMA with 2 MiB blocks of Normal Write-Back, inner
// shareable memory), with the software walk and with the fast path forced.
func TestATRules(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, e2h := range []bool{true, false} {
			for _, path := range []nested.ATPath{nested.ATSoftware, nested.ATHardware, nested.ATAuto} {
				t.Run(fmt.Sprintf("%v/E2H=%v/%v", mode, e2h, path), func(t *testing.T) {
					testATRules(t, mode, e2h, path)
				})
			}
		}
	}
}

func testATRules(t *testing.T, mode nested.Mode, e2h bool, path nested.ATPath) {
	r := newRig(t, mode, e2h, 0)
	v := r.v
	buildL2Stage1(t, r)
	// L2 reads VA 0x1000: its walk fills the shadow the fast path uses.
	r.run(t, r.a)
	r.load(t, vaPage)
	r.toL1(t)
	v.SetATPath(path)
	inner := uint64(sysreg.SHInner)
	cases := []struct {
		op   at.Op
		va   uint64
		want uint64
		why  string
		fast bool // the fast path answers it (ATHardware)
	}{
		{at.S1E1R, vaPage, sparOf(l2Page, 0xff, inner), "L2's stage 1 only: the L2 IPA, MAIR_EL1.Attr0, SH", true},
		{at.S1E1W, vaPage, sparOf(l2Page, 0xff, inner), "AP=00: writable at EL1", true},
		{at.S1E0R, vaPage, fparOf(0b001111, false, false), "AP=00: no EL0 access, stage-1 Permission fault level 3", true},
		{at.S12E1R, vaPage, sparOf(l1VMA+0x20_0000, 0xff, inner), "both stages: L1's block, WB combined with WB, inner", true},
		{at.S12E0W, vaPage, fparOf(0b001111, false, false), "stage 1 faults first", true},
		{at.S12E1R, vaOuter, fparOf(0b000110, false, true), "L1's stage 2 has no level-2 entry: stage-2 Translation fault level 2, S=1", true},
		{at.S1E1R, vaOuter, sparOf(l2Outer, 0xff, inner), "stage 1 alone does not look at the output's stage 2", true},
		{at.S1E1R, vaWalk, fparOf(0b000110, true, true), "the level-2 table's IPA is not in L1's stage 2: S=1, PTW=1, level 2", false},
		{at.S1E2R, 0x4000_1234, sparOf(0x4000_1000, 0x00, 0b10), "L1's own regime, MMU off: flat, Device-nGnRnE, Outer Shareable", true},
		{at.S1E2W, 0x4000_1234, sparOf(0x4000_1000, 0x00, 0b10), "", true},
	}
	for _, c := range cases {
		before := v.Stats()
		if _, err := v.AT(c.op, mem.VA(c.va)); err != nil {
			t.Fatalf("AT %v %#x: %v", c.op, c.va, err)
		}
		traps := v.Stats().SysRegTraps
		got, err := v.MRS(cpu.PAR_EL1)
		if err != nil {
			t.Fatal(err)
		}
		if v.Stats().SysRegTraps != traps {
			t.Errorf("MRS PAR_EL1 trapped: it has no VNCR offset and no trap with NV or NV2")
		}
		if got != c.want {
			t.Errorf("AT %v %#x: PAR_EL1 %#x, want %#x (%s)", c.op, c.va, got, c.want, c.why)
		}
		s := v.Stats()
		fast := s.ATFast > before.ATFast
		if s.ATTraps != before.ATTraps+1 {
			t.Errorf("AT %v: %d traps to L0, want 1", c.op, s.ATTraps-before.ATTraps)
		}
		if path == nested.ATHardware && fast != c.fast || path == nested.ATSoftware && fast {
			t.Errorf("AT %v %#x: fast path %v on the %v path", c.op, c.va, fast, path)
		}
	}

	// An AT whose stage-1 table is in L1's stage 2 at an L1 IPA without
	// memory: a synchronous External abort on the walk (level 2), which an
	// AT takes: a Data Abort to (v)EL2 from the same EL: EC 0x25, IL, CM,
	// WnR, FSC 0b010110; FAR_EL2 the VA. PAR_EL1 is unchanged.
	const esrSEA = 0x25<<26 | 1<<25 | 1<<8 | 1<<6 | 0b010110
	_, err := v.AT(at.S1E1R, vaNoMem)
	var ge *nested.GuestException
	if !errors.As(err, &ge) || uint64(ge.Exception.ESR) != esrSEA || ge.Exception.FAR != vaNoMem {
		t.Fatalf("AT S1E1R %#x: %v, want ESR %#x FAR %#x", uint64(vaNoMem), err, uint64(esrSEA), uint64(vaNoMem))
	}
	if off := v.PE().PC - mem.VA(v.PE().VBAR[1]); off != 0x200 {
		t.Errorf("the abort entered L1's vector at +%#x, want +0x200 (same EL, SP_EL2)", uint64(off))
	}
	for reg, want := range map[cpu.SysReg]uint64{cpu.ESR_EL2: esrSEA, cpu.FAR_EL2: vaNoMem,
		cpu.PAR_EL1: sparOf(0x4000_1000, 0x00, 0b10)} {
		if got, _ := v.MRS(reg); got != want {
			t.Errorf("after the abort L1 reads %v %#x, want %#x", reg, got, want)
		}
	}

	// With {E2H,TGE}={1,1} the EL1 forms name L1's own EL2&0 regime (MMU
	// off: flat) and AT S12* is stage 1 only.
	if e2h {
		if err := v.MSR(cpu.HCR_EL2, uint64(sysreg.HCR_RW|sysreg.HCR_E2H|sysreg.HCR_TGE|sysreg.HCR_VM)); err != nil {
			t.Fatal(err)
		}
		for _, op := range []at.Op{at.S1E1R, at.S1E0W, at.S12E1R} {
			if _, err := v.AT(op, 0x4000_1234); err != nil {
				t.Fatal(err)
			}
			if got, _ := v.MRS(cpu.PAR_EL1); got != sparOf(0x4000_1000, 0x00, 0b10) {
				t.Errorf("TGE=1 AT %v: PAR_EL1 %#x, want L1's flat EL2&0 regime", op, got)
			}
		}
		if err := v.MSR(cpu.HCR_EL2, uint64(sysreg.HCR_RW|sysreg.HCR_E2H|sysreg.HCR_VM)); err != nil {
			t.Fatal(err)
		}
	}

	// AT S1E1A needs FEAT_ATS1A, which the host lacks: UNDEFINED at vEL2.
	_, err = v.AT(at.S1E1A, vaPage)
	if !errors.As(err, &ge) || ge.Exception.Kind != cpu.Undefined {
		t.Errorf("AT S1E1A: %v, want UNDEFINED", err)
	}

	// L2's own ATs at EL1, through the shadow: PAR_EL1 (one register: L1
	// reads it back after L2 leaves), a fault of L1's stage 2 on the walk
	// given to L1 as the Data Abort of an AT (EC 0x24, IL, CM, S1PTW, WnR,
	// the guest's FSC; HPFAR_EL2 the table's IPA), and the External abort
	// on the walk taken by L2 itself (EC 0x25 from EL1 to EL1).
	v.SetGuestHypervisor(nil)
	r.run(t, r.a)
	exit, err := v.RunL2AT(at.S12E1R, 3, vaPage)
	if err != nil || exit.Reason != nested.ExitL2Exception || exit.Exception.Kind != cpu.Undefined || exit.Exception.ESR != 1<<25 {
		t.Fatalf("L2 AT S12E1R: %v %v %v, want UNDEFINED at EL1", exit.Reason, exit.Exception, err)
	}
	if e := v.PE().ERET(); e.Taken() {
		t.Fatal(e)
	}
	if exit, err := v.RunL2AT(at.S1E1R, 3, vaPage); err != nil || exit.Reason != nested.ExitNone {
		t.Fatalf("L2 AT S1E1R: %v %v", exit.Reason, err)
	}
	if got, want := uint64(v.PE().PAR), sparOf(l2Page, 0xff, inner); got != want {
		t.Errorf("L2 AT S1E1R: PAR_EL1 %#x, want %#x", got, want)
	}
	exit, err = v.RunL2AT(at.S1E1R, 3, vaNoMem)
	if err != nil || exit.Reason != nested.ExitL2Exception || uint64(exit.Exception.ESR) != esrSEA || exit.Exception.FAR != vaNoMem {
		t.Fatalf("L2 AT S1E1R %#x: %v %v %v, want a Data Abort to EL1 ESR %#x", uint64(vaNoMem), exit.Reason, exit.Exception, err, uint64(esrSEA))
	}
	if e := v.PE().ERET(); e.Taken() {
		t.Fatal(e)
	}
	exit, err = v.RunL2AT(at.S1E1R, 3, vaWalk)
	const esrS2 = 0x24<<26 | 1<<25 | 1<<8 | 1<<7 | 1<<6 | 0b000110
	if err != nil || exit.Reason != nested.ExitVEL2 {
		t.Fatalf("L2 AT S1E1R %#x: %v %v, want the fault at vEL2", uint64(vaWalk), exit.Reason, err)
	}
	for reg, want := range map[cpu.SysReg]uint64{cpu.ESR_EL2: esrS2, cpu.FAR_EL2: vaWalk,
		cpu.HPFAR_EL2: uint64(sysreg.HPFARFor(l2Outer)), cpu.PAR_EL1: sparOf(l2Page, 0xff, inner)} {
		if got, _ := v.MRS(reg); got != want {
			t.Errorf("after L2's AT %#x L1 reads %v %#x, want %#x", uint64(vaWalk), reg, got, want)
		}
	}
}

// BenchmarkATFromVEL2: one AT S1E1R of L2's regime from vEL2 (the trap,
// the emulation, the return) answered by the fast path (the real AT
// through the shadow) and by the software walk (L2's stage 1 and L1's
// stage 2 over L1 memory), on TestATRules's state; and AT S12E1R, whose
// stage 2 is a software walk on both paths.
func BenchmarkATFromVEL2(b *testing.B) {
	for _, op := range []at.Op{at.S1E1R, at.S12E1R} {
		for _, path := range []nested.ATPath{nested.ATHardware, nested.ATSoftware} {
			b.Run(fmt.Sprintf("%v/%v", op, path), func(b *testing.B) {
				r := newRig(b, nested.ModeNV2, true, 0)
				buildL2Stage1(b, r)
				r.run(b, r.a)
				r.load(b, vaPage)
				r.toL1(b)
				r.v.SetATPath(path)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := r.v.AT(op, vaPage); err != nil {
						b.Fatal(err)
					}
				}
				s := r.v.Stats()
				if path == nested.ATHardware && s.ATFast == 0 {
					b.Fatal("the fast path did not answer")
				}
			})
		}
	}
}

package at_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

func TestPARComposition(t *testing.T) {
	cases := []parCase{
		// The contract's own example values (docs/AT-JSON.md).
		{"WB inner shareable", s1, at.S1E1R, stdVA, 0xff00_0000_4000_1b80, 0, 0, false},
		// PA[51:12] only: VA[11:0] does not appear.
		{"page offset dropped", s1, at.S1E1R, 0x1fff, spar(0x4000_1000, 0xff, 3), 0, 0, false},
		// SH from the descriptor for Normal cacheable memory.
		{"WB non-shareable", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|shNS)), at.S1E1R, stdVA, spar(0x4000_1000, 0xff, 0), 0, 0, false},
		{"WB outer shareable", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|shOS)), at.S1E1R, stdVA, spar(0x4000_1000, 0xff, 2), 0, 0, false},
		{"WT inner shareable", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|shIS|attr(4))), at.S1E1R, stdVA, spar(0x4000_1000, 0xbb, 3), 0, 0, false},
		// PAREncodeShareability: Device and Normal Non-cacheable report 0b10.
		{"Device-nGnRnE non-shareable descriptor", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|shNS|attr(1))), at.S1E1R, stdVA, spar(0x4000_1000, 0x00, 2), 0, 0, false},
		{"Device-nGnRE", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|shIS|attr(3))), at.S1E1R, stdVA, spar(0x4000_1000, 0x04, 2), 0, 0, false},
		{"Device-nGRE", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|shIS|attr(7))), at.S1E1R, stdVA, spar(0x4000_1000, 0x08, 2), 0, 0, false},
		{"Device-GRE", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|shIS|attr(5))), at.S1E1R, stdVA, spar(0x4000_1000, 0x0c, 2), 0, 0, false},
		{"Normal NC inner shareable descriptor", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|shIS|attr(2))), at.S1E1R, stdVA, spar(0x4000_1000, 0x44, 2), 0, 0, false},
		// Outer WB, inner NC is not "Non-cacheable" for PAREncodeShareability.
		{"outer WB inner NC keeps SH", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|shIS|attr(6))), at.S1E1R, stdVA, spar(0x4000_1000, 0xf4, 3), 0, 0, false},
		// SCTLR_EL1.C=0: stage-1 Normal data accesses are Non-cacheable
		// (AArch64.S1Translate). PAR_EL1.ATTR may report either the resulting
		// or the descriptor's attributes; this model reports the result,
		// QEMU 10.0 the MAIR value (0xff).
		{"SCTLR.C=0 makes Normal NC", chain(s1, func(e *env) { e.r.SCTLR_EL1 &^= sctlrC }), at.S1E1R, stdVA, spar(0x4000_1000, 0x44, 2), 0, 0, false},
		{"SCTLR.C=0 leaves Device", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|attr(3)), func(e *env) { e.r.SCTLR_EL1 &^= sctlrC }), at.S1E1R, stdVA, spar(0x4000_1000, 0x04, 2), 0, 0, false},
		// AArch64.S1DisabledOutput: Device-nGnRnE, so ATTR 0x00, SH 0b10, PA = VA.
		{"MMU off", func(e *env) {}, at.S1E1R, 0x4567_89ab, spar(0x4567_8000, 0x00, 2), 0, 0, false},
		{"MMU off S1E0W", func(e *env) {}, at.S1E0W, 0x4567_89ab, spar(0x4567_8000, 0x00, 2), 0, 0, false},
		// HCR_EL2.DC=1: Normal WB RWA Non-shareable: ATTR 0xff, SH 0b00.
		{"MMU off, HCR_EL2.DC=1", func(e *env) { e.r.HCR_EL2 |= sysreg.HCR_DC }, at.S1E1R, 0x4567_89ab, spar(0x4567_8000, 0xff, 0), 0, 0, false},
		// DC=1 disables stage 1 even when SCTLR_EL1.M=1.
		{"HCR_EL2.DC=1 overrides SCTLR.M", chain(s1, func(e *env) { e.r.HCR_EL2 |= sysreg.HCR_DC }), at.S1E1R, 0x4567_89ab, spar(0x4567_8000, 0xff, 0), 0, 0, false},
		// 52-bit PA with 64K and FEAT_LPA: OA[51:48] in descriptor bits [15:12].
		{"52-bit PA (64K, LPA)", lpa64k, at.S1E1R, 0x1_abcd, spar(0xf_1234_5678_0000|0xa000, 0xff, 3), 0, 0, false},
		// 52-bit PA with 4K and DS=1: OA[51:50] in bits [9:8], OA[49:48] in [49:48].
		{"52-bit PA (4K, DS=1)", chain(ds4k, word(l3+8, 0x3_0000_1234_5000|2<<8|dTable|dAF)), at.S1E1R, stdVA, spar(0xb_0000_1234_5000, 0xff, 3), 0, 0, false},
		// PAR.SH with DS=1 is TCR_EL1.SH0 (here OS).
		{"DS=1 shareability from TCR.SH0", chain(ds4k, tcr(func(v uint64) uint64 { return v&^(3<<12) | 2<<12 })), at.S1E1R, stdVA, spar(0x4000_1000, 0xff, 2), 0, 0, false},
	}
	runPAR(t, cases)
}

// lpa64k: 64K granule, T0SZ=16 (start level 1: 3-(47-16)/13), IPS=52;
// L1[0] -> L2[0] -> L3[1] page at OA 0xf_1234_5678_0000.
func lpa64k(e *env) {
	e.r.SCTLR_EL1 = sctlrM | sctlrC
	e.r.TCR_EL1 = sysreg.TCR(16 | 1<<14 | 6<<32)
	e.r.TTBR0_EL1 = 0x4400_0000
	e.r.MAIR_EL1 = stdMAIR
	e.set(0x4400_0000, 0x4401_0000|dTable)
	e.set(0x4401_0000, 0x4402_0000|dTable)
	oa := uint64(0xf_1234_5678_0000)
	e.set(0x4402_0000+8, oa&0xffff_ffff_0000|(oa>>48)<<12|dTable|dAF|shIS)
}

// attrCase: stage-1 AttrIndx/SH, stage-2 MemAttr/SH, expected ATTR/SH.
type attrCase struct {
	name  string
	s1idx uint64
	s1sh  uint64
	s2ma  uint64
	s2sh  uint64
	fwb   bool
	cd    bool
	mair  uint64 // overrides stdMAIR when nonzero
	attr  uint8
	sh    uint64
}

// TestStage1Stage2Combining runs AT S12E1R with stage 1 mapping VA 0x1000
// to IPA 0x4000_1000 and stage 2 mapping that IPA with a 2MB block.
func TestStage1Stage2Combining(t *testing.T) {
	cases := []attrCase{
		// S2CombineS1MemAttrs (HCR_EL2.FWB=0).
		{name: "WB+WB", s1idx: 0, s1sh: 3, s2ma: 0b1111, s2sh: 3, attr: 0xff, sh: 3},
		// Cacheability: the weaker of the two (NC < WT < WB), hints from stage 1.
		{name: "WB+NC", s1idx: 0, s1sh: 3, s2ma: 0b0101, s2sh: 3, attr: 0x44, sh: 2},
		{name: "WB+WT", s1idx: 0, s1sh: 3, s2ma: 0b1010, s2sh: 3, attr: 0xbb, sh: 3},
		{name: "WT+WB", s1idx: 4, s1sh: 3, s2ma: 0b1111, s2sh: 3, attr: 0xbb, sh: 3},
		{name: "NC+WB", s1idx: 2, s1sh: 3, s2ma: 0b1111, s2sh: 3, attr: 0x44, sh: 2},
		// Outer and inner combine separately: outer min(WB,WT)=WT with the
		// stage-1 outer hints (RW), inner min(NC,WB)=NC.
		{name: "oWB/iNC + oWT/iWB", s1idx: 6, s1sh: 3, s2ma: 0b1011, s2sh: 3, attr: 0xb4, sh: 3},
		// Stage-2 hints do not exist: stage-1 transient write-allocate WB
		// (0x55) stays as it is under stage-2 WB.
		{name: "WB transient + WB", s1idx: 0, s1sh: 3, s2ma: 0b1111, s2sh: 3, mair: 0x55, attr: 0x55, sh: 3},
		// Device wins over Normal; Device types combine to the more restrictive.
		{name: "nGnRE+WB", s1idx: 3, s1sh: 2, s2ma: 0b1111, s2sh: 3, attr: 0x04, sh: 2},
		{name: "nGnRE+GRE", s1idx: 3, s1sh: 2, s2ma: 0b0011, s2sh: 3, attr: 0x04, sh: 2},
		{name: "GRE+nGRE", s1idx: 5, s1sh: 2, s2ma: 0b0010, s2sh: 3, attr: 0x08, sh: 2},
		{name: "nGnRnE+GRE", s1idx: 1, s1sh: 2, s2ma: 0b0011, s2sh: 3, attr: 0x00, sh: 2},
		{name: "NC+nGnRE", s1idx: 2, s1sh: 2, s2ma: 0b0001, s2sh: 3, attr: 0x04, sh: 2},
		// Shareability: S2CombineS1Shareability takes the more shareable.
		{name: "WB NSH + WB ISH", s1idx: 0, s1sh: 0, s2ma: 0b1111, s2sh: 3, attr: 0xff, sh: 3},
		{name: "WB ISH + WB OSH", s1idx: 0, s1sh: 3, s2ma: 0b1111, s2sh: 2, attr: 0xff, sh: 2},
		{name: "WB OSH + WB NSH", s1idx: 0, s1sh: 2, s2ma: 0b1111, s2sh: 0, attr: 0xff, sh: 2},
		{name: "WB NSH + WB NSH", s1idx: 0, s1sh: 0, s2ma: 0b1111, s2sh: 0, attr: 0xff, sh: 0},
		// HCR_EL2.CD=1: stage-2 Normal is treated as Non-cacheable.
		{name: "CD: WB+WB", s1idx: 0, s1sh: 3, s2ma: 0b1111, s2sh: 3, cd: true, attr: 0x44, sh: 2},
		{name: "CD: nGnRE+WB", s1idx: 3, s1sh: 2, s2ma: 0b1111, s2sh: 3, cd: true, attr: 0x04, sh: 2},

		// AArch64.S2ApplyFWBMemAttrs (HCR_EL2.FWB=1), by MemAttr[2:0].
		// 0b0dd: Device dd whatever stage 1 says; with stage-1 Device the
		// more restrictive.
		{name: "FWB 000 + NC", s1idx: 2, s1sh: 3, s2ma: 0b000, s2sh: 3, fwb: true, attr: 0x00, sh: 2},
		{name: "FWB 001 + NC", s1idx: 2, s1sh: 3, s2ma: 0b001, s2sh: 3, fwb: true, attr: 0x04, sh: 2},
		{name: "FWB 010 + NC", s1idx: 2, s1sh: 3, s2ma: 0b010, s2sh: 3, fwb: true, attr: 0x08, sh: 2},
		{name: "FWB 011 + NC", s1idx: 2, s1sh: 3, s2ma: 0b011, s2sh: 3, fwb: true, attr: 0x0c, sh: 2},
		{name: "FWB 011 + nGnRE", s1idx: 3, s1sh: 2, s2ma: 0b011, s2sh: 3, fwb: true, attr: 0x04, sh: 2},
		// 0b100, 0b101: Normal NC unless stage 1 is Device.
		{name: "FWB 100 + WB", s1idx: 0, s1sh: 3, s2ma: 0b100, s2sh: 3, fwb: true, attr: 0x44, sh: 2},
		{name: "FWB 101 + WB", s1idx: 0, s1sh: 3, s2ma: 0b101, s2sh: 3, fwb: true, attr: 0x44, sh: 2},
		{name: "FWB 100 + nGRE", s1idx: 7, s1sh: 2, s2ma: 0b100, s2sh: 3, fwb: true, attr: 0x08, sh: 2},
		// 0b110: forced Write-Back; hints from a cacheable stage 1, else RWA.
		{name: "FWB 110 + WT", s1idx: 4, s1sh: 3, s2ma: 0b110, s2sh: 3, fwb: true, attr: 0xff, sh: 3},
		{name: "FWB 110 + WB transient", s1idx: 0, s1sh: 3, s2ma: 0b110, s2sh: 3, fwb: true, mair: 0x55, attr: 0x55, sh: 3},
		// Stage-1 NC has effective shareability OSH (AArch64.S1Translate applies
		// EffectiveShareability; the descriptor value is the other permitted
		// IMPLEMENTATION DEFINED choice, QEMU 10.0's: it reports ISH here), and
		// OSH wins the combination.
		{name: "FWB 110 + NC", s1idx: 2, s1sh: 3, s2ma: 0b110, s2sh: 3, fwb: true, attr: 0xff, sh: 2},
		// Stage-1 Device has effective shareability OSH (also its descriptor SH here).
		{name: "FWB 110 + nGnRE", s1idx: 3, s1sh: 2, s2ma: 0b110, s2sh: 0, fwb: true, attr: 0xff, sh: 2},
		// 0b111: stage-1 attributes.
		{name: "FWB 111 + WT", s1idx: 4, s1sh: 3, s2ma: 0b111, s2sh: 3, fwb: true, attr: 0xbb, sh: 3},
		{name: "FWB 111 + nGnRE", s1idx: 3, s1sh: 2, s2ma: 0b111, s2sh: 3, fwb: true, attr: 0x04, sh: 2},
		{name: "FWB 111 + WB NSH, S2 OSH", s1idx: 0, s1sh: 0, s2ma: 0b111, s2sh: 2, fwb: true, attr: 0xff, sh: 2},
		// HCR_EL2.CD with FWB: a Normal result becomes Non-cacheable.
		{name: "FWB 111 + WB, CD", s1idx: 0, s1sh: 3, s2ma: 0b111, s2sh: 3, fwb: true, cd: true, attr: 0x44, sh: 2},
		{name: "FWB 110 + WB, CD", s1idx: 0, s1sh: 3, s2ma: 0b110, s2sh: 3, fwb: true, cd: true, attr: 0x44, sh: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.s1std()
			e.s2std()
			if c.mair != 0 {
				e.r.MAIR_EL1 = sysreg.MAIR(c.mair)
			}
			e.set(l3+8, 0x4000_1000|dTable|dAF|c.s1sh<<8|attr(c.s1idx))
			e.set(s2l2, 0x4000_0000|dBlock|dAF|s2ap(3)|c.s2sh<<8|s2attr(c.s2ma))
			if c.fwb {
				e.r.HCR_EL2 |= sysreg.HCR_FWB
			}
			if c.cd {
				e.r.HCR_EL2 |= sysreg.HCR_CD
			}
			res := e.exec(at.S12E1R, stdVA)
			if want := spar(0x4000_1000, c.attr, c.sh); uint64(res.PAR) != want {
				t.Errorf("PAR = %#x (ATTR %#x SH %02b), want %#x (ATTR %#x SH %02b)",
					uint64(res.PAR), res.PAR.ATTR(), res.PAR.SH(), want, c.attr, c.sh)
			}
		})
	}
	// Without FEAT_FWB (ID_AA64MMFR2_EL1.FWB=0) HCR_EL2.FWB is RES0.
	t.Run("FWB without FEAT_FWB", func(t *testing.T) {
		e := newEnv(t)
		e.s1std()
		e.s2std()
		e.r.MMFR2 = sysreg.MMFR2(uint64(e.r.MMFR2) &^ (0xf << 40))
		e.r.HCR_EL2 |= sysreg.HCR_FWB
		// MemAttr 0b0110 read without FWB: outer NC, inner WT -> 0x4b... the
		// stage-1 WB combines to outer NC, inner WT (stage-1 hints RW).
		e.set(s2l2, 0x4000_0000|dBlock|dAF|s2ap(3)|shIS|s2attr(0b0110))
		res := e.exec(at.S12E1R, stdVA)
		if want := spar(0x4000_1000, 0x4b, 3); uint64(res.PAR) != want {
			t.Errorf("PAR = %#x, want %#x", uint64(res.PAR), want)
		}
	})
}

func TestRegimeSelection(t *testing.T) {
	// EL1 registers that would fault, so a success shows the EL2 set was used.
	brokenEL1 := func(e *env) {
		e.r.SCTLR_EL1 = sctlrM
		e.r.TCR_EL1 = sysreg.TCR(16 | 1<<7 | 1<<23) // EPD0, EPD1
	}
	el20 := func(e *env) {
		e.s1std()
		e.r.HCR_EL2 |= sysreg.HCR_E2H
		e.r.SCTLR_EL2 = sctlrM | sctlrC | sctlrI
		// EL1 layout: T0SZ=16, T1SZ=16, TG1=4K (0b10), IPS=48.
		e.r.TCR_EL2 = 16 | 16<<16 | 2<<30 | 5<<32
		e.r.TTBR0_EL2 = l0
		e.r.TTBR1_EL2 = l0
		e.r.MAIR_EL2 = stdMAIR
		e.set(l0+511*8, l1|dTable)
		e.set(l1+511*8, l2|dTable)
		e.set(l2+511*8, l3|dTable)
		e.set(l3+511*8, 0x4000_7000|dTable|dAF|shIS)
		brokenEL1(e)
	}
	cases := []parCase{
		{"EL2 (E2H=0) S1E2R", chain(el2Regime, brokenEL1), at.S1E2R, stdVA, spar(0x4000_1000, 0xff, 3), 0, 0, false},
		// E2H=0: TCR_EL2 bits [34:32] are not IPS; PS is [18:16]. PS=0 (32
		// bits) and a table above 4GB is an address size fault.
		{"EL2 (E2H=0) PS in TCR_EL2[18:16]", chain(el2Regime, brokenEL1, func(e *env) { e.r.TCR_EL2 = 16 | 5<<32 }, word(l2, 0x1_0000_0000|dTable)),
			at.S1E2R, stdVA, fpar(fstAddr(2), false, false), vmsa.FaultAddressSize, 2, false},
		{"EL2&0 (E2H=1) S1E2R lower range", el20, at.S1E2R, stdVA, spar(0x4000_1000, 0xff, 3), 0, 0, false},
		{"EL2&0 (E2H=1) S1E2R upper range via TTBR1_EL2", el20, at.S1E2R, 0xffff_ffff_ffff_f234, spar(0x4000_7000, 0xff, 3), 0, 0, false},
		// {E2H,TGE}={1,1}: AT S1E1R at EL2 translates in the EL2&0 regime.
		{"S1E1R at EL2 with E2H=TGE=1", chain(el20, func(e *env) { e.r.HCR_EL2 |= sysreg.HCR_TGE }), at.S1E1R, 0xffff_ffff_ffff_f234, spar(0x4000_7000, 0xff, 3), 0, 0, false},
		// ... with TGE=0 it is the EL1&0 regime (here broken: EPD1).
		{"S1E1R at EL2 with E2H=1, TGE=0", el20, at.S1E1R, 0xffff_ffff_ffff_f234, fpar(fstTrans(0), false, false), vmsa.FaultTranslation, 0, false},
		// EL2&0 has two privilege levels: AP=01 page is EL0-accessible, so
		// AT S1E0R (EL0 of the EL2&0 regime) succeeds, and AP=00 denies it.
		{"EL2&0 S1E0R on AP=01", chain(el20, word(l3+8, 0x4000_1000|dTable|dAF|shIS|ap(1)), func(e *env) { e.r.HCR_EL2 |= sysreg.HCR_TGE }), at.S1E0R, stdVA, spar(0x4000_1000, 0xff, 3), 0, 0, false},
		{"EL2&0 S1E0R on AP=00", chain(el20, func(e *env) { e.r.HCR_EL2 |= sysreg.HCR_TGE }), at.S1E0R, stdVA, fpar(fstPerm(3), false, false), vmsa.FaultPermission, 3, false},
		// EL2&0 with PAN: PSTATE.PAN and AT S1E1RP apply to the EL2&0 regime.
		{"EL2&0 S1E1RP PAN=1 on AP=01", chain(el20, word(l3+8, 0x4000_1000|dTable|dAF|shIS|ap(1)), func(e *env) { e.r.HCR_EL2 |= sysreg.HCR_TGE; e.ps.PAN = true }),
			at.S1E1RP, stdVA, fpar(fstPerm(3), false, false), vmsa.FaultPermission, 3, false},
		// S12E1R with {E2H,TGE}={1,1} is a stage-1 EL2&0 translation.
		{"S12E1R at EL2 with E2H=TGE=1", chain(el20, func(e *env) { e.r.HCR_EL2 |= sysreg.HCR_TGE | sysreg.HCR_VM }), at.S12E1R, stdVA, spar(0x4000_1000, 0xff, 3), 0, 0, false},
		// S12E1R with VM=0 is stage 1 only.
		{"S12E1R with VM=0", s1, at.S12E1R, stdVA, spar(0x4000_1000, 0xff, 3), 0, 0, false},
	}
	runPAR(t, cases)
}

// TestExecutionRules: the AT instruction's own UNDEFINED and trap rules.
func TestExecutionRules(t *testing.T) {
	type want struct {
		kind at.ExceptionKind
		el   uint8
		ec   uint8
	}
	undef1 := want{at.Undefined, 1, 0x00}
	undef2 := want{at.Undefined, 2, 0x00}
	trap := want{at.TrapEL2, 2, 0x18}
	cases := []struct {
		name  string
		hcr   sysreg.HCR
		mmfr1 func(v uint64) uint64
		el    uint8
		op    at.Op
		want  *want
	}{
		{"S1E2R at EL1", 0, nil, 1, at.S1E2R, &undef1},
		{"S1E2W at EL1", 0, nil, 1, at.S1E2W, &undef1},
		{"S1E2R at EL1, NV=1", sysreg.HCR_NV, nil, 1, at.S1E2R, &trap},
		{"S12E1R at EL1", 0, nil, 1, at.S12E1R, &undef1},
		{"S12E0W at EL1", 0, nil, 1, at.S12E0W, &undef1},
		{"S12E1R at EL1, NV=1", sysreg.HCR_NV, nil, 1, at.S12E1R, &trap},
		{"S1E1R at EL1, HCR_EL2.AT=1", sysreg.HCR_AT, nil, 1, at.S1E1R, &trap},
		{"S1E0W at EL1, HCR_EL2.AT=1", sysreg.HCR_AT, nil, 1, at.S1E0W, &trap},
		{"S1E1R at EL2, HCR_EL2.AT=1 not trapped", sysreg.HCR_AT, nil, 2, at.S1E1R, nil},
		{"S1E1R at EL1", 0, nil, 1, at.S1E1R, nil},
		// FEAT_PAN2 (ID_AA64MMFR1_EL1.PAN >= 2) provides AT S1E1RP/WP.
		{"S1E1RP without FEAT_PAN2", 0, func(v uint64) uint64 { return v&^(0xf<<20) | 1<<20 }, 2, at.S1E1RP, &undef2},
		{"S1E1WP without FEAT_PAN2 at EL1", 0, func(v uint64) uint64 { return v&^(0xf<<20) | 1<<20 }, 1, at.S1E1WP, &undef1},
		{"S1E1RP with FEAT_PAN2", 0, func(v uint64) uint64 { return v&^(0xf<<20) | 2<<20 }, 2, at.S1E1RP, nil},
		{"S1E2R at EL2", 0, nil, 2, at.S1E2R, nil},
		// FEAT_ATS1A absent (ID_AA64ISAR2_EL1.ATS1A=0, as in QEMU 10.0): UNDEFINED.
		{"S1E1A without FEAT_ATS1A", 0, nil, 2, at.S1E1A, &undef2},
		{"S1E2A without FEAT_ATS1A", 0, nil, 2, at.S1E2A, &undef2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.r.HCR_EL2 |= c.hcr
			if c.mmfr1 != nil {
				e.r.MMFR1 = sysreg.MMFR1(c.mmfr1(uint64(e.r.MMFR1)))
			}
			e.ps.EL = c.el
			res := at.Execute(&e.w, &e.r, e.ps, c.op, 0x4000_1000, 0x1234_5000)
			if c.want == nil {
				if res.Taken {
					t.Fatalf("took %s, want PAR written", res.Exception)
				}
				// MMU off: flat Device-nGnRnE.
				if want := spar(0x4000_1000, 0, 2); uint64(res.PAR) != want {
					t.Errorf("PAR = %#x, want %#x", uint64(res.PAR), want)
				}
				return
			}
			if !res.Taken {
				t.Fatalf("PAR %#x written, want exception %v", uint64(res.PAR), c.want.kind)
			}
			x := res.Exception
			if x.Kind != c.want.kind || x.TargetEL != c.want.el || x.ESR.EC() != c.want.ec || !x.ESR.IL() {
				t.Errorf("exception %v to EL%d EC %#x IL %v, want %v to EL%d EC %#x IL",
					x.Kind, x.TargetEL, x.ESR.EC(), x.ESR.IL(), c.want.kind, c.want.el, c.want.ec)
			}
			if res.PAR != 0x1234_5000 {
				t.Errorf("PAR = %#x, want unchanged", uint64(res.PAR))
			}
			if x.String() == "" {
				t.Error("empty exception description")
			}
		})
	}
}

func TestParseOp(t *testing.T) {
	for _, op := range at.Ops() {
		for _, s := range []string{op.String(), "at " + op.String(), " " + fmt.Sprintf("%v", op) + " "} {
			got, err := at.ParseOp(s)
			if err != nil || got != op {
				t.Errorf("ParseOp(%q) = %v, %v; want %v", s, got, err, op)
			}
		}
	}
	if _, err := at.ParseOp("S1E3R"); err == nil {
		t.Error("ParseOp(S1E3R) succeeded")
	}
	writes := map[at.Op]bool{at.S1E0W: true, at.S1E1W: true, at.S1E1WP: true, at.S1E2W: true, at.S12E0W: true, at.S12E1W: true}
	for _, op := range at.Ops() {
		if op.Write() != writes[op] {
			t.Errorf("%v.Write() = %v", op, op.Write())
		}
	}
}

package at_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

// parCase is one AT instruction whose PAR_EL1 is computed by hand.
type parCase struct {
	name  string
	setup func(e *env)
	op    at.Op
	va    uint64
	want  uint64
	// kind and level, when kind != 0, are checked against the walk's Fault.
	kind  vmsa.FaultKind
	level int8
	s2    bool
}

func runPAR(t *testing.T, cases []parCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			c.setup(e)
			res := e.exec(c.op, c.va)
			if res.Taken {
				t.Fatalf("AT %s %#x took an exception: %s", c.op, c.va, res.Exception)
			}
			if uint64(res.PAR) != c.want {
				t.Errorf("AT %s %#x: PAR = %#x, want %#x (fault: %v)", c.op, c.va, uint64(res.PAR), c.want, res.Fault())
			}
			if c.kind != vmsa.FaultNone {
				f := res.Fault()
				if f.Kind != c.kind || f.Level != c.level || f.Stage2 != c.s2 {
					t.Errorf("fault = %v (kind %v level %d stage2 %v), want kind %v level %d stage2 %v",
						f, f.Kind, f.Level, f.Stage2, c.kind, c.level, c.s2)
				}
			}
		})
	}
}

// chain combines setup steps.
func chain(fs ...func(e *env)) func(e *env) {
	return func(e *env) {
		for _, f := range fs {
			f(e)
		}
	}
}

func s1(e *env) { e.s1std() }

// ds4k is stage 1 with FEAT_LPA2: 4K, TCR_EL1.DS=1, T0SZ=12 (52-bit VA:
// AArch64.S1StartLevel = 3-(51-12)/9 = -1), IPS 52 bits, SH0=IS (with DS
// the output shareability comes from TCR.SH0), and the chain L-1[0] -> L0
// -> L1 -> L2 -> L3 with L3[1] mapping VA 0x1000 to PA 0x4000_1000.
func ds4k(e *env) {
	e.r.SCTLR_EL1 = sctlrM | sctlrC | sctlrI
	e.r.TCR_EL1 = sysreg.TCR(12 | 3<<12 | 6<<32 | 1<<59)
	e.r.TTBR0_EL1 = l0
	e.r.MAIR_EL1 = stdMAIR
	const lm1 = 0x4400_4000
	e.r.TTBR0_EL1 = lm1
	e.set(lm1, l0|dTable)
	e.set(l0, l1|dTable)
	e.set(l1, l2|dTable)
	e.set(l2, l3|dTable)
	e.set(l3+8, 0x4000_1000|dTable|dAF)
}

func tcr(set func(v uint64) uint64) func(e *env) {
	return func(e *env) { e.r.TCR_EL1 = sysreg.TCR(set(uint64(e.r.TCR_EL1))) }
}

func word(pa, v uint64) func(e *env) { return func(e *env) { e.set(pa, v) } }

const stdVA = 0x1234

func TestStage1TranslationFaults(t *testing.T) {
	T := vmsa.FaultTranslation
	cases := []parCase{
		// AArch64.S1Walk: an invalid descriptor (bit 0 clear) at the level.
		{"invalid L0", chain(s1, word(l0, 0)), at.S1E1R, stdVA, fpar(fstTrans(0), false, false), T, 0, false},
		{"invalid L1", chain(s1, word(l1, 0)), at.S1E1R, stdVA, fpar(fstTrans(1), false, false), T, 1, false},
		{"invalid L2", chain(s1, word(l2, 0)), at.S1E1R, stdVA, fpar(fstTrans(2), false, false), T, 2, false},
		{"invalid L3", chain(s1, word(l3+8, 0x4000_1000|dAF|2)), at.S1E1R, stdVA, fpar(fstTrans(3), false, false), T, 3, false},
		// FEAT_LPA2: level -1 reports FSC 0b101011.
		{"invalid L-1 (DS=1, T0SZ=12)", chain(ds4k, word(0x4400_4000, 0)), at.S1E1R, stdVA, fpar(fstTrans(-1), false, false), T, -1, false},
		{"DS=1 walk from level -1 succeeds", ds4k, at.S1E1R, stdVA, spar(0x4000_1000, 0xff, 3), 0, 0, false},
		// AArch64.BlockDescSupported: 4K level-0 blocks need DS=1.
		{"4K block at L0 without DS", chain(s1, word(l0, 0x80_0000_0000|dBlock|dAF)), at.S1E1R, stdVA, fpar(fstTrans(0), false, false), T, 0, false},
		// A block at level -1 is never supported.
		{"4K block at L-1 with DS", chain(ds4k, word(0x4400_4000, dBlock|dAF)), at.S1E1R, stdVA, fpar(fstTrans(-1), false, false), T, -1, false},
		// Level 3: bits[1:0]=0b01 is reserved, treated as invalid.
		{"L3 reserved encoding 0b01", chain(s1, word(l3+8, 0x4000_1000|dBlock|dAF)), at.S1E1R, stdVA, fpar(fstTrans(3), false, false), T, 3, false},
		// 16K, T0SZ=16: start level 3-(47-14)/11 = 0; a level-1 block needs DS.
		{"16K block at L1 without DS", func(e *env) {
			e.r.SCTLR_EL1 = sctlrM | sctlrC
			e.r.TCR_EL1 = sysreg.TCR(16 | 2<<14 | 5<<32)
			e.r.TTBR0_EL1 = 0x4400_0000
			e.set(0x4400_0000, 0x4400_4000|dTable)
			e.set(0x4400_4000, 0x40_0000_0000|dBlock|dAF)
		}, at.S1E1R, stdVA, fpar(fstTrans(1), false, false), T, 1, false},
		// 64K, T0SZ=16: start level 3-(47-16)/13 = 1; a level-1 block needs
		// FEAT_LPA (PARange=52). With PARange=48 it is a translation fault.
		{"64K block at L1 without FEAT_LPA", func(e *env) {
			e.r.MMFR0 = sysreg.MMFR0(uint64(e.r.MMFR0)&^0xf | 5)
			e.r.SCTLR_EL1 = sctlrM | sctlrC
			e.r.TCR_EL1 = sysreg.TCR(16 | 1<<14 | 5<<32)
			e.r.TTBR0_EL1 = 0x4400_0000
			e.set(0x4400_0000, 0x400_0000_0000|dBlock|dAF|shIS)
		}, at.S1E1R, 0x1234_5678, fpar(fstTrans(1), false, false), T, 1, false},
		// With FEAT_LPA it maps 4TB: OA = block | VA[41:0].
		{"64K block at L1 with FEAT_LPA", func(e *env) {
			e.r.SCTLR_EL1 = sctlrM | sctlrC
			e.r.TCR_EL1 = sysreg.TCR(16 | 1<<14 | 5<<32)
			e.r.TTBR0_EL1 = 0x4400_0000
			e.r.MAIR_EL1 = stdMAIR
			e.set(0x4400_0000+8, 0x400_0000_0000|dBlock|dAF|shIS)
		}, at.S1E1R, 0x500_1234_5678, spar(0x500_1234_5678, 0xff, 3), 0, 0, false},
		// AArch64.VAIsOutOfRange: T0SZ=25, VA[63:39] must be zero for TTBR0.
		{"VA beyond T0SZ", chain(s1, tcr(func(v uint64) uint64 { return v&^0x3f | 25 })), at.S1E1R, 1 << 39, fpar(fstTrans(0), false, false), T, 0, false},
		// ... and all ones for TTBR1 (T1SZ=25: VA[63:39] all ones).
		{"VA beyond T1SZ", chain(s1, tcr(func(v uint64) uint64 { return v | 25<<16 | 2<<30 })), at.S1E1R, 0xffff_ff00_0000_0000, fpar(fstTrans(0), false, false), T, 0, false},
		// TBI0=0: the top byte is part of the address.
		{"TTBR0 tagged VA without TBI0", s1, at.S1E1R, 0xab00_0000_0000_1234, fpar(fstTrans(0), false, false), T, 0, false},
		// TBI0=1: AddrTop is 55, so VA[55:48] are checked and the tag ignored.
		{"TTBR0 tagged VA with TBI0", chain(s1, tcr(func(v uint64) uint64 { return v | 1<<37 })), at.S1E1R, 0xab00_0000_0000_1234, spar(0x4000_1000, 0xff, 3), 0, 0, false},
		{"TBI0 does not hide VA[55:48]", chain(s1, tcr(func(v uint64) uint64 { return v | 1<<37 })), at.S1E1R, 0xab01_0000_0000_1234, fpar(fstTrans(0), false, false), T, 0, false},
		// TTBR1 with T1SZ=16 and TG1=4K (0b10): VA[55:48] all ones.
		{"TTBR1 tagged VA without TBI1", ttbr1Setup(false), at.S1E1R, 0x00ff_ffff_ffff_f234, fpar(fstTrans(0), false, false), T, 0, false},
		{"TTBR1 tagged VA with TBI1", ttbr1Setup(true), at.S1E1R, 0x00ff_ffff_ffff_f234, spar(0x4000_5000, 0xff, 3), 0, 0, false},
		{"TTBR1 untagged VA", ttbr1Setup(false), at.S1E1R, 0xffff_ffff_ffff_f234, spar(0x4000_5000, 0xff, 3), 0, 0, false},
		// AArch64.S1TxSZFaults: 4K without DS has minimum TxSZ 16 ...
		{"T0SZ below minimum (15)", chain(s1, tcr(func(v uint64) uint64 { return v&^0x3f | 15 })), at.S1E1R, stdVA, fpar(fstTrans(0), false, false), T, 0, false},
		// ... and with FEAT_TTST maximum 48; above it the fault is
		// IMPLEMENTATION DEFINED: this model faults, as QEMU does.
		{"T0SZ above maximum (49)", chain(s1, tcr(func(v uint64) uint64 { return v&^0x3f | 49 })), at.S1E1R, stdVA, fpar(fstTrans(0), false, false), T, 0, false},
		// 64K with FEAT_LVA: minimum 12, so 11 faults.
		{"64K T0SZ below LVA minimum (11)", func(e *env) {
			e.r.SCTLR_EL1 = sctlrM
			e.r.TCR_EL1 = sysreg.TCR(11 | 1<<14 | 6<<32)
		}, at.S1E1R, stdVA, fpar(fstTrans(0), false, false), T, 0, false},
		// TCR_ELx.EPD0/EPD1: a walk through the disabled TTBR faults at level 0.
		{"EPD0", chain(s1, tcr(func(v uint64) uint64 { return v | 1<<7 })), at.S1E1R, stdVA, fpar(fstTrans(0), false, false), T, 0, false},
		{"EPD1", func(e *env) {
			ttbr1Setup(false)(e)
			e.r.TCR_EL1 |= 1 << 23
		}, at.S1E1R, 0xffff_ffff_ffff_f234, fpar(fstTrans(0), false, false), T, 0, false},
		{"EPD1 does not affect TTBR0", chain(s1, tcr(func(v uint64) uint64 { return v | 1<<23 })), at.S1E1R, stdVA, spar(0x4000_1000, 0xff, 3), 0, 0, false},
		// FEAT_E0PD: E0PD0 faults unprivileged accesses (level 0), not privileged.
		{"E0PD0 with S1E0R", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|shIS|ap(1)), tcr(func(v uint64) uint64 { return v | 1<<55 })), at.S1E0R, stdVA, fpar(fstTrans(0), false, false), T, 0, false},
		{"E0PD0 with S1E1R", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|shIS|ap(1)), tcr(func(v uint64) uint64 { return v | 1<<55 })), at.S1E1R, stdVA, spar(0x4000_1000, 0xff, 3), 0, 0, false},
		{"E0PD1 with S1E0R", func(e *env) {
			ttbr1Setup(false)(e)
			e.set(l3+0x1ff*8, 0x4000_5000|dTable|dAF|shIS|ap(1))
			e.r.TCR_EL1 |= 1 << 56
		}, at.S1E0R, 0xffff_ffff_ffff_f234, fpar(fstTrans(0), false, false), T, 0, false},
		{"E0PD0 without FEAT_E0PD is RES0", func(e *env) {
			e.s1std()
			e.set(l3+8, 0x4000_1000|dTable|dAF|shIS|ap(1))
			e.r.TCR_EL1 |= 1 << 55
			e.r.MMFR2 = sysreg.MMFR2(uint64(e.r.MMFR2) &^ (0xf << 60))
		}, at.S1E0R, stdVA, spar(0x4000_1000, 0xff, 3), 0, 0, false},
	}
	runPAR(t, cases)
}

// ttbr1Setup maps VA 0xffff_ffff_ffff_f000 (and the tagged 0x00ff_...)
// through TTBR1 (T1SZ=16, TG1=0b10 4K) to PA 0x4000_5000, reusing the
// standard tables at their last index; TTBR0 is disabled.
func ttbr1Setup(tbi1 bool) func(e *env) {
	return func(e *env) {
		e.r.SCTLR_EL1 = sctlrM | sctlrC | sctlrI
		v := uint64(16<<16 | 2<<30 | 5<<32 | 1<<7)
		if tbi1 {
			v |= 1 << 38
		}
		e.r.TCR_EL1 = sysreg.TCR(v)
		e.r.TTBR1_EL1 = l0
		e.r.MAIR_EL1 = stdMAIR
		e.set(l0+511*8, l1|dTable)
		e.set(l1+511*8, l2|dTable)
		e.set(l2+511*8, l3|dTable)
		e.set(l3+511*8, 0x4000_5000|dTable|dAF|shIS)
	}
}

// stage-2 only: stage 1 off, HCR_EL2.VM=1, AT S12E1R at EL2. The IPA is
// the VA (AArch64.S1DisabledOutput).
func s2only(e *env) { e.s2std() }

// s2deep: stage 2 with 4K, T0SZ=16 (48-bit IPA), SL0=2 (start level 0),
// and the chain L0[0] -> L1[1] -> L2 -> L3 for IPA 0x4000_1000.
func s2deep(e *env) {
	e.r.HCR_EL2 |= sysreg.HCR_VM
	e.r.VTCR_EL2 = sysreg.VTCR(16 | 2<<6 | 5<<16)
	e.r.VTTBR_EL2 = s2l1
	e.set(s2l1, 0x4e00_4000|dTable)
	e.set(0x4e00_4000+8, s2l2|dTable)
	e.set(s2l2, s2l3|dTable)
	e.set(s2l3+8, 0x4000_1000|dTable|s2attr(0xf)|s2ap(3)|shIS|dAF)
}

func TestStage2TranslationFaults(t *testing.T) {
	T := vmsa.FaultTranslation
	ipa := uint64(0x4000_1234)
	cases := []parCase{
		// Stage 1 is off: its output is Device-nGnRnE (AArch64.S1DisabledOutput),
		// and Device wins the stage-1/stage-2 combination: ATTR 0x00, SH 0b10.
		{"S2 deep walk succeeds", s2deep, at.S12E1R, ipa, spar(0x4000_1000, 0x00, 2), 0, 0, false},
		{"S2 invalid L0", chain(s2deep, word(s2l1, 0)), at.S12E1R, ipa, fpar(fstTrans(0), true, false), T, 0, true},
		{"S2 invalid L1", chain(s2deep, word(0x4e00_4008, 0)), at.S12E1R, ipa, fpar(fstTrans(1), true, false), T, 1, true},
		{"S2 invalid L2", chain(s2deep, word(s2l2, 0)), at.S12E1R, ipa, fpar(fstTrans(2), true, false), T, 2, true},
		{"S2 invalid L3", chain(s2deep, word(s2l3+8, 0x4000_1000|dAF|s2ap(3))), at.S12E1R, ipa, fpar(fstTrans(3), true, false), T, 3, true},
		{"S2 L3 reserved 0b01", chain(s2deep, word(s2l3+8, 0x4000_1000|dBlock|dAF|s2ap(3))), at.S12E1R, ipa, fpar(fstTrans(3), true, false), T, 3, true},
		{"S2 4K block at L0 without DS", chain(s2deep, word(s2l1, dBlock|dAF|s2ap(3))), at.S12E1R, ipa, fpar(fstTrans(0), true, false), T, 0, true},
		// FEAT_LPA2 at stage 2: VTCR.DS=1, SL2=1, SL0=0 start at level -1
		// (AArch64.S2StartLevel); T0SZ=12.
		{"S2 invalid L-1", func(e *env) {
			s2deep(e)
			e.r.VTCR_EL2 = sysreg.VTCR(12 | 6<<16 | 1<<32 | 1<<33)
			e.r.VTTBR_EL2 = 0x4e00_8000
		}, at.S12E1R, ipa, fpar(fstTrans(-1), true, false), T, -1, true},
		{"S2 walk from L-1 succeeds", func(e *env) {
			s2deep(e)
			e.r.VTCR_EL2 = sysreg.VTCR(12 | 3<<12 | 6<<16 | 1<<32 | 1<<33)
			e.r.VTTBR_EL2 = 0x4e00_8000
			e.set(0x4e00_8000, s2l1|dTable)
			// With DS=1, descriptor bits [9:8] are OA[51:50]: clear SH.
			e.set(s2l3+8, 0x4000_1000|dTable|s2attr(0xf)|s2ap(3)|dAF)
		}, at.S12E1R, ipa, spar(0x4000_1000, 0x00, 2), 0, 0, false},
		// AArch64.S2InconsistentSL: SL0=0 starts at level 2, which covers
		// at most 22+12 = 34 input bits; T0SZ=16 (48 bits) is inconsistent.
		{"S2 SL0/T0SZ inconsistent", chain(s2deep, func(e *env) { e.r.VTCR_EL2 = sysreg.VTCR(16 | 0<<6 | 5<<16) }), at.S12E1R, ipa, fpar(fstTrans(0), true, false), T, 0, true},
		// SL0=3 with 4K needs FEAT_TTST and is start level 3 (AArch64.S2InvalidSL).
		{"S2 SL0=3 without FEAT_TTST", chain(s2deep, func(e *env) {
			e.r.VTCR_EL2 = sysreg.VTCR(40 | 3<<6 | 5<<16)
			e.r.MMFR2 = sysreg.MMFR2(uint64(e.r.MMFR2) &^ (0xf << 28))
		}), at.S12E1R, 0x1000, fpar(fstTrans(0), true, false), T, 0, true},
		// AArch64.IPAIsOutOfRange: T0SZ=32 makes IPA[63:32] zero.
		{"IPA beyond T0SZ", s2only, at.S12E1R, 1 << 32, fpar(fstTrans(0), true, false), T, 0, true},
		// AArch64.S2TxSZFaults: with FEAT_LPA, 4K without DS, minimum 16.
		{"S2 T0SZ below minimum", chain(s2deep, func(e *env) { e.r.VTCR_EL2 = sysreg.VTCR(15 | 2<<6 | 5<<16) }), at.S12E1R, ipa, fpar(fstTrans(0), true, false), T, 0, true},
	}
	runPAR(t, cases)
}

func TestAddressSizeFaults(t *testing.T) {
	A := vmsa.FaultAddressSize
	ips32 := tcr(func(v uint64) uint64 { return v &^ (7 << 32) }) // IPS=0b000: 32 bits
	cases := []parCase{
		// AArch64.S1Walk: a TTBR base beyond the IPS is a level-0 address size fault.
		{"TTBR0 base beyond IPS", chain(s1, ips32, func(e *env) { e.r.TTBR0_EL1 = 0x1_0000_0000 }), at.S1E1R, stdVA, fpar(fstAddr(0), false, false), A, 0, false},
		// ... level 0 even when the walk would start at level 1 (T0SZ=25).
		{"TTBR0 base beyond IPS, start level 1", chain(s1, ips32, tcr(func(v uint64) uint64 { return v&^0x3f | 25 }), func(e *env) { e.r.TTBR0_EL1 = 0x1_0000_0000 }),
			at.S1E1R, stdVA, fpar(fstAddr(0), false, false), A, 0, false},
		// A next-table address beyond the IPS faults at the table descriptor's level.
		{"table OA beyond IPS at L0", chain(s1, ips32, word(l0, 0x1_0000_0000|dTable)), at.S1E1R, stdVA, fpar(fstAddr(0), false, false), A, 0, false},
		{"table OA beyond IPS at L1", chain(s1, ips32, word(l1, 0x1_0000_0000|dTable)), at.S1E1R, stdVA, fpar(fstAddr(1), false, false), A, 1, false},
		{"table OA beyond IPS at L2", chain(s1, ips32, word(l2, 0x1_0000_0000|dTable)), at.S1E1R, stdVA, fpar(fstAddr(2), false, false), A, 2, false},
		// A leaf output beyond the IPS faults at the leaf's level.
		{"page OA beyond IPS at L3", chain(s1, ips32, word(l3+8, 0x1_0000_1000|dTable|dAF)), at.S1E1R, stdVA, fpar(fstAddr(3), false, false), A, 3, false},
		{"block OA beyond IPS at L2", chain(s1, ips32, word(l2, 0x1_0000_0000|dBlock|dAF)), at.S1E1R, stdVA, fpar(fstAddr(2), false, false), A, 2, false},
		{"block OA beyond IPS at L1", chain(s1, ips32, word(l1, 0x1_0000_0000|dBlock|dAF)), at.S1E1R, stdVA, fpar(fstAddr(1), false, false), A, 1, false},
		// Address size is checked before the access flag (AArch64.S1Walk then S1Translate).
		{"address size before access flag", chain(s1, ips32, word(l3+8, 0x1_0000_1000|dTable)), at.S1E1R, stdVA, fpar(fstAddr(3), false, false), A, 3, false},
		// AArch64.LeafBase with 64K and PAMax 52: descriptor bits [15:12] are
		// OA[51:48] whatever IPS is, so with IPS=48 a nonzero value is an
		// address size fault. (QEMU 10.0 ignores those bits when IPS < 52.)
		{"64K OA[51:48] with IPS 48", func(e *env) {
			lpa64k(e)
			e.r.TCR_EL1 = sysreg.TCR(16 | 1<<14 | 5<<32)
			e.set(0x4402_0000+8, 0x4000_0000|1<<12|dTable|dAF|shIS)
		}, at.S1E1R, 0x1_1234, fpar(fstAddr(3), false, false), A, 3, false},
		// FEAT_LPA2 table at level -1 pointing beyond a 48-bit IPS (OA[50] in
		// descriptor bit 8, AArch64.NextTableBase): FSC 0b101001. (QEMU 10.0
		// ignores bits [9:8] when IPS < 52.)
		{"table OA beyond IPS at L-1", chain(ds4k, tcr(func(v uint64) uint64 { return v&^(7<<32) | 5<<32 }), word(0x4400_4000, l0|1<<8|dTable)),
			at.S1E1R, stdVA, fpar(fstAddr(-1), false, false), A, -1, false},
		// Stage 2: VTTBR base beyond PS (PS=0b000, 32 bits) at level 0.
		{"VTTBR base beyond PS", chain(s2only, func(e *env) {
			e.r.VTCR_EL2 = sysreg.VTCR(uint64(e.r.VTCR_EL2) &^ (7 << 16))
			e.r.VTTBR_EL2 = 0x1_0000_0000
		}), at.S12E1R, 0x4000_1000, fpar(fstAddr(0), true, false), A, 0, true},
		{"S2 table OA beyond PS at L1", chain(s2only, func(e *env) {
			e.r.VTCR_EL2 = sysreg.VTCR(uint64(e.r.VTCR_EL2) &^ (7 << 16))
			e.set(s2l1+8, 0x1_0000_0000|dTable)
		}), at.S12E1R, 0x4000_1000, fpar(fstAddr(1), true, false), A, 1, true},
		{"S2 block OA beyond PS at L2", chain(s2only, func(e *env) {
			e.r.VTCR_EL2 = sysreg.VTCR(uint64(e.r.VTCR_EL2) &^ (7 << 16))
			e.set(s2l2+(0x4000_0000>>21&511)*8, 0x1_0000_0000|dBlock|s2attr(0xf)|s2ap(3)|dAF)
		}), at.S12E1R, 0x4000_1000, fpar(fstAddr(2), true, false), A, 2, true},
		{"S2 page OA beyond PS at L3", chain(s2only, func(e *env) {
			e.r.VTCR_EL2 = sysreg.VTCR(uint64(e.r.VTCR_EL2) &^ (7 << 16))
			e.s2page(0x4000_1000, 0x1_0000_1000|dTable|s2attr(0xf)|s2ap(3)|dAF)
		}), at.S12E1R, 0x4000_1000, fpar(fstAddr(3), true, false), A, 3, true},
		// AArch64.S1DisabledOutput: with the MMU off a VA beyond PAMax is a
		// level-0 address size fault (PAMax 52 by default ...
		{"MMU off, VA beyond PAMax 52", func(e *env) {}, at.S1E1R, 1 << 52, fpar(fstAddr(0), false, false), A, 0, false},
		{"MMU off, VA within PAMax 52", func(e *env) {}, at.S1E1R, 1<<52 - 0x1000, spar(1<<52-0x1000, 0x00, 2), 0, 0, false},
		// ... and 48 with ID_AA64MMFR0_EL1.PARange=0b0101).
		{"MMU off, VA beyond PAMax 48", func(e *env) { e.r.MMFR0 = sysreg.MMFR0(uint64(e.r.MMFR0)&^0xf | 5) }, at.S1E1R, 1 << 48, fpar(fstAddr(0), false, false), A, 0, false},
		// TBI applies with the MMU off: a tag is ignored.
		{"MMU off, tagged VA with TBI0", tcr(func(v uint64) uint64 { return v | 1<<37 }), at.S1E1R, 0x5a00_0000_4000_1234, spar(0x4000_1000, 0x00, 2), 0, 0, false},
		{"MMU off, tagged VA without TBI0", func(e *env) {}, at.S1E1R, 0x5a00_0000_4000_1234, fpar(fstAddr(0), false, false), A, 0, false},
	}
	runPAR(t, cases)
}

func TestAccessFlagFaults(t *testing.T) {
	F := vmsa.FaultAccessFlag
	blk2 := 0x4000_0000 | dBlock | shIS // 2MB block at L2, AF clear
	blk1 := 0x4000_0000 | dBlock | shIS // 1GB block at L1, AF clear
	cases := []parCase{
		{"AF=0 page L3, HA=0", chain(s1, word(l3+8, 0x4000_1000|dTable|shIS)), at.S1E1R, stdVA, fpar(fstAF(3), false, false), F, 3, false},
		{"AF=0 block L2, HA=0", chain(s1, word(l2, uint64(blk2))), at.S1E1R, stdVA, fpar(fstAF(2), false, false), F, 2, false},
		{"AF=0 block L1, HA=0", chain(s1, word(l1, uint64(blk1))), at.S1E1R, stdVA, fpar(fstAF(1), false, false), F, 1, false},
		// FEAT_LPA2: a 4K level-0 block with DS=1; AF fault reported at level 0.
		{"AF=0 block L0 (DS=1), HA=0", chain(ds4k, word(l0, dBlock)), at.S1E1R, stdVA, fpar(fstAF(0), false, false), F, 0, false},
		// Access flag is checked before permissions (AArch64.S1Translate).
		{"AF before permission", chain(s1, word(l3+8, 0x4000_1000|dTable|shIS|ap(2))), at.S1E1W, stdVA, fpar(fstAF(3), false, false), F, 3, false},
		// HA without FEAT_HAFDBS is RES0: still a fault.
		{"HA=1 without FEAT_HAFDBS", chain(s1, word(l3+8, 0x4000_1000|dTable|shIS), tcr(func(v uint64) uint64 { return v | 1<<39 }),
			func(e *env) { e.r.MMFR1 = sysreg.MMFR1(uint64(e.r.MMFR1) &^ 0xf) }), at.S1E1R, stdVA, fpar(fstAF(3), false, false), F, 3, false},
		// Stage 2 (VTCR_EL2.HA=0).
		{"S2 AF=0 block L2", chain(s2only, word(s2l2+(0x4000_0000>>21&511)*8, 0x4000_0000|dBlock|s2attr(0xf)|s2ap(3)|shIS)), at.S12E1R, 0x4000_1000, fpar(fstAF(2), true, false), F, 2, true},
		{"S2 AF=0 page L3", chain(s2only, func(e *env) { e.s2page(0x4000_1000, 0x4000_1000|dTable|s2attr(0xf)|s2ap(3)|shIS) }), at.S12E1R, 0x4000_1000, fpar(fstAF(3), true, false), F, 3, true},
		{"S2 AF=0 block L1", func(e *env) {
			e.s2std()
			e.set(s2l1+8, 0x4000_0000|dBlock|s2attr(0xf)|s2ap(3)|shIS)
		}, at.S12E1R, 0x4000_1000, fpar(fstAF(1), true, false), F, 1, true},
	}
	runPAR(t, cases)
}

// TestAccessFlagHardwareUpdate: with HA=1 the walk sets AF (AArch64.S1Translate,
// AArch64.SetAccessFlag; whether AT updates AF is IMPLEMENTATION DEFINED:
// this model does, as QEMU) and the translation succeeds.
func TestAccessFlagHardwareUpdate(t *testing.T) {
	for _, lvl := range []struct {
		name string
		addr uint64
		d    uint64
		pa   uint64
	}{
		{"L3 page", l3 + 8, 0x4000_1000 | dTable | shIS, 0x4000_1000},
		{"L2 block", l2, 0x4000_0000 | dBlock | shIS, 0x4000_1000},
		{"L1 block", l1, 0x4000_0000 | dBlock | shIS, 0x4000_1000},
	} {
		t.Run("S1 "+lvl.name, func(t *testing.T) {
			e := newEnv(t)
			e.s1std()
			e.r.TCR_EL1 |= 1 << 39 // HA
			e.set(lvl.addr, lvl.d)
			res := e.exec(at.S1E1R, stdVA)
			if want := spar(lvl.pa, 0xff, 3); uint64(res.PAR) != want {
				t.Errorf("PAR = %#x, want %#x", uint64(res.PAR), want)
			}
			if got, want := e.get(lvl.addr), lvl.d|dAF; got != want {
				t.Errorf("descriptor = %#x, want %#x (AF set)", got, want)
			}
		})
	}
	t.Run("S1 no update on permission fault", func(t *testing.T) {
		// AArch64.SettingAccessFlagPermitted: with a Permission fault the
		// update is CONSTRAINED UNPREDICTABLE; this model does not update.
		e := newEnv(t)
		e.s1std()
		e.r.TCR_EL1 |= 1 << 39
		d := uint64(0x4000_1000 | dTable | shIS | ap(2))
		e.set(l3+8, d)
		res := e.exec(at.S1E1W, stdVA)
		if want := fpar(fstPerm(3), false, false); uint64(res.PAR) != want {
			t.Errorf("PAR = %#x, want %#x", uint64(res.PAR), want)
		}
		if got := e.get(l3 + 8); got != d {
			t.Errorf("descriptor = %#x, want unchanged %#x", got, d)
		}
	})
	t.Run("S2 L2 block with VTCR.HA", func(t *testing.T) {
		e := newEnv(t)
		e.s2std()
		e.r.VTCR_EL2 |= 1 << 21
		d := uint64(0x4000_0000 | dBlock | s2attr(0xf) | s2ap(3) | shIS)
		e.set(s2l2+(0x4000_0000>>21&511)*8, d)
		res := e.exec(at.S12E1R, 0x4000_1000)
		if want := spar(0x4000_1000, 0x00, 2); uint64(res.PAR) != want {
			t.Errorf("PAR = %#x, want %#x", uint64(res.PAR), want)
		}
		if got := e.get(s2l2 + (0x4000_0000>>21&511)*8); got != d|dAF {
			t.Errorf("descriptor = %#x, want %#x", got, d|dAF)
		}
	})
}

// apCase: the AArch64.S1DirectBasePermissions table for a two-range regime.
// AP[2:1]: 00 EL1 RW / EL0 none, 01 RW / RW, 10 RO / none, 11 RO / RO.
func TestStage1APPermissions(t *testing.T) {
	type access struct {
		op  at.Op
		el0 bool
		w   bool
	}
	allowed := func(apv uint64, a access) bool {
		ro := apv&2 != 0
		el0 := apv&1 != 0
		if a.el0 && !el0 {
			return false
		}
		return !(a.w && ro)
	}
	var cases []parCase
	for apv := uint64(0); apv < 4; apv++ {
		for _, a := range []access{{at.S1E1R, false, false}, {at.S1E1W, false, true}, {at.S1E0R, true, false}, {at.S1E0W, true, true}} {
			want := fpar(fstPerm(3), false, false)
			kind := vmsa.FaultPermission
			if allowed(apv, a) {
				want, kind = spar(0x4000_1000, 0xff, 3), vmsa.FaultNone
			}
			d := uint64(0x4000_1000 | dTable | dAF | shIS | ap(apv))
			cases = append(cases, parCase{fmt.Sprintf("AP=%02b %s", apv, a.op), chain(s1, word(l3+8, d)), a.op, stdVA, want, kind, 3, false})
		}
	}
	runPAR(t, cases)
}

func TestStage1HierarchicalAndPAN(t *testing.T) {
	P := vmsa.FaultPermission
	ok := spar(0x4000_1000, 0xff, 3)
	perm3 := fpar(fstPerm(3), false, false)
	pageAP := func(v uint64) func(e *env) { return word(l3+8, 0x4000_1000|dTable|dAF|shIS|ap(v)) }
	apTable := func(v uint64) func(e *env) { return word(l1, l2|dTable|v<<61) }
	hpd0 := tcr(func(v uint64) uint64 { return v | 1<<41 })
	pan := func(e *env) { e.ps.PAN = true }
	epan := func(e *env) { e.r.SCTLR_EL1 |= 1 << 57 }
	ats1a := func(e *env) { e.r.ISAR2 = sysreg.ISAR2(1 << 60) }
	noHPDS := func(e *env) { e.r.MMFR1 = sysreg.MMFR1(uint64(e.r.MMFR1) &^ (0xf << 12)) }
	cases := []parCase{
		// APTable[0]=1: no EL0 access to anything below.
		{"APTable=01 S1E0R on AP=01", chain(s1, pageAP(1), apTable(1)), at.S1E0R, stdVA, perm3, P, 3, false},
		{"APTable=01 S1E1W on AP=01", chain(s1, pageAP(1), apTable(1)), at.S1E1W, stdVA, ok, 0, 0, false},
		// APTable[1]=1: no write access at any EL.
		{"APTable=10 S1E1W on AP=00", chain(s1, pageAP(0), apTable(2)), at.S1E1W, stdVA, perm3, P, 3, false},
		{"APTable=10 S1E1R on AP=00", chain(s1, pageAP(0), apTable(2)), at.S1E1R, stdVA, ok, 0, 0, false},
		{"APTable=10 S1E0W on AP=01", chain(s1, pageAP(1), apTable(2)), at.S1E0W, stdVA, perm3, P, 3, false},
		{"APTable=10 S1E0R on AP=01", chain(s1, pageAP(1), apTable(2)), at.S1E0R, stdVA, ok, 0, 0, false},
		{"APTable=11 S1E0R on AP=01", chain(s1, pageAP(1), apTable(3)), at.S1E0R, stdVA, perm3, P, 3, false},
		// APTable at level 0 applies too (the controls accumulate).
		{"APTable=10 at L0", chain(s1, pageAP(0), word(l0, l1|dTable|2<<61)), at.S1E1W, stdVA, perm3, P, 3, false},
		// TCR_EL1.HPD0=1 (FEAT_HPDS): APTable is ignored.
		{"HPD0 ignores APTable=11 (S1E1W)", chain(s1, pageAP(1), apTable(3), hpd0), at.S1E1W, stdVA, ok, 0, 0, false},
		{"HPD0 ignores APTable=11 (S1E0W)", chain(s1, pageAP(1), apTable(3), hpd0), at.S1E0W, stdVA, ok, 0, 0, false},
		// Without FEAT_HPDS, HPD0 is RES0.
		{"HPD0 without FEAT_HPDS", chain(s1, pageAP(0), apTable(2), hpd0, noHPDS), at.S1E1W, stdVA, perm3, P, 3, false},
		// PAN: only S1E1RP/WP use PSTATE.PAN (FEAT_PAN2).
		{"PAN=1 S1E1RP on EL0-accessible", chain(s1, pageAP(1), pan), at.S1E1RP, stdVA, perm3, P, 3, false},
		{"PAN=1 S1E1WP on EL0-accessible", chain(s1, pageAP(1), pan), at.S1E1WP, stdVA, perm3, P, 3, false},
		{"PAN=1 S1E1R ignores PAN", chain(s1, pageAP(1), pan), at.S1E1R, stdVA, ok, 0, 0, false},
		{"PAN=1 S1E1W ignores PAN", chain(s1, pageAP(1), pan), at.S1E1W, stdVA, ok, 0, 0, false},
		{"PAN=1 S1E1RP on EL1-only", chain(s1, pageAP(0), pan), at.S1E1RP, stdVA, ok, 0, 0, false},
		{"PAN=0 S1E1RP on EL0-accessible", chain(s1, pageAP(1)), at.S1E1RP, stdVA, ok, 0, 0, false},
		// PAN=1 on AP=11 (EL0 read-only): still EL0-accessible.
		{"PAN=1 S1E1RP on AP=11", chain(s1, pageAP(3), pan), at.S1E1RP, stdVA, perm3, P, 3, false},
		// FEAT_PAN3: SCTLR_EL1.EPAN=1 extends PAN to EL0-executable pages
		// (UXN=0) even when EL0 has no data access (AP=00).
		{"EPAN=1 PAN=1 S1E1RP on UXN=0", chain(s1, pageAP(0), pan, epan), at.S1E1RP, stdVA, perm3, P, 3, false},
		{"EPAN=1 PAN=1 S1E1RP on UXN=1", chain(s1, word(l3+8, 0x4000_1000|dTable|dAF|shIS|dUXN), pan, epan), at.S1E1RP, stdVA, ok, 0, 0, false},
		{"EPAN=0 PAN=1 S1E1RP on UXN=0", chain(s1, pageAP(0), pan), at.S1E1RP, stdVA, ok, 0, 0, false},
		// UXNTable=1 makes the page EL0-non-executable, so EPAN does not apply.
		{"EPAN=1 PAN=1 S1E1RP under UXNTable", chain(s1, pageAP(0), pan, epan, word(l1, l2|dTable|1<<60)), at.S1E1RP, stdVA, ok, 0, 0, false},
		// SCTLR.WXN affects execution only: data accesses to a writable page pass.
		{"WXN S1E1W", chain(s1, pageAP(0), func(e *env) { e.r.SCTLR_EL1 |= 1 << 19 }), at.S1E1W, stdVA, ok, 0, 0, false},
		{"WXN S1E0R", chain(s1, pageAP(1), func(e *env) { e.r.SCTLR_EL1 |= 1 << 19 }), at.S1E0R, stdVA, ok, 0, 0, false},
		// S1E1A (FEAT_ATS1A: ID_AA64ISAR2_EL1.ATS1A, bits [63:60]) checks no
		// permissions, not even EL1 write or PAN.
		{"S1E1A on AP=11 read-only", chain(s1, pageAP(3), ats1a), at.S1E1A, stdVA, ok, 0, 0, false},
		{"S1E1A with PAN on AP=01", chain(s1, pageAP(1), pan, ats1a), at.S1E1A, stdVA, ok, 0, 0, false},
		// ... but still faults on translation and access flag.
		{"S1E1A AF=0", chain(s1, word(l3+8, 0x4000_1000|dTable|shIS), ats1a), at.S1E1A, stdVA, fpar(fstAF(3), false, false), vmsa.FaultAccessFlag, 3, false},
	}
	runPAR(t, cases)
}

// el2Regime: HCR_EL2.E2H=0, TCR_EL2 in its EL2 layout (T0SZ [5:0], TG0
// [15:14], PS [18:16]); same table chain as s1std via TTBR0_EL2.
func el2Regime(e *env) {
	e.s1std()
	e.r.SCTLR_EL2 = sctlrM | sctlrC | sctlrI
	e.r.TCR_EL2 = 16 | 5<<16
	e.r.TTBR0_EL2 = l0
	e.r.MAIR_EL2 = stdMAIR
	e.r.SCTLR_EL1 = 0
}

func TestEL2RegimePermissions(t *testing.T) {
	P := vmsa.FaultPermission
	ok := spar(0x4000_1000, 0xff, 3)
	perm3 := fpar(fstPerm(3), false, false)
	pageAP := func(v uint64) func(e *env) { return word(l3+8, 0x4000_1000|dTable|dAF|shIS|ap(v)) }
	cases := []parCase{
		// One privilege level: AP[1] is ignored; AP[2] alone decides writes.
		{"EL2 AP=01 S1E2W", chain(el2Regime, pageAP(1)), at.S1E2W, stdVA, ok, 0, 0, false},
		{"EL2 AP=00 S1E2W", chain(el2Regime, pageAP(0)), at.S1E2W, stdVA, ok, 0, 0, false},
		{"EL2 AP=10 S1E2W", chain(el2Regime, pageAP(2)), at.S1E2W, stdVA, perm3, P, 3, false},
		{"EL2 AP=11 S1E2W", chain(el2Regime, pageAP(3)), at.S1E2W, stdVA, perm3, P, 3, false},
		{"EL2 AP=11 S1E2R", chain(el2Regime, pageAP(3)), at.S1E2R, stdVA, ok, 0, 0, false},
		// APTable[0] has no meaning with one privilege level; APTable[1] does.
		{"EL2 APTable=01 S1E2W", chain(el2Regime, pageAP(0), word(l1, l2|dTable|1<<61)), at.S1E2W, stdVA, ok, 0, 0, false},
		{"EL2 APTable=10 S1E2W", chain(el2Regime, pageAP(0), word(l1, l2|dTable|2<<61)), at.S1E2W, stdVA, perm3, P, 3, false},
		// PAN does not exist in the EL2 regime: PSTATE.PAN has no effect.
		{"EL2 with PSTATE.PAN=1", chain(el2Regime, pageAP(1), func(e *env) { e.ps.PAN = true }), at.S1E2R, stdVA, ok, 0, 0, false},
		// The EL2 regime ignores SCTLR_EL1 and TCR_EL1.
		{"EL2 ignores TCR_EL1.EPD0", chain(el2Regime, tcr(func(v uint64) uint64 { return v | 1<<7 })), at.S1E2R, stdVA, ok, 0, 0, false},
		// TCR_EL2 (E2H=0) TBI is bit 20.
		{"EL2 TBI tagged", chain(el2Regime, func(e *env) { e.r.TCR_EL2 |= 1 << 20 }), at.S1E2R, 0x7700_0000_0000_1234, ok, 0, 0, false},
		{"EL2 untagged TBI=0", el2Regime, at.S1E2R, 0x7700_0000_0000_1234, fpar(fstTrans(0), false, false), vmsa.FaultTranslation, 0, false},
		// There is no TTBR1_EL2 with E2H=0: VA[55]=1 is simply out of range.
		{"EL2 upper VA out of range", el2Regime, at.S1E2R, 0xffff_ffff_ffff_f234, fpar(fstTrans(0), false, false), vmsa.FaultTranslation, 0, false},
	}
	runPAR(t, cases)
}

func TestStage2Permissions(t *testing.T) {
	P := vmsa.FaultPermission
	ok := spar(0x4000_1000, 0xff, 3)
	// Stage 1 off: Device-nGnRnE output, which wins over stage-2 Normal.
	okDev := spar(0x4000_1000, 0x00, 2)
	page := func(s uint64) func(e *env) {
		return func(e *env) { e.s2page(0x4000_1000, 0x4000_1000|dTable|s2attr(0xf)|s2ap(s)|shIS|dAF) }
	}
	perm := fpar(fstPerm(3), true, false)
	cases := []parCase{
		// S2AP[0] is read, S2AP[1] write.
		{"S2AP=00 read", chain(s2only, page(0)), at.S12E1R, 0x4000_1000, perm, P, 3, true},
		{"S2AP=00 write", chain(s2only, page(0)), at.S12E1W, 0x4000_1000, perm, P, 3, true},
		{"S2AP=01 read", chain(s2only, page(1)), at.S12E1R, 0x4000_1000, okDev, 0, 0, false},
		{"S2AP=01 write", chain(s2only, page(1)), at.S12E1W, 0x4000_1000, perm, P, 3, true},
		{"S2AP=10 read", chain(s2only, page(2)), at.S12E1R, 0x4000_1000, perm, P, 3, true},
		{"S2AP=10 write", chain(s2only, page(2)), at.S12E1W, 0x4000_1000, okDev, 0, 0, false},
		{"S2AP=11 write", chain(s2only, page(3)), at.S12E1W, 0x4000_1000, okDev, 0, 0, false},
		{"S2AP=01 S12E0W", chain(s2only, page(1)), at.S12E0W, 0x4000_1000, perm, P, 3, true},
		// Stage 2 applies to the final IPA of S12E1R, stage 1 on: S=1, PTW=0.
		{"S12E1R, S1 ok, S2 read-denied", chain(s1, s2only, page(0)), at.S12E1R, stdVA, perm, P, 3, true},
		// S1E1R stops at stage 1: stage-2 permissions of the output do not matter.
		{"S1E1R ignores final S2 permission", chain(s1, s2only, page(0)), at.S1E1R, stdVA, ok, 0, 0, false},
	}
	runPAR(t, cases)
}

// TestStage2OnStage1Walk: a stage-1 table's IPA goes through stage 2
// (AArch64.S2Translate for AccessType_TTW); its faults carry s2fs1walk.
func TestStage2OnStage1Walk(t *testing.T) {
	hole := func(ipa uint64) func(e *env) { return func(e *env) { e.s2page(ipa, 0) } }
	cases := []parCase{
		// S1E1R from EL2 with HCR_EL2.VM=1: PAR F=1, S=1, PTW=1, FST the stage-2 fault.
		{"L0 table IPA unmapped (S2 L3)", chain(s1, s2only, hole(l0)), at.S1E1R, stdVA, fpar(fstTrans(3), true, true), vmsa.FaultTranslation, 3, true},
		{"L2 table IPA unmapped (S2 L3)", chain(s1, s2only, hole(l2)), at.S1E1R, stdVA, fpar(fstTrans(3), true, true), vmsa.FaultTranslation, 3, true},
		{"L1 table IPA unmapped (S2 L2)", chain(s1, s2only, word(s2l2+(l1>>21&511)*8, 0)), at.S1E1R, stdVA, fpar(fstTrans(2), true, true), vmsa.FaultTranslation, 2, true},
		{"TTBR IPA outside the IPA space (S2 L0)", chain(s1, s2only, func(e *env) { e.r.TTBR0_EL1 = 0x1_0000_0000 }), at.S1E1R, stdVA, fpar(fstTrans(0), true, true), vmsa.FaultTranslation, 0, true},
		{"L3 table IPA: S2 access flag", chain(s1, s2only, func(e *env) { e.s2page(l3, l3|dTable|s2attr(0xf)|s2ap(3)|shIS) }), at.S1E1R, stdVA, fpar(fstAF(3), true, true), vmsa.FaultAccessFlag, 3, true},
		// A stage-1 walk is a read at stage 2: S2AP[0]=0 is a permission fault.
		{"L3 table IPA: S2 no read", chain(s1, s2only, func(e *env) { e.s2page(l3, l3|dTable|s2attr(0xf)|s2ap(2)|shIS|dAF) }), at.S1E1R, stdVA, fpar(fstPerm(3), true, true), vmsa.FaultPermission, 3, true},
		// HCR_EL2.PTW=1: a stage-1 walk to stage-2 Device memory is a stage-2
		// permission fault (AArch64.S2CheckPermissions) reported at the level
		// of the stage-2 leaf (QEMU 10.0 reports level 0); PTW=0 allows it.
		{"PTW=1 table in S2 Device", chain(s1, s2only, func(e *env) {
			e.r.HCR_EL2 |= sysreg.HCR_PTW
			e.set(s2l2+(l2>>21&511)*8, (l2&^(1<<21-1))|dBlock|s2attr(0x1)|s2ap(3)|dAF)
		}), at.S1E1R, stdVA, fpar(fstPerm(2), true, true), vmsa.FaultPermission, 2, true},
		{"PTW=0 table in S2 Device", chain(s1, s2only, func(e *env) {
			e.set(s2l2+(l2>>21&511)*8, (l2&^(1<<21-1))|dBlock|s2attr(0x1)|s2ap(3)|dAF)
		}), at.S1E1R, stdVA, spar(0x4000_1000, 0xff, 3), 0, 0, false},
		// With PTW=1, Normal stage-2 memory is fine.
		{"PTW=1 table in S2 Normal", chain(s1, s2only, func(e *env) { e.r.HCR_EL2 |= sysreg.HCR_PTW }), at.S1E1R, stdVA, spar(0x4000_1000, 0xff, 3), 0, 0, false},
		// S12E1R: a stage-2 fault on the final IPA has PTW=0.
		{"S12E1R final IPA unmapped", chain(s1, s2only, hole(0x4000_1000)), at.S12E1R, stdVA, fpar(fstTrans(3), true, false), vmsa.FaultTranslation, 3, true},
		{"S1E1R final IPA unmapped is fine", chain(s1, s2only, hole(0x4000_1000)), at.S1E1R, stdVA, spar(0x4000_1000, 0xff, 3), 0, 0, false},
	}
	runPAR(t, cases)
}

func TestStage2FaultOnWalkFromEL1IsTaken(t *testing.T) {
	e := newEnv(t)
	e.s1std()
	e.s2std()
	e.s2page(l2, 0) // the L2 table's IPA has no stage-2 mapping
	e.ps = at.PSTATE{EL: 1}
	res := at.Execute(&e.w, &e.r, e.ps, at.S1E1R, stdVA, 0x1234_0000)
	if !res.Taken {
		t.Fatalf("AT S1E1R at EL1 with a stage-2 fault on the walk wrote PAR %#x, want an exception to EL2", uint64(res.PAR))
	}
	x := res.Exception
	if x.Kind != at.DataAbort || x.TargetEL != 2 {
		t.Errorf("exception %v to EL%d, want DataAbort to EL2", x.Kind, x.TargetEL)
	}
	// Data Abort from a lower EL: EC 0x24, IL; ISS: CM (bit 8), S1PTW (bit
	// 7), WnR (bit 6: always 1 for faults on address translation
	// instructions), DFSC = translation fault at stage-2 level 3.
	if want := uint64(0x24)<<26 | 1<<25 | 1<<8 | 1<<7 | 1<<6 | fstTrans(3); uint64(x.ESR) != want {
		t.Errorf("ESR_EL2 = %#x, want %#x", uint64(x.ESR), want)
	}
	// HPFAR_EL2.FIPA (bits [43:4]) = IPA[51:12] of the table; FAR = the VA.
	if uint64(x.HPFAR) != (l2>>12)<<4 || !x.HPFARValid {
		t.Errorf("HPFAR_EL2 = %#x, want %#x", uint64(x.HPFAR), (l2>>12)<<4)
	}
	if x.FAR != stdVA {
		t.Errorf("FAR = %#x, want %#x", x.FAR, uint64(stdVA))
	}
	if res.PAR != 0x1234_0000 {
		t.Errorf("PAR changed to %#x by a taken exception", uint64(res.PAR))
	}
}

// TestExternalAbortOnWalk: a descriptor read outside RAM is a synchronous
// External abort on the walk, which an AT instruction takes as a Data
// Abort instead of reporting it in PAR_EL1.
func TestExternalAbortOnWalk(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(e *env)
		op     at.Op
		va     uint64
		el     uint8
		target uint8
		ec     uint8
		fsc    uint64
		s1ptw  bool
	}{
		{"S1 L0 table outside RAM", chain(s1, func(e *env) { e.r.TTBR0_EL1 = 0x8000_0000 }), at.S1E1R, stdVA, 2, 2, 0x25, fstSEA(0), false},
		{"S1 L2 table outside RAM", chain(s1, word(l1, 0x8000_0000|dTable)), at.S1E1R, stdVA, 2, 2, 0x25, fstSEA(2), false},
		{"S1 L3 table outside RAM", chain(s1, word(l2, 0x8000_0000|dTable)), at.S1E1R, stdVA, 2, 2, 0x25, fstSEA(3), false},
		{"S1 L-1 table outside RAM", chain(ds4k, func(e *env) { e.r.TTBR0_EL1 = 0x8000_0000 }), at.S1E1R, stdVA, 2, 2, 0x25, fstSEA(-1), false},
		// AT executed at EL1, no stage 2: taken to EL1 as a same-EL Data Abort.
		{"S1 at EL1", chain(s1, word(l1, 0x8000_0000|dTable)), at.S1E1R, stdVA, 1, 1, 0x25, fstSEA(2), false},
		// Stage-2 table outside RAM, for the final IPA (S12E1R at EL2).
		{"S2 VTTBR outside RAM", chain(s2only, func(e *env) { e.r.VTTBR_EL2 = 0x8000_0000 }), at.S12E1R, 0x4000_1000, 2, 2, 0x25, fstSEA(1), false},
		{"S2 L2 table outside RAM", chain(s2only, word(s2l1+8, 0x8000_0000|dTable)), at.S12E1R, 0x4000_1000, 2, 2, 0x25, fstSEA(2), false},
		// Stage-2 table outside RAM while translating a stage-1 table (S1PTW).
		{"S2 table outside RAM on S1 walk", chain(s1, s2only, word(s2l1+8, 0x8000_0000|dTable)), at.S1E1R, stdVA, 2, 2, 0x25, fstSEA(2), true},
		// Stage-1 table IPA maps (via stage 2) to a PA outside RAM.
		{"S1 table PA outside RAM", chain(s1, s2only, func(e *env) { e.s2page(l3, 0x8000_0000|dTable|s2attr(0xf)|s2ap(3)|shIS|dAF) }), at.S1E1R, stdVA, 2, 2, 0x25, fstSEA(3), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			c.setup(e)
			e.ps.EL = c.el
			res := at.Execute(&e.w, &e.r, e.ps, c.op, c.va, 0x77)
			if !res.Taken {
				t.Fatalf("AT %s wrote PAR %#x; want a Data Abort", c.op, uint64(res.PAR))
			}
			x := res.Exception
			if x.Kind != at.DataAbort || x.TargetEL != c.target {
				t.Errorf("exception %v to EL%d, want DataAbort to EL%d", x.Kind, x.TargetEL, c.target)
			}
			// ISS: CM=1 and WnR=1 for an address translation instruction.
			want := uint64(c.ec)<<26 | 1<<25 | 1<<8 | 1<<6 | c.fsc
			if c.s1ptw {
				want |= 1 << 7
			}
			if uint64(x.ESR) != want {
				t.Errorf("ESR = %#x, want %#x", uint64(x.ESR), want)
			}
			if x.FAR != c.va {
				t.Errorf("FAR = %#x, want %#x", x.FAR, c.va)
			}
			if res.PAR != 0x77 {
				t.Errorf("PAR = %#x, want unchanged 0x77", uint64(res.PAR))
			}
		})
	}
}

// The ISS of a trapped AT (EC 0x18) encodes the System instruction:
// Op0 [21:20], Op2 [19:17], Op1 [16:14], CRn [13:10], Rt [9:5], CRm [4:1],
// Direction [0] (0 for SYS). AT S1E1R is op0=1 op1=0 CRn=7 CRm=8 op2=0;
// AT S12E1W is op0=1 op1=4 CRn=7 CRm=8 op2=5 (DDI 0487 C5.4).
func TestTrapISSEncodesInstruction(t *testing.T) {
	r := vmsa.DefaultRegs()
	r.HCR_EL2 = sysreg.HCR_RW | sysreg.HCR_AT | sysreg.HCR_NV
	w := &vmsa.Walker{Mem: nil}
	cases := []struct {
		op   at.Op
		rt   uint8
		want uint64
	}{
		{at.S1E1R, 3, 1<<20 | 0<<17 | 0<<14 | 7<<10 | 3<<5 | 8<<1},
		{at.S12E1W, 30, 1<<20 | 5<<17 | 4<<14 | 7<<10 | 30<<5 | 8<<1},
		{at.S1E1WP, 0, 1<<20 | 1<<17 | 0<<14 | 7<<10 | 0<<5 | 9<<1},
	}
	for _, c := range cases {
		res := at.ExecuteRt(w, &r, at.PSTATE{EL: 1}, c.op, 0x1000, c.rt, 0)
		if !res.Taken || res.Exception.Kind != at.TrapEL2 {
			t.Fatalf("%s at EL1 with HCR_EL2.AT/NV: %+v, want a trap", c.op, res)
		}
		esr := res.Exception.ESR
		if esr.EC() != 0x18 || uint64(esr.ISS()) != c.want {
			t.Errorf("%s X%d: ESR %#x (EC %#x ISS %#x), want EC 0x18 ISS %#x", c.op, c.rt, uint64(esr), esr.EC(), esr.ISS(), c.want)
		}
	}
}

// TestExternalAbortRouting: a synchronous External abort on the walk of an
// AT executed at EL1 is taken to EL1 unless HCR_EL2.TEA (or TGE) routes it
// to EL2 (AArch64.DataAbort: route_to_el2 = TGE or TEA for an External
// abort, or a second-stage fault), where it is a Data Abort from a lower
// EL (EC 0x24). HPFAR_EL2 is UNKNOWN for every External abort
// (AArch64.ReportException writes it only when IPAValid), also for one on
// the stage-2 walk of a stage-1 table, which goes to EL2 as a stage-2
// fault.
func TestExternalAbortRouting(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(e *env)
		hcr    sysreg.HCR
		target uint8
		ec     uint8
		fsc    uint64
		s1ptw  bool
	}{
		{"S1 table outside RAM, TEA=0", chain(s1, word(l1, 0x8000_0000|dTable)), 0, 1, 0x25, fstSEA(2), false},
		{"S1 table outside RAM, TEA=1", chain(s1, word(l1, 0x8000_0000|dTable)), sysreg.HCR_TEA, 2, 0x24, fstSEA(2), false},
		{"S2 table outside RAM on the S1 walk", chain(s1, s2only, word(s2l1+8, 0x8000_0000|dTable)), 0, 2, 0x24, fstSEA(2), true},
		{"S2 table outside RAM on the S1 walk, TEA=1", chain(s1, s2only, word(s2l1+8, 0x8000_0000|dTable)), sysreg.HCR_TEA, 2, 0x24, fstSEA(2), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			c.setup(e)
			e.r.HCR_EL2 |= c.hcr
			e.ps.EL = 1
			res := at.Execute(&e.w, &e.r, e.ps, at.S1E1R, stdVA, 0x77)
			x := res.Exception
			if !res.Taken || x.Kind != at.DataAbort || x.TargetEL != c.target {
				t.Fatalf("taken %v: %v to EL%d, want a Data Abort to EL%d", res.Taken, x.Kind, x.TargetEL, c.target)
			}
			want := uint64(c.ec)<<26 | 1<<25 | 1<<8 | 1<<6 | c.fsc
			if c.s1ptw {
				want |= 1 << 7
			}
			if uint64(x.ESR) != want || x.FAR != stdVA {
				t.Errorf("ESR %#x FAR %#x, want %#x %#x", uint64(x.ESR), x.FAR, want, uint64(stdVA))
			}
			if x.HPFARValid || x.HPFAR != 0 {
				t.Errorf("HPFAR_EL2 %#x (valid %v) for an External abort, want UNKNOWN", uint64(x.HPFAR), x.HPFARValid)
			}
		})
	}
}

// TestTakenATAllocatesNothing: an AT that traps to EL2, is UNDEFINED or
// takes a Data Abort allocates nothing (the exception's description is
// formatted only by String).
func TestTakenATAllocatesNothing(t *testing.T) {
	e := newEnv(t)
	e.s1std()
	trapped := e.r
	trapped.HCR_EL2 |= sysreg.HCR_AT | sysreg.HCR_NV
	abort := e.r
	e.set(l1, 0x8000_0000|dTable)
	for _, c := range []struct {
		name string
		r    *vmsa.Regs
		op   at.Op
		el   uint8
		kind at.ExceptionKind
	}{
		{"trap", &trapped, at.S1E1R, 1, at.TrapEL2},
		{"undefined", &abort, at.S12E1R, 1, at.Undefined},
		{"external abort", &abort, at.S1E1R, 2, at.DataAbort},
	} {
		var res at.Result
		n := testing.AllocsPerRun(100, func() {
			res = at.ExecuteRt(&e.w, c.r, at.PSTATE{EL: c.el}, c.op, stdVA, 3, 0)
		})
		if !res.Taken || res.Exception.Kind != c.kind {
			t.Fatalf("%s: %+v", c.name, res)
		}
		if n != 0 {
			t.Errorf("%s: %v allocations per AT", c.name, n)
		}
	}
}

package cpu_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// The rig adds to newMachine's mappings (all 4K pages at level 3, inside
// the same level-3 table as vaData):
const (
	// vaX1: AP=00 (EL1 read/write, no EL0 data access), UXN=1, PXN=0:
	// executable at EL1 only.
	vaX1 = 0x1234_9000
	// vaPXN: AP=10 (EL1 read-only), PXN=1, UXN=0: executable at EL0 only
	// (execute-only at EL0: EL0 instruction fetches check UXN, not AP[1]).
	vaPXN = 0x1234_a000
	// vaDev: AttrIndx=1 (MAIR_EL1.Attr1 = 0x00, Device-nGnRnE), AP=00.
	vaDev = 0x1234_b000
	// vaDevRO: Device-nGnRnE, AP=10 (EL1 read-only).
	vaDevRO = 0x1234_c000
	// vaS2Dev: Normal at stage 1, to s2DevIPA, which stage 2 maps as Device.
	vaS2Dev = 0x1234_d000
	// vaS2DevRO: Normal at stage 1, to s2DevROIPA (Device, S2AP read-only).
	vaS2DevRO = 0x1234_e000
	// vaS2XN: AP=00, UXN=0, PXN=0 (executable at EL1 and EL0), to s2XNIPA,
	// whose stage-2 XN field each case sets.
	vaS2XN = 0x1234_f000
	// vaExt: AP=01 (EL0 and EL1 read/write), to extOA, outside RAM.
	vaExt = 0x1235_0000
	// vaS1ROS2Dev: AP=10 (EL1 read-only) Normal at stage 1, to an IPA in
	// the stage-2 Device block.
	vaS1ROS2Dev = 0x1235_1000
	// vaS2Ext: AP=00 Normal at stage 1, to s2ExtIPA, which stage 2 maps
	// to a PA outside RAM.
	vaS2Ext = 0x1235_2000
	// vaX1Dev: AP=00, UXN=1, Device: executable at EL1 (instruction fetches
	// have no Device alignment rule).
	vaX1Dev = 0x1235_3000

	x1PA       = 0x4030_0000
	pxnPA      = 0x4030_1000
	devPA      = 0x4030_2000
	devROPA    = 0x4030_3000
	s2DevIPA   = 0x4100_0000 // a 2M stage-2 block, MemAttr 0b0001 (Device-nGnRE)
	s2DevROIPA = 0x4120_0000 // a 2M stage-2 block, Device-nGnRE, S2AP=01 (read-only)
	s2XNIPA    = 0x4140_0000 // a 2M stage-2 block, XN per case
	s2ExtIPA   = 0x4160_0000 // a 2M stage-2 block to extOA
	extOA      = 0x9000_0000 // outside RAM [0x4000_0000, 0x4800_0000)

	il = 1 << 25 // ESR_ELx.IL: a 32-bit instruction
)

// newRig is newMachine with the rig's mappings; with stage 2 the Device,
// XN and external blocks are remapped at stage 2.
func newRig(t testing.TB, stage2 bool) *machine {
	t.Helper()
	m := newMachine(t, stage2)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	s1 := []struct {
		va uint64
		l  desc.S1Leaf
	}{
		{vaX1, desc.S1Leaf{OA: x1PA, AP: 0b00, SH: 3, AF: true, UXN: true}},
		{vaPXN, desc.S1Leaf{OA: pxnPA, AP: 0b10, SH: 3, AF: true, PXN: true}},
		{vaDev, desc.S1Leaf{OA: devPA, AttrIndx: 1, AP: 0b00, AF: true}},
		{vaDevRO, desc.S1Leaf{OA: devROPA, AttrIndx: 1, AP: 0b10, AF: true}},
		{vaS2Dev, desc.S1Leaf{OA: s2DevIPA, AP: 0b00, SH: 3, AF: true}},
		{vaS2DevRO, desc.S1Leaf{OA: s2DevROIPA, AP: 0b00, SH: 3, AF: true}},
		{vaS2XN, desc.S1Leaf{OA: s2XNIPA, AP: 0b00, SH: 3, AF: true}},
		{vaExt, desc.S1Leaf{OA: extOA, AP: 0b01, SH: 3, AF: true}},
		{vaS1ROS2Dev, desc.S1Leaf{OA: s2DevIPA + 0x1000, AP: 0b10, SH: 3, AF: true}},
		{vaS2Ext, desc.S1Leaf{OA: s2ExtIPA, AP: 0b00, SH: 3, AF: true}},
		{vaX1Dev, desc.S1Leaf{OA: devPA, AttrIndx: 1, AP: 0b00, AF: true, UXN: true}},
	}
	for _, e := range s1 {
		must(m.s1.MapS1(e.va, 3, e.l))
	}
	if stage2 {
		must(m.s2.MapS2(s2DevIPA, 2, desc.S2Leaf{OA: s2DevIPA, MemAttr: 0b0001, S2AP: 3, AF: true}))
		must(m.s2.MapS2(s2DevROIPA, 2, desc.S2Leaf{OA: s2DevROIPA, MemAttr: 0b0001, S2AP: 1, AF: true}))
		must(m.s2.MapS2(s2ExtIPA, 2, desc.S2Leaf{OA: extOA, MemAttr: 0xf, S2AP: 3, SH: 3, AF: true}))
	}
	m.fresh()
	return m
}

// setS2XN remaps the stage-2 block of s2XNIPA with XN[1:0] = xn.
func (m *machine) setS2XN(xn uint) {
	if err := m.s2.MapS2(s2XNIPA, 2, desc.S2Leaf{OA: s2XNIPA, MemAttr: 0xf, S2AP: 3, SH: 3, AF: true, XN: xn}); err != nil {
		panic(err) // the rig's tables have room: a test bug
	}
}

// useEL20 points the EL2&0 regime at the EL1&0 tables: TCR_EL2 (E2H=1
// layout) = TCR_EL1, TTBR0_EL2 = TTBR0_EL1, SCTLR_EL2.M=1, SPAN=1, and
// sets HCR_EL2.E2H (and TGE when tge).
func useEL20(pe *cpu.PE, tge bool) {
	pe.Regs.TCR_EL2 = uint64(pe.Regs.TCR_EL1)
	pe.Regs.TTBR0_EL2 = pe.Regs.TTBR0_EL1
	pe.Regs.MAIR_EL2 = pe.Regs.MAIR_EL1
	pe.Regs.SCTLR_EL2 = 1 | 1<<23
	pe.Regs.HCR_EL2 |= sysreg.HCR_E2H
	if tge {
		pe.Regs.HCR_EL2 |= sysreg.HCR_TGE
	}
	pe.RegsChanged()
}

// setEL sets the PE's EL (and PSTATE.PAN) directly.
func setEL(pe *cpu.PE, el uint8, pan bool) {
	pe.EL, pe.PAN = el, pan
	pe.RegsChanged()
}

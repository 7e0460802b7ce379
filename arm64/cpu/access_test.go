package cpu_test

import (
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// excCase is the expected outcome of one access: no exception (target 0),
// or an exception to target with exactly esr, far and (stage 2) hpfar.
type excCase struct {
	target uint8
	esr    uint64
	far    uint64
	hpfar  uint64
}

// checkExc compares an access's exception and the PE state after it with
// want; from is the EL the access was made at.
func checkExc(t *testing.T, name string, pe *cpu.PE, from uint8, e cpu.Exception, want excCase) {
	t.Helper()
	if want.target == 0 {
		if e.Taken() {
			t.Errorf("%s: unexpected %s", name, e)
		}
		if pe.EL != from {
			t.Errorf("%s: EL%d after a successful access from EL%d", name, pe.EL, from)
		}
		return
	}
	if !e.Taken() {
		t.Errorf("%s: no exception, want ESR %#x to EL%d", name, want.esr, want.target)
		return
	}
	if e.TargetEL != want.target || uint64(e.ESR) != want.esr || e.FAR != mem.VA(want.far) || e.FromEL != from {
		t.Errorf("%s: %s (from EL%d), want EL%d ESR %#x FAR %#x", name, e, e.FromEL, want.target, want.esr, want.far)
	}
	// HPFAR_EL2: the IPA where IPAValid; on any other exception to EL2 it
	// is UNKNOWN (the PE's stand-in value); not written for EL1.
	wantHPFAR := want.hpfar
	if wantHPFAR == hpfarUnknown && want.target == 2 {
		wantHPFAR = uint64(cpu.DefaultUnknownHPFAR)
	}
	if uint64(e.HPFAR) != wantHPFAR {
		t.Errorf("%s: HPFAR %#x, want %#x", name, uint64(e.HPFAR), wantHPFAR)
	}
	// Exception entry: the target EL's ESR and FAR, and PSTATE.EL.
	if pe.EL != want.target || uint64(pe.ESR[want.target]) != want.esr || pe.FAR[want.target] != want.far {
		t.Errorf("%s: after entry EL%d ESR %#x FAR %#x", name, pe.EL, uint64(pe.ESR[want.target]), pe.FAR[want.target])
	}
	if want.target == 2 && uint64(pe.HPFAR) != wantHPFAR {
		t.Errorf("%s: HPFAR_EL2 %#x, want %#x", name, uint64(pe.HPFAR), wantHPFAR)
	}
	if err := pe.ERET(); err.Taken() || pe.EL != from {
		t.Errorf("%s: ERET to EL%d (%v), want EL%d", name, pe.EL, err, from)
	}
	if from < 2 && pe.HPFAR != cpu.DefaultUnknownHPFAR {
		t.Errorf("%s: HPFAR_EL2 %#x after returning to EL%d, want UNKNOWN", name, uint64(pe.HPFAR), from)
	}
}

func hpfar(ipa uint64) uint64 { return ipa >> 12 << 4 } // HPFAR_EL2.FIPA = IPA[51:12] at [43:4]

// hpfarUnknown expects HPFAR_EL2 UNKNOWN (pseudocode IPAValid false: a
// stage-2 Permission fault not on a stage-1 walk, a stage-2 Alignment
// fault, an External abort, a stage-1 fault) for an exception to EL2.
const hpfarUnknown = 0

// Instruction fetches: execute permissions at each stage, Instruction Abort
// syndromes (ESR_ELx ISS encoding for an exception from an Instruction
// Abort: IFSC [5:0], S1PTW [7], no WnR and no ISV), and routing
// (AArch64.InstructionAbort: to EL2 for stage-2 faults and HCR_EL2.TGE).
func TestFetch(t *testing.T) {
	const insn = 0xd503201f // NOP
	type tc struct {
		name   string
		stage2 bool
		el     uint8
		setup  func(m *machine)
		va     uint64
		pa     uint64 // where the instruction is, for a successful fetch
		want   excCase
	}
	cases := []tc{
		// AArch64.S1DirectBasePermissions: UXN=1 forbids EL0 execution;
		// AP=00 with PXN=0 allows EL1 execution.
		{name: "EL1 fetch of an EL1-executable page", el: 1, va: vaX1 + 4, pa: x1PA + 4},
		{name: "EL0 fetch of a UXN page", el: 0, va: vaX1, want: excCase{1, 0x20<<26 | il | 0b001111, vaX1, 0}},
		// A location writable at EL0 is privileged execute-never.
		{name: "EL1 fetch of an EL0-writable page", el: 1, va: vaData, want: excCase{1, 0x21<<26 | il | 0b001111, vaData, 0}},
		{name: "EL0 fetch of an EL0-writable page", el: 0, va: vaData + 8, pa: dataIPA + 8},
		{name: "EL1 fetch of a PXN page", el: 1, va: vaPXN, want: excCase{1, 0x21<<26 | il | 0b001111, vaPXN, 0}},
		// EL0 instruction fetches check UXN only: execute-only memory.
		{name: "EL0 fetch of an EL0-execute-only page", el: 0, va: vaPXN, pa: pxnPA},
		// PSTATE.PAN restricts data accesses only.
		{name: "EL1 fetch with PAN", el: 1, va: vaX1, pa: x1PA, setup: func(m *machine) { m.pe.PAN = true }},
		// Instruction fetches have no Device alignment rule
		// (AArch64.S1HasAlignmentFault returns FALSE for IFETCH).
		{name: "EL1 fetch from Device", el: 1, va: vaX1Dev + 4, pa: devPA + 4},
		{name: "EL1 translation fault", el: 1, va: vaHole + 0x10, want: excCase{1, 0x21<<26 | il | 0b000111, vaHole + 0x10, 0}},
		{name: "EL0 translation fault", el: 0, va: vaHole, want: excCase{1, 0x20<<26 | il | 0b000111, vaHole, 0}},
		// AArch64.VAIsOutOfRange with TCR_EL1.TBI0=0 (AArch64.AddrTop is
		// bit 63): a nonzero top byte is a level 0 Translation fault.
		{name: "EL1 fetch out of VA range", el: 1, va: 1<<56 | vaX1, want: excCase{1, 0x21<<26 | il | 0b000100, 1<<56 | vaX1, 0}},
		// AArch64.PCAlignmentFault: EC 0x22, FAR = PC, to EL1 (EL2 with TGE).
		{name: "PC alignment EL1", el: 1, va: vaX1 + 2, want: excCase{1, 0x22<<26 | il, vaX1 + 2, 0}},
		{name: "PC alignment EL0", el: 0, va: vaX1 + 1, want: excCase{1, 0x22<<26 | il, vaX1 + 1, 0}},
		{name: "PC alignment EL0 TGE", el: 0, va: vaX1 + 3, want: excCase{2, 0x22<<26 | il, vaX1 + 3, 0},
			setup: func(m *machine) { m.pe.Regs.HCR_EL2 |= sysreg.HCR_TGE }},
		// A fetch from an address with no memory: synchronous External
		// abort, IFSC 0b010000.
		{name: "EL1 external abort", el: 1, va: vaExt, want: excCase{1, 0x21<<26 | il | 0b010000, vaExt, 0},
			setup: func(m *machine) {
				// vaExt is EL0-writable, hence PXN: make it executable.
				if err := m.s1.MapS1(vaExt, 3, s1leaf(extOA, 0b00)); err != nil {
					panic(err)
				}
			}},
		// Stage 1 disabled: instruction fetches are to Normal memory and
		// executable (AArch64.S1DisabledOutput).
		{name: "EL1 fetch with stage 1 off", el: 1, va: dataIPA + 0x20, pa: dataIPA + 0x20,
			setup: func(m *machine) { m.pe.Regs.SCTLR_EL1 = 0 }},
		{name: "EL2 fetch with stage 1 off", el: 2, va: dataIPA + 0x24, pa: dataIPA + 0x24},
		// EL2&0 with {E2H,TGE}={1,1}: EL0 faults go to EL2 (EC 0x20).
		{name: "EL0 in EL2&0 translation fault", el: 0, va: vaHole, want: excCase{2, 0x20<<26 | il | 0b000111, vaHole, 0},
			setup: func(m *machine) { useEL20(m.pe, true) }},
		{name: "EL2 in EL2&0 fetch", el: 2, va: vaX1, pa: x1PA, setup: func(m *machine) { useEL20(m.pe, false) }},

		// Stage 2 (AArch64.S2Translate; to EL2, EC 0x20; HPFAR_EL2 holds
		// the IPA of a Translation fault, and is UNKNOWN for a Permission
		// fault not on a stage-1 walk: IPAValid).
		{name: "s2 EL1 fetch ok", stage2: true, el: 1, va: vaX1, pa: x1PA},
		{name: "s2 EL1 translation fault", stage2: true, el: 1, va: vaS2Hole + 4,
			want: excCase{2, 0x20<<26 | il | 0b000110, vaS2Hole + 4, hpfar(holeIPA)},
			setup: func(m *machine) {
				_ = m.s1.MapS1(vaS2Hole, 3, s1leaf(holeIPA, 0b00)) // not EL0-writable: EL1-executable
			}},
		{name: "s2 EL0 translation fault", stage2: true, el: 0, va: vaS2Hole,
			want: excCase{2, 0x20<<26 | il | 0b000110, vaS2Hole, hpfar(holeIPA)},
			setup: func(m *machine) {
				_ = m.s1.MapS1(vaS2Hole, 3, s1leaf(holeIPA, 0b00)) // UXN=0: EL0-executable
			}},
		// Stage-2 XN[1:0] with FEAT_XNX (ID_AA64MMFR1_EL1.XNX=1):
		// 00 both executable, 01 EL1 not, 10 neither, 11 EL0 not.
		{name: "s2 XN=00 EL1", stage2: true, el: 1, va: vaS2XN, pa: s2XNIPA, setup: xn(0)},
		{name: "s2 XN=10 EL1", stage2: true, el: 1, va: vaS2XN, setup: xn(2),
			want: excCase{2, 0x20<<26 | il | 0b001110, vaS2XN, hpfarUnknown}},
		{name: "s2 XN=10 EL0", stage2: true, el: 0, va: vaS2XN + 8, setup: xn(2),
			want: excCase{2, 0x20<<26 | il | 0b001110, vaS2XN + 8, hpfarUnknown}},
		{name: "s2 XN=01 EL1", stage2: true, el: 1, va: vaS2XN, setup: xn(1),
			want: excCase{2, 0x20<<26 | il | 0b001110, vaS2XN, hpfarUnknown}},
		{name: "s2 XN=01 EL0", stage2: true, el: 0, va: vaS2XN, pa: s2XNIPA, setup: xn(1)},
		{name: "s2 XN=11 EL1", stage2: true, el: 1, va: vaS2XN, pa: s2XNIPA, setup: xn(3)},
		{name: "s2 XN=11 EL0", stage2: true, el: 0, va: vaS2XN, setup: xn(3),
			want: excCase{2, 0x20<<26 | il | 0b001110, vaS2XN, hpfarUnknown}},
		// Without FEAT_XNX, XN[0] is ignored: only XN[1] counts.
		{name: "s2 XN=01 EL1 no XNX", stage2: true, el: 1, va: vaS2XN, pa: s2XNIPA, setup: noXNX(1)},
		{name: "s2 XN=11 EL1 no XNX", stage2: true, el: 1, va: vaS2XN, setup: noXNX(3),
			want: excCase{2, 0x20<<26 | il | 0b001110, vaS2XN, hpfarUnknown}},
		// A PA without memory after stage 2: not a stage-2 fault, so to EL1.
		{name: "s2 external abort", stage2: true, el: 1, va: vaS2Ext, want: excCase{1, 0x21<<26 | il | 0b010000, vaS2Ext, 0}},
		// HCR_EL2.TEA routes synchronous External aborts to EL2 (EC 0x20).
		{name: "s2 external abort TEA", stage2: true, el: 1, va: vaS2Ext, want: excCase{2, 0x20<<26 | il | 0b010000, vaS2Ext, 0},
			setup: func(m *machine) { m.pe.Regs.HCR_EL2 |= 1 << 37 }},
	}
	ms := [2]*machine{newRig(t, false), newRig(t, true)}
	for _, c := range cases {
		m := ms[b2i(c.stage2)]
		pe := m.fresh()
		if m.s2 != nil {
			m.setS2XN(0)
		}
		if c.setup != nil {
			c.setup(m)
		}
		setEL(pe, c.el, pe.PAN)
		if c.want.target == 0 {
			if err := m.ram.Write(mem.PA(c.pa), 4, insn); !err {
				t.Fatalf("%s: cannot store the instruction at %#x", c.name, c.pa)
			}
		}
		v, e := pe.Fetch(mem.VA(c.va))
		checkExc(t, c.name, pe, c.el, e, c.want)
		if c.want.target == 0 && v != insn {
			t.Errorf("%s: fetched %#x, want %#x", c.name, v, insn)
		}
		if c.want.target != 0 && (e.Kind != cpu.InstructionAbort || v != 0) {
			t.Errorf("%s: kind %s value %#x, want an instruction abort and 0", c.name, e.Kind, v)
		}
		if pe.Stats.Fetches != 1 {
			t.Errorf("%s: Stats.Fetches %d", c.name, pe.Stats.Fetches)
		}
		// Restore the tables the case changed.
		_ = m.s1.MapS1(vaExt, 3, s1leaf(extOA, 0b01))
		_ = m.s1.MapS1(vaS2Hole, 3, s1leaf(holeIPA, 0b01))
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func xn(v uint) func(*machine) {
	return func(m *machine) { m.setS2XN(v) }
}

func noXNX(v uint) func(*machine) {
	return func(m *machine) {
		m.setS2XN(v)
		m.pe.Regs.MMFR1 &^= 0xf << 28 // ID_AA64MMFR1_EL1.XNX
	}
}

// Data accesses: alignment (AArch64.CheckAlignment before translation,
// AArch64.S1HasAlignmentFault / S2HasAlignmentFault for Device memory
// after each stage's walk and before its permissions), page-crossing
// accesses, and synchronous External aborts. DFSC 0b100001 is an
// Alignment fault, 0b010000 a synchronous External abort not on a walk.
func TestDataAccessFaults(t *testing.T) {
	type tc struct {
		name   string
		stage2 bool
		el     uint8
		setup  func(pe *cpu.PE)
		va     uint64
		size   int
		write  bool
		insn   cpu.Insn
		want   excCase
		ext    bool // want Exception.External
	}
	const (
		dabtSame  = 0x25 << 26
		dabtLower = 0x24 << 26
		wnr       = 1 << 6
		align     = 0b100001
	)
	sctlrA := func(pe *cpu.PE) { pe.Regs.SCTLR_EL1 |= 1 << 1 }
	acqrel := cpu.Insn{Valid: true, AcqRel: true}
	cases := []tc{
		// SCTLR_EL1.A=1: every unaligned access faults, of any size.
		{name: "A=1 halfword", el: 1, setup: sctlrA, va: vaData + 1, size: 2, want: excCase{1, dabtSame | il | align, vaData + 1, 0}},
		{name: "A=1 word store", el: 1, setup: sctlrA, va: vaData + 2, size: 4, write: true, want: excCase{1, dabtSame | il | wnr | align, vaData + 2, 0}},
		{name: "A=1 doubleword", el: 1, setup: sctlrA, va: vaData + 4, size: 8, want: excCase{1, dabtSame | il | align, vaData + 4, 0}},
		{name: "A=1 byte", el: 1, setup: sctlrA, va: vaData + 7, size: 1},
		{name: "A=1 aligned doubleword", el: 1, setup: sctlrA, va: vaData + 8, size: 8},
		{name: "A=1 EL0", el: 0, setup: sctlrA, va: vaData + 3, size: 4, want: excCase{1, dabtLower | il | align, vaData + 3, 0}},
		// The alignment check precedes translation: even an out-of-range VA
		// reports the Alignment fault, and never a stage-2 one.
		{name: "A=1 before VA range", el: 1, setup: sctlrA, va: 1<<50 | 1, size: 2, want: excCase{1, dabtSame | il | align, 1<<50 | 1, 0}},
		{name: "A=1 before stage 2", stage2: true, el: 1, setup: sctlrA, va: vaS2Hole + 1, size: 2,
			insn: cpu.Insn{Valid: true, Reg: 1}, want: excCase{1, dabtSame | il | align, vaS2Hole + 1, 0}},
		// SCTLR[] is the regime's: SCTLR_EL2 for EL2&0 (also at EL0 with
		// {E2H,TGE}={1,1}), where TGE routes EL0 faults to EL2.
		{name: "EL2&0 EL0 SCTLR_EL2.A", el: 0, va: vaData + 3, size: 4, want: excCase{2, dabtLower | il | align, vaData + 3, 0},
			setup: func(pe *cpu.PE) { useEL20(pe, true); pe.Regs.SCTLR_EL2 |= 1 << 1 }},
		{name: "EL2&0 EL0 ignores SCTLR_EL1.A", el: 0, va: vaData + 3, size: 4,
			setup: func(pe *cpu.PE) { useEL20(pe, true); pe.Regs.SCTLR_EL1 |= 1 << 1 }},
		{name: "EL2&0 EL2 SCTLR_EL2.A", el: 2, va: vaData + 6, size: 4, write: true, want: excCase{2, dabtSame | il | wnr | align, vaData + 6, 0},
			setup: func(pe *cpu.PE) { useEL20(pe, false); pe.Regs.SCTLR_EL2 |= 1 << 1 }},
		// Load-acquire/store-release: checked whatever A is; with FEAT_LSE2
		// (ID_AA64MMFR2_EL1.AT=1) only when the access leaves its aligned
		// 16-byte quantity and SCTLR_ELx.nAA is 0.
		{name: "acqrel within 16 bytes LSE2", el: 1, va: vaData + 4, size: 8, insn: acqrel},
		{name: "acqrel across 16 bytes LSE2", el: 1, va: vaData + 12, size: 8, insn: acqrel, want: excCase{1, dabtSame | il | align, vaData + 12, 0}},
		{name: "acqrel across 16 bytes nAA=1", el: 1, va: vaData + 12, size: 8, insn: acqrel,
			setup: func(pe *cpu.PE) { pe.Regs.SCTLR_EL1 |= 1 << 6 }},
		{name: "acqrel without LSE2", el: 1, va: vaData + 4, size: 8, insn: acqrel, want: excCase{1, dabtSame | il | align, vaData + 4, 0},
			setup: func(pe *cpu.PE) { pe.Regs.MMFR2 &^= 0xf << 32 }},
		{name: "acqrel store without LSE2", el: 1, va: vaData + 1, size: 2, write: true, insn: acqrel,
			want: excCase{1, dabtSame | il | wnr | align, vaData + 1, 0}, setup: func(pe *cpu.PE) { pe.Regs.MMFR2 &^= 0xf << 32 }},
		// Model convention: AR is only known from a valid syndrome.
		{name: "AR without a valid syndrome", el: 1, va: vaData + 4, size: 8, insn: cpu.Insn{AcqRel: true},
			setup: func(pe *cpu.PE) { pe.Regs.MMFR2 &^= 0xf << 32 }},

		// Device memory: unaligned accesses fault with A=0.
		{name: "Device unaligned", el: 1, va: vaDev + 1, size: 2, want: excCase{1, dabtSame | il | align, vaDev + 1, 0}},
		{name: "Device aligned", el: 1, va: vaDev + 8, size: 8},
		{name: "Device byte", el: 1, va: vaDev + 3, size: 1},
		// The alignment check comes before the permission check.
		{name: "Device read-only unaligned store", el: 1, va: vaDevRO + 2, size: 4, write: true, want: excCase{1, dabtSame | il | wnr | align, vaDevRO + 2, 0}},
		{name: "Device read-only aligned store", el: 1, va: vaDevRO + 4, size: 4, write: true, want: excCase{1, dabtSame | il | wnr | 0b001111, vaDevRO + 4, 0}},
		// ... and after the walk: a translation fault wins.
		{name: "unaligned translation fault", el: 1, va: vaHole + 1, size: 2, want: excCase{1, dabtSame | il | 0b000111, vaHole + 1, 0}},
		// Stage 1 disabled: data accesses are Device-nGnRnE.
		{name: "MMU off unaligned", el: 1, va: dataIPA + 1, size: 2, want: excCase{1, dabtSame | il | align, dataIPA + 1, 0},
			setup: func(pe *cpu.PE) { pe.Regs.SCTLR_EL1 = 0 }},
		{name: "MMU off aligned", el: 1, va: dataIPA, size: 8, setup: func(pe *cpu.PE) { pe.Regs.SCTLR_EL1 = 0 }},
		{name: "EL2 MMU off unaligned", el: 2, va: dataIPA + 2, size: 4, want: excCase{2, dabtSame | il | align, dataIPA + 2, 0}},
		{name: "s2 MMU off unaligned", stage2: true, el: 1, va: dataIPA + 1, size: 2, want: excCase{1, dabtSame | il | align, dataIPA + 1, 0},
			setup: func(pe *cpu.PE) { pe.Regs.SCTLR_EL1 = 0 }},
		// HCR_EL2.DC=1 makes stage-1-disabled accesses Normal Write-Back.
		{name: "s2 MMU off DC unaligned", stage2: true, el: 1, va: dataIPA + 1, size: 2,
			setup: func(pe *cpu.PE) { pe.Regs.SCTLR_EL1 = 0; pe.Regs.HCR_EL2 |= sysreg.HCR_DC }},
		{name: "s2 Normal unaligned", stage2: true, el: 1, va: vaData + 1, size: 4},
		// Stage 2 Device: a stage-2 Alignment fault, to EL2 with the
		// instruction syndrome (AArch64.FaultSyndrome: ISV for any stage-2
		// fault not on a stage-1 walk) and HPFAR_EL2 UNKNOWN (IPAValid
		// lists no Alignment fault).
		{name: "s2 Device unaligned", stage2: true, el: 1, va: vaS2Dev + 1, size: 4, insn: cpu.Insn{Valid: true, Reg: 2},
			want: excCase{2, dabtLower | il | 1<<24 | 2<<22 | 2<<16 | align, vaS2Dev + 1, hpfarUnknown}},
		{name: "s2 Device aligned", stage2: true, el: 1, va: vaS2Dev + 8, size: 8},
		{name: "s2 Device read-only unaligned store", stage2: true, el: 1, va: vaS2DevRO + 1, size: 2, write: true,
			want: excCase{2, dabtLower | il | wnr | align, vaS2DevRO + 1, hpfarUnknown}},
		{name: "s2 Device read-only aligned store", stage2: true, el: 1, va: vaS2DevRO + 2, size: 2, write: true,
			want: excCase{2, dabtLower | il | wnr | 0b001110, vaS2DevRO + 2, hpfarUnknown}},
		// Stage-1 permissions come before anything at stage 2.
		{name: "s1 read-only over s2 Device unaligned store", stage2: true, el: 1, va: vaS1ROS2Dev + 1, size: 2, write: true,
			want: excCase{1, dabtSame | il | wnr | 0b001111, vaS1ROS2Dev + 1, 0}},
		{name: "s1 read-only over s2 Device unaligned load", stage2: true, el: 1, va: vaS1ROS2Dev + 1, size: 2,
			want: excCase{2, dabtLower | il | align, vaS1ROS2Dev + 1, hpfarUnknown}},
		{name: "unaligned s2 translation fault", stage2: true, el: 1, va: vaS2Hole + 1, size: 2,
			want: excCase{2, dabtLower | il | 0b000110, vaS2Hole + 1, hpfar(holeIPA)}},

		// Page-crossing accesses: one access per byte; a fault reports the
		// faulting byte's address.
		{name: "crossing into a mapped page", el: 1, va: vaData + 0xffc, size: 8},
		{name: "crossing into a hole", el: 1, va: vaRO + 0xffe, size: 4, want: excCase{1, dabtSame | il | 0b000111, vaHole, 0}},
		{name: "store crossing into read-only", el: 1, va: vaData + 0xfff, size: 2, write: true, want: excCase{1, dabtSame | il | wnr | 0b001111, vaRO, 0}},
		{name: "crossing with A=1", el: 1, setup: sctlrA, va: vaData + 0xffc, size: 8, want: excCase{1, dabtSame | il | align, vaData + 0xffc, 0}},
		// Each byte is unaligned as far as Device memory goes (Mem[] passes
		// aligned=FALSE to every byte): the first byte already faults.
		{name: "crossing from stage-2 Device", stage2: true, el: 1, va: vaS2Dev + 0xffe, size: 4,
			want: excCase{2, dabtLower | il | align, vaS2Dev + 0xffe, hpfarUnknown}},

		// Synchronous External abort on the access (no memory at the PA).
		// ISS.EA is IMPLEMENTATION DEFINED; the model reports 0.
		{name: "external load", el: 1, va: vaExt + 8, size: 8, want: excCase{1, dabtSame | il | 0b010000, vaExt + 8, 0}, ext: true},
		{name: "external store", el: 1, va: vaExt, size: 4, write: true, want: excCase{1, dabtSame | il | wnr | 0b010000, vaExt, 0}, ext: true},
		{name: "external EL0", el: 0, va: vaExt, size: 1, want: excCase{1, dabtLower | il | 0b010000, vaExt, 0}, ext: true},
		{name: "external TEA", el: 1, va: vaExt, size: 2, want: excCase{2, dabtLower | il | 0b010000, vaExt, 0}, ext: true,
			setup: func(pe *cpu.PE) { pe.Regs.HCR_EL2 |= 1 << 37 }},
		{name: "external after stage 2", stage2: true, el: 1, va: vaS2Ext + 4, size: 4, insn: cpu.Insn{Valid: true, Reg: 5},
			want: excCase{1, dabtSame | il | 0b010000, vaS2Ext + 4, 0}, ext: true},
		{name: "external page-crossing byte", el: 1, va: vaExt - 1, size: 2, want: excCase{1, dabtSame | il | 0b010000, vaExt, 0}, ext: true},

		// PSTATE.PAN: a privileged data access to an EL0-accessible page.
		{name: "PAN", el: 1, va: vaData, size: 8, want: excCase{1, dabtSame | il | 0b001111, vaData, 0},
			setup: func(pe *cpu.PE) { pe.PAN = true }},
		{name: "PAN without FEAT_PAN", el: 1, va: vaData, size: 8,
			setup: func(pe *cpu.PE) { pe.PAN = true; pe.Regs.MMFR1 &^= 0xf << 20 }},
		{name: "PAN EL0", el: 0, va: vaData, size: 8, setup: func(pe *cpu.PE) { pe.PAN = true }},
	}
	ms := [2]*machine{newRig(t, false), newRig(t, true)}
	for _, c := range cases {
		m := ms[b2i(c.stage2)]
		pe := m.fresh()
		if c.setup != nil {
			c.setup(pe)
		}
		setEL(pe, c.el, pe.PAN)
		var v uint64
		var e cpu.Exception
		const pattern = 0x8877_6655_4433_2211
		if c.write {
			e = pe.Write(mem.VA(c.va), c.size, pattern, c.insn)
		} else {
			v, e = pe.Read(mem.VA(c.va), c.size, c.insn)
		}
		checkExc(t, c.name, pe, c.el, e, c.want)
		if e.Taken() && e.External != c.ext {
			t.Errorf("%s: External=%v", c.name, e.External)
		}
		if e.Taken() && e.Kind != cpu.DataAbort {
			t.Errorf("%s: kind %s", c.name, e.Kind)
		}
		if c.want.target != 0 {
			continue
		}
		// A successful access: compare with memory at the PA a fresh walk
		// gives for each byte.
		for i := 0; i < c.size; i++ {
			pa := walkPA(t, m, pe, c.va+uint64(i), c.write)
			b, ok := m.ram.Read(mem.PA(pa), 1)
			if !ok {
				t.Fatalf("%s: no memory at %#x", c.name, pa)
			}
			want := uint64(pattern) >> (8 * i) & 0xff
			if !c.write {
				want = v >> (8 * i) & 0xff
			}
			if b != want {
				t.Errorf("%s: byte %d: memory %#x, access %#x", c.name, i, b, want)
			}
		}
	}
}

// walkPA translates va with a fresh walker (no TLB) for the PE's state.
func walkPA(t *testing.T, m *machine, pe *cpu.PE, va uint64, write bool) uint64 {
	t.Helper()
	w := vmsa.Walker{Mem: m.ram}
	k := vmsa.Read
	if write {
		k = vmsa.Write
	}
	tr := w.Translate(&pe.Regs, pe.Regime(), mem.VA(va), vmsa.Access{Kind: k, EL: pe.EL}, vmsa.TranslateOptions{})
	if tr.Fault.IsFault() {
		t.Fatalf("reference walk of %#x: %s", va, tr.Fault)
	}
	return uint64(tr.OA)
}

// ESR_EL2.ISS.SAS is log2 of the access size (sizeLog2), for each size.
func TestStage2SyndromeAccessSize(t *testing.T) {
	m := newRig(t, true)
	for sas, size := range []int{1, 2, 4, 8} {
		for _, write := range []bool{false, true} {
			pe := m.fresh()
			in := cpu.Insn{Valid: true, Reg: 30, SixtyFour: size == 8, SignExtend: size < 8 && !write, AcqRel: write}
			var e cpu.Exception
			if write {
				e = pe.Write(mem.VA(vaS2Hole+uint64(size)), size, 0, in)
			} else {
				_, e = pe.Read(mem.VA(vaS2Hole+uint64(size)), size, in)
			}
			want := uint64(0x24<<26 | il | 1<<24 | uint64(sas)<<22 | 30<<16 | 0b000110)
			if in.SignExtend {
				want |= 1 << 21
			}
			if in.SixtyFour {
				want |= 1 << 15
			}
			if write {
				want |= 1<<14 | 1<<6
			}
			if uint64(e.ESR) != want || e.ESR.SAS() != uint(sas) {
				t.Errorf("size %d write=%v: ESR %#x, want %#x", size, write, uint64(e.ESR), want)
			}
		}
	}
}

// Translate: the exported translation of the current EL, through the TLB.
func TestTranslate(t *testing.T) {
	m := newRig(t, true)
	pe := m.pe
	acc := vmsa.Access{Kind: vmsa.Read, EL: 1}
	for i := 0; i < 2; i++ {
		pa, e := pe.Translate(vaX1+0x123, acc)
		if e.Taken() || pa != x1PA+0x123 {
			t.Fatalf("Translate #%d: %#x %s", i, pa, e)
		}
	}
	if pe.Stats.Walks != 1 || pe.Stats.TLBHits != 1 {
		t.Errorf("%d walks %d hits, want the second translation from the TLB", pe.Stats.Walks, pe.Stats.TLBHits)
	}
	// A fault is taken: stage-2 translation fault to EL2.
	_, e := pe.Translate(vaS2Hole, vmsa.Access{Kind: vmsa.Write, EL: 1})
	if e.TargetEL != 2 || uint64(e.ESR) != 0x24<<26|il|1<<6|0b000110 || pe.EL != 2 {
		t.Errorf("Translate of a stage-2 hole: %s", e)
	}
	// Without a TLB every translation walks.
	pe = m.fresh()
	pe.TLB = nil
	for i := 0; i < 2; i++ {
		if _, e := pe.Translate(vaX1, acc); e.Taken() {
			t.Fatal(e)
		}
	}
	if pe.Stats.Walks != 2 || pe.Stats.TLBHits != 0 {
		t.Errorf("no TLB: %d walks %d hits", pe.Stats.Walks, pe.Stats.TLBHits)
	}
}

// Regime: the stage-1 regime of the current EL (EL2&0 at EL2 with E2H=1
// and at EL0 with {E2H,TGE}={1,1}; EL2 at EL2 with E2H=0; else EL1&0).
func TestRegime(t *testing.T) {
	cases := []struct {
		el       uint8
		e2h, tge bool
		want     vmsa.Regime
	}{
		{0, false, false, vmsa.RegimeEL10},
		{0, false, true, vmsa.RegimeEL10},
		{0, true, false, vmsa.RegimeEL10},
		{0, true, true, vmsa.RegimeEL20},
		{1, false, false, vmsa.RegimeEL10},
		{1, true, false, vmsa.RegimeEL10},
		{2, false, false, vmsa.RegimeEL2},
		{2, false, true, vmsa.RegimeEL2},
		{2, true, false, vmsa.RegimeEL20},
		{2, true, true, vmsa.RegimeEL20},
	}
	pe := cpu.New(0, vmsa.DefaultRegs(), 0, nil, nil)
	for _, c := range cases {
		pe.EL = c.el
		pe.Regs.HCR_EL2 = 0
		if c.e2h {
			pe.Regs.HCR_EL2 |= sysreg.HCR_E2H
		}
		if c.tge {
			pe.Regs.HCR_EL2 |= sysreg.HCR_TGE
		}
		if got := pe.Regime(); got != c.want {
			t.Errorf("EL%d E2H=%v TGE=%v: %s, want %s", c.el, c.e2h, c.tge, got, c.want)
		}
	}
}

// Exception entry and return: PSTATE.PAN is set on entry to EL1 when
// SCTLR_EL1.SPAN=0, and to EL2 when {E2H,TGE}={1,1} and SCTLR_EL2.SPAN=0
// (FEAT_PAN); ERET restores the EL and PAN of the entry; ERET at EL0 is
// UNDEFINED.
func TestExceptionEntryPAN(t *testing.T) {
	cases := []struct {
		name    string
		from    uint8
		target  uint8
		hcr     sysreg.HCR
		sctlr1  sysreg.SCTLR
		sctlr2  sysreg.SCTLR
		noPAN   bool // ID_AA64MMFR1_EL1.PAN=0
		wantPAN bool
	}{
		{"to EL1 SPAN=0", 0, 1, 0, 0, 0, false, true},
		{"to EL1 SPAN=1", 0, 1, 0, 1 << 23, 0, false, false},
		{"to EL1 without FEAT_PAN", 0, 1, 0, 0, 0, true, false},
		{"to EL2 E2H TGE SPAN=0", 0, 2, sysreg.HCR_E2H | sysreg.HCR_TGE, 1 << 23, 0, false, true},
		{"to EL2 E2H TGE SPAN=1", 0, 2, sysreg.HCR_E2H | sysreg.HCR_TGE, 0, 1 << 23, false, false},
		{"to EL2 E2H only", 1, 2, sysreg.HCR_E2H, 0, 0, false, false},
		{"to EL2 E2H=0", 1, 2, 0, 0, 0, false, false},
	}
	for _, c := range cases {
		r := vmsa.DefaultRegs()
		r.HCR_EL2, r.SCTLR_EL1, r.SCTLR_EL2 = c.hcr, c.sctlr1, c.sctlr2
		if c.noPAN {
			r.MMFR1 &^= 0xf << 20
		}
		pe := cpu.New(0, r, c.from, nil, nil)
		e := cpu.Exception{Kind: cpu.DataAbort, TargetEL: c.target, FAR: 0x1000, ESR: 0x1234}
		pe.TakeException(&e)
		if pe.PAN != c.wantPAN || pe.EL != c.target || e.FromEL != c.from {
			t.Errorf("%s: PAN=%v EL%d from EL%d", c.name, pe.PAN, pe.EL, e.FromEL)
		}
		if err := pe.ERET(); err.Taken() || pe.EL != c.from || pe.PAN {
			t.Errorf("%s: ERET: EL%d PAN=%v %v", c.name, pe.EL, pe.PAN, err)
		}
	}
	// A PAN=1 state is restored by ERET.
	pe := cpu.New(0, vmsa.DefaultRegs(), 1, nil, nil)
	pe.PAN = true
	pe.Regs.SCTLR_EL2 = 1 << 23
	e := cpu.Exception{Kind: cpu.SysTrap, TargetEL: 2}
	pe.TakeException(&e)
	if pe.Stats.Exceptions != 1 {
		t.Errorf("stats %+v", pe.Stats)
	}
	if err := pe.ERET(); err.Taken() || pe.EL != 1 || !pe.PAN {
		t.Errorf("ERET to a PAN=1 EL1: EL%d PAN=%v %v", pe.EL, pe.PAN, err)
	}
	// A SysTrap is not an abort: FAR_EL2 is unchanged.
	if pe.FAR[2] != 0 {
		t.Errorf("FAR_EL2 %#x written by a trap", pe.FAR[2])
	}
	pe.EL = 0
	if e := pe.ERET(); e.Kind != cpu.Undefined || e.TargetEL != 1 || uint64(e.ESR) != undefESR {
		t.Errorf("ERET at EL0: %v, want UNDEFINED to EL1", e)
	}
}

func TestExceptionStrings(t *testing.T) {
	kinds := map[cpu.ExceptionKind]string{
		cpu.NoException: "none", cpu.DataAbort: "data abort", cpu.InstructionAbort: "instruction abort",
		cpu.SysTrap: "system instruction trap", cpu.Undefined: "undefined",
	}
	for k, s := range kinds {
		if k.String() != s {
			t.Errorf("%d: %q", k, k.String())
		}
	}
	if s := cpu.ExceptionKind(99).String(); s != "ExceptionKind(99)" {
		t.Errorf("%q", s)
	}
	if s := (cpu.Exception{}).String(); s != "no exception" {
		t.Errorf("%q", s)
	}
	e := cpu.Exception{Kind: cpu.DataAbort, FromEL: 1, TargetEL: 2, ESR: 0x92000006, FAR: 0x1000,
		HPFAR: 0x480, Fault: vmsa.Fault{Kind: vmsa.FaultTranslation, Stage2: true}}
	if s := e.String(); s != "data abort EL1->EL2 ESR 0x92000006 FAR 0x1000 HPFAR 0x480" {
		t.Errorf("%q", s)
	}
	e.Fault.Stage2 = false
	if s := e.String(); strings.Contains(s, "HPFAR") {
		t.Errorf("%q mentions HPFAR for a stage-1 fault", s)
	}
}

// A bad access size is a caller bug: Read panics with a message naming it.
func TestBadSizePanics(t *testing.T) {
	m := newMachine(t, false)
	defer func() {
		r := recover()
		if s, _ := r.(string); !strings.Contains(s, "3") {
			t.Fatalf("recovered %v, want a panic naming size 3", r)
		}
	}()
	_, _ = m.pe.Read(vaData, 3, cpu.Insn{})
}

func s1leaf(oa uint64, ap uint) desc.S1Leaf {
	return desc.S1Leaf{OA: oa, AP: ap, SH: 3, AF: true}
}

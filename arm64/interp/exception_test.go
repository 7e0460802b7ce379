package interp_test

import (
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// TestExceptionGeneration: each instruction's exception as the ESR_ELx
// descriptions and AArch64.TakeException give it: EC, ISS, target EL,
// ELR (the instruction, or the next one for SVC, HVC and SMC), SPSR and
// the vector (VBAR_ELx + 0x200 from the same EL with SP_ELx, + 0x400 from
// a lower EL).
func TestExceptionGeneration(t *testing.T) {
	const il = 1 << 25
	cases := []struct {
		name    string
		word    uint32
		el      uint8
		hcr     sysreg.HCR
		cpacr   uint64
		target  uint8
		esr     uint64
		elrNext bool
	}{
		{"svc #0x12 at EL1", 0xd4000241, 1, 0, 0, 1, 0x15<<26 | il | 0x12, true},
		{"svc #0x12 at EL0 (TGE=0)", 0xd4000241, 0, 0, 0, 1, 0x15<<26 | il | 0x12, true},
		{"svc #0x12 at EL0 (TGE=1)", 0xd4000241, 0, 1 << 27, 0, 2, 0x15<<26 | il | 0x12, true},
		{"hvc #0x34 at EL1", 0xd4000682, 1, 0, 0, 2, 0x16<<26 | il | 0x34, true},
		{"hvc #0x34 at EL0: UNDEFINED", 0xd4000682, 0, 0, 0, 1, il, false},
		{"hvc with HCR_EL2.HCD: UNDEFINED", 0xd4000682, 1, 1 << 29, 0, 1, il, false},
		{"smc #0x56 at EL1 with TSC: trapped", 0xd4000ac3, 1, 1 << 19, 0, 2, 0x17<<26 | il | 0x56, false},
		{"smc at EL1, no firmware, no EL3: UNDEFINED", 0xd4000ac3, 1, 0, 0, 1, il, false},
		{"brk #0x78 at EL1", 0xd4200f00, 1, 0, 0, 1, 0x3c<<26 | il | 0x78, false},
		{"brk #0x78 at EL2", 0xd4200f00, 2, 0, 0, 2, 0x3c<<26 | il | 0x78, false},
		{"udf #0 at EL2", 0x00000000, 2, 0, 0, 2, il, false},
		{"wfi at EL1 with TWI", 0xd503207f, 1, 1 << 13, 0, 2, 0x01<<26 | il | 1<<24 | 0xe<<20, false},
		{"wfi at EL0 with SCTLR_EL1.nTWI=0", 0xd503207f, 0, 0, 0, 1, 0x01<<26 | il | 1<<24 | 0xe<<20, false},
		{"fadd at EL1, CPACR_EL1.FPEN=00", 0x1e622820, 1, 0, 0, 1, 0x07<<26 | il | 1<<24 | 0xe<<20, false},
		{"fadd at EL0, FPEN=01", 0x1e622820, 0, 0, 1 << 20, 1, 0x07<<26 | il | 1<<24 | 0xe<<20, false},
		{"fadd at EL1, FPEN=11: not implemented, UNDEFINED", 0x1e622820, 1, 0, 3 << 20, 1, il, false},
		{"eret at EL0: UNDEFINED", 0xd69f03e0, 0, 0, 0, 1, il, false},
		{"msr pan, #1 at EL0: UNDEFINED", 0xd500419f, 0, 0, 0, 1, il, false},
	}
	for _, tc := range cases {
		r := newRigHCR(t, tc.el, tc.hcr)
		r.setCPACR(tc.cpacr)
		r.code(tc.word)
		r.run(1)
		pe := r.pe
		if pe.EL != tc.target {
			t.Errorf("%s: EL%d, want EL%d", tc.name, pe.EL, tc.target)
			continue
		}
		if got := uint64(pe.ESR[tc.target]); got != tc.esr {
			t.Errorf("%s: ESR %#x, want %#x", tc.name, got, tc.esr)
		}
		elr := mem.VA(codeBase)
		if tc.elrNext {
			elr += 4
		}
		if pe.ELR[tc.target] != elr {
			t.Errorf("%s: ELR %#x, want %#x", tc.name, pe.ELR[tc.target], elr)
		}
		off := mem.VA(0x200)
		if tc.el < tc.target {
			off = 0x400
		}
		if want := pe.VBAR[tc.target] + off; pe.PC != want {
			t.Errorf("%s: PC %#x, want the vector %#x", tc.name, pe.PC, want)
		}
		if spsr := pe.SPSR[tc.target]; spsr&0xf != uint64(tc.el)<<2|boolBit(tc.el != 0) {
			t.Errorf("%s: SPSR %#x does not record EL%d", tc.name, spsr, tc.el)
		}
	}
}

func boolBit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// setCPACR writes CPACR_EL1 through MSR at EL2 (restoring the EL).
func (r *rig) setCPACR(v uint64) {
	c := r.c
	save := append([]uint32(nil), r.words(2)...)
	el, sp, pc := r.pe.EL, r.pe.SP, r.pe.PC
	r.pe.EL, r.pe.SP = 2, true
	c.X[9] = v
	r.code(0xd5181049) // msr cpacr_el1, x9
	r.run(1)
	r.pe.EL, r.pe.SP, r.pe.PC = el, sp, pc
	r.pe.RegsChanged()
	r.code(save...)
	c.Flush()
}

func (r *rig) words(n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		v, _ := r.ram.Read(mem.PA(codeBase+4*i), 4)
		out[i] = uint32(v)
	}
	return out
}

// TestBTYPE: BR and BLR set PSTATE.BTYPE (FEAT_BTI) for the instruction
// at the target; an exception taken there saves it in SPSR_ELx.BTYPE,
// RET leaves 0.
func TestBTYPE(t *testing.T) {
	for _, tc := range []struct {
		name string
		word uint32
		want uint64
	}{
		{"br x5", 0xd61f00a0, 1},
		{"blr x5", 0xd63f00a0, 2},
		{"ret (x30)", 0xd65f03c0, 0},
	} {
		r := newRig(t, 1)
		target := uint64(codeBase + 0x100)
		r.c.X[5], r.c.X[30] = target, target
		r.code(tc.word)
		r.ram.Write(mem.PA(target), 4, 0) // UDF at the target
		r.run(2)
		if r.pe.EL != 1 || r.pe.ELR[1] != mem.VA(target) {
			t.Fatalf("%s: no UNDEFINED at the target (EL%d ELR %#x)", tc.name, r.pe.EL, r.pe.ELR[1])
		}
		if got := r.pe.SPSR[1] >> 10 & 3; got != tc.want {
			t.Errorf("%s: SPSR_EL1.BTYPE %d, want %d", tc.name, got, tc.want)
		}
		if r.c.BTYPE != 0 {
			t.Errorf("%s: PSTATE.BTYPE %d after exception entry, want 0", tc.name, r.c.BTYPE)
		}
	}
}

// TestExclusiveMonitor: a store exclusive succeeds only after a load
// exclusive of the same address and size, once; CLREX and ERET clear the
// monitor (AArch64.ExceptionReturn: ClearExclusiveLocal).
func TestExclusiveMonitor(t *testing.T) {
	const (
		ldxr  = 0xc85f7c20 // ldxr x0, [x1]
		stxr  = 0xc8027c23 // stxr w2, x3, [x1]
		clrex = 0xd5033f5f
		nop   = 0xd503201f
	)
	for _, tc := range []struct {
		name   string
		words  []uint32
		status uint64
	}{
		{"ldxr; stxr", []uint32{ldxr, stxr}, 0},
		{"stxr alone", []uint32{nop, stxr}, 1},
		{"ldxr; clrex; stxr", []uint32{ldxr, clrex, stxr}, 1},
		{"ldxr; stxr; stxr", []uint32{ldxr, stxr, stxr}, 1},
	} {
		r := newRig(t, 2)
		r.c.X[1], r.c.X[3] = dataBase, 0x5a5a
		r.c.X[2] = 7
		r.code(tc.words...)
		r.run(len(tc.words))
		if r.c.X[2] != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, r.c.X[2], tc.status)
		}
		v, _ := r.ram.Read(dataBase, 8)
		if want := map[uint64]uint64{0: 0x5a5a, 1: 0}[tc.status]; tc.name != "ldxr; stxr; stxr" && v != want {
			t.Errorf("%s: memory %#x, want %#x", tc.name, v, want)
		}
	}
	// ERET clears the monitor: ldxr at EL2, eret to EL2 itself, stxr fails.
	r := newRig(t, 2)
	r.c.X[1], r.c.X[3] = dataBase, 1
	r.code(ldxr, 0xd69f03e0, stxr)
	r.pe.ELR[2] = codeBase + 8
	r.pe.SPSR[2] = 0x3c9 // EL2h
	r.run(3)
	if r.c.X[2] != 1 {
		t.Errorf("stxr after eret: status %d, want 1", r.c.X[2])
	}
}

// TestSelfModifyingCode: a store to a page holding decoded instructions
// drops them, so the new instruction executes.
func TestSelfModifyingCode(t *testing.T) {
	r := newRig(t, 2)
	// movz x0, #1; str w3, [x4]; b .-8 (back to the first word)
	r.code(0xd2800020, 0xb9000083, 0x17fffffe)
	r.c.X[3] = 0xd2800040 // movz x0, #2
	r.c.X[4] = codeBase
	r.run(4)
	if r.c.X[0] != 2 {
		t.Errorf("X0 %d after rewriting the instruction, want 2", r.c.X[0])
	}
}

// TestStrictNamesUnimplemented: an FP instruction with FP enabled is
// UNDEFINED and Strict names it; UDF is not reported.
func TestStrictNamesUnimplemented(t *testing.T) {
	r := newRig(t, 2)
	r.setCPACR(3 << 20)
	r.code(0x1e622820, 0)
	r.run(1)
	if len(r.undef) != 1 || !strings.Contains(r.undef[0], "fadd") {
		t.Errorf("Strict reports %q, want one naming fadd", r.undef)
	}
	r = newRig(t, 2)
	r.code(0)
	r.run(1)
	if len(r.undef) != 0 {
		t.Errorf("UDF reported as unimplemented: %q", r.undef)
	}
}

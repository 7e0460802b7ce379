package cpu_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// nvMode is HCR_EL2.{NV,NV1,NV2} for a guest hypervisor at EL1.
type nvMode struct {
	name string
	hcr  sysreg.HCR
}

var (
	nvOff   = nvMode{"NV=0", 0}
	nvOnly  = nvMode{"NV", sysreg.HCR_NV}
	nvNV1   = nvMode{"NV,NV1", sysreg.HCR_NV | sysreg.HCR_NV1}
	nvNV2   = nvMode{"NV,NV2", sysreg.HCR_NV | sysreg.HCR_NV2}
	nvAll   = nvMode{"NV,NV1,NV2", sysreg.HCR_NV | sysreg.HCR_NV1 | sysreg.HCR_NV2}
	nvModes = []nvMode{nvOff, nvOnly, nvNV1, nvNV2, nvAll}
)

// route is where an EL1 MSR/MRS of a register goes.
type route struct {
	kind byte   // 'u' UNDEFINED, 't' trap to EL2 (EC 0x18), 'm' VNCR memory, 'r' a register
	off  uint64 // 'm': the offset in the VNCR page
	reg  func(pe *cpu.PE) *uint64
}

var (
	undef = route{kind: 'u'}
	trap  = route{kind: 't'}
)

func vncr(off uint64) route                { return route{kind: 'm', off: off} }
func reg(f func(pe *cpu.PE) *uint64) route { return route{kind: 'r', reg: f} }

// TestNVSysRegRouting checks, for registers of each kind, where an MSR and
// an MRS at EL1 go in each HCR_EL2.{NV,NV1,NV2} mode, as each register's
// accessibility pseudocode says (EffectiveHCR_EL2_NVx, NVMem[offset]):
//   - EL2 registers: UNDEFINED without NV; trapped (EC 0x18) with NV; with
//     NV2 those with a VNCR offset (HCR_EL2 0x078, VTTBR_EL2 0x020,
//     VTCR_EL2 0x040, VNCR_EL2 0x0B0) are memory, ELR/SPSR/ESR/FAR_EL2
//     reach the EL1 registers, the rest (SCTLR, TCR, TTBRn, MAIR, VBAR,
//     HPFAR of EL2) still trap.
//   - EL1 registers with an offset (SCTLR_EL1 0x110, ELR_EL1 0x230, VBAR_EL1
//     0x250, ...) are memory with NV2 only when NV1=1; ELR/SPSR/VBAR_EL1
//     trap with {NV,NV1}={1,1} and NV2=0 (the HCR_EL2.NV1 description).
//   - *_EL12 aliases: UNDEFINED without NV, memory with NV2 and NV1=0,
//     otherwise trapped.
//   - PAR_EL1 has no offset and no trap: always the register.
func TestNVSysRegRouting(t *testing.T) {
	sctlr1 := func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.SCTLR_EL1) }
	elr1 := func(pe *cpu.PE) *uint64 { return (*uint64)(&pe.ELR[1]) }
	vbar1 := func(pe *cpu.PE) *uint64 { return (*uint64)(&pe.VBAR[1]) }
	esr1 := func(pe *cpu.PE) *uint64 { return u64(&pe.ESR[1]) }
	far1 := func(pe *cpu.PE) *uint64 { return &pe.FAR[1] }
	spsr1 := func(pe *cpu.PE) *uint64 { return &pe.SPSR[1] }
	par := func(pe *cpu.PE) *uint64 { return u64(&pe.PAR) }
	all := func(r route) map[nvMode]route {
		return map[nvMode]route{nvOff: r, nvOnly: r, nvNV1: r, nvNV2: r, nvAll: r}
	}
	cases := []struct {
		reg    string
		routes map[nvMode]route
	}{
		{"HCR_EL2", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: vncr(0x78), nvAll: vncr(0x78)}},
		{"VTTBR_EL2", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: vncr(0x20), nvAll: vncr(0x20)}},
		{"VTCR_EL2", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: vncr(0x40), nvAll: vncr(0x40)}},
		{"VNCR_EL2", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: vncr(0xb0), nvAll: vncr(0xb0)}},
		{"SCTLR_EL2", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: trap, nvAll: trap}},
		{"TCR_EL2", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: trap, nvAll: trap}},
		{"VBAR_EL2", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: trap, nvAll: trap}},
		{"HPFAR_EL2", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: trap, nvAll: trap}},
		{"ESR_EL2", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: reg(esr1), nvAll: reg(esr1)}},
		{"FAR_EL2", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: reg(far1), nvAll: reg(far1)}},
		{"ELR_EL2", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: reg(elr1), nvAll: reg(elr1)}},
		{"SPSR_EL2", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: reg(spsr1), nvAll: reg(spsr1)}},
		{"SCTLR_EL1", map[nvMode]route{nvOff: reg(sctlr1), nvOnly: reg(sctlr1), nvNV1: reg(sctlr1), nvNV2: reg(sctlr1), nvAll: vncr(0x110)}},
		{"ELR_EL1", map[nvMode]route{nvOff: reg(elr1), nvOnly: reg(elr1), nvNV1: trap, nvNV2: reg(elr1), nvAll: vncr(0x230)}},
		{"VBAR_EL1", map[nvMode]route{nvOff: reg(vbar1), nvOnly: reg(vbar1), nvNV1: trap, nvNV2: reg(vbar1), nvAll: vncr(0x250)}},
		{"SPSR_EL1", map[nvMode]route{nvOff: reg(spsr1), nvOnly: reg(spsr1), nvNV1: trap, nvNV2: reg(spsr1), nvAll: vncr(0x160)}},
		{"SCTLR_EL12", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: vncr(0x110), nvAll: trap}},
		{"TTBR0_EL12", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: vncr(0x200), nvAll: trap}},
		{"ELR_EL12", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: vncr(0x230), nvAll: trap}},
		{"VBAR_EL12", map[nvMode]route{nvOff: undef, nvOnly: trap, nvNV1: trap, nvNV2: vncr(0x250), nvAll: trap}},
		{"PAR_EL1", all(reg(par))},
	}
	const vncrBase = ramBase + 0x3f0_0000
	m := newMachine(t, false)
	for _, c := range cases {
		for _, mode := range nvModes {
			for _, read := range []bool{false, true} {
				name := fmt.Sprintf("%s %s read=%v", c.reg, mode.name, read)
				r, err := cpu.ParseSysReg(c.reg)
				if err != nil {
					t.Fatal(err)
				}
				if err := m.ram.Zero(vncrBase, 0x1000); err != nil {
					t.Fatal(err)
				}
				pe := m.fresh()
				pe.Regs.HCR_EL2 |= mode.hcr
				pe.VNCR = vncrBase
				pe.PC = 0x8000
				pe.VBAR[2] = 0x10_0000
				pe.RegsChanged()
				want := c.routes[mode]
				const v = 0x0bad_cafe_1234_5000
				var e cpu.Exception
				var got uint64
				if want.kind == 'm' && read {
					if err := m.ram.Write(mem.PA(vncrBase+want.off), 8, v); !err {
						t.Fatal("VNCR page not in RAM")
					}
				}
				if want.kind == 'r' && read {
					*want.reg(pe) = v
				}
				if read {
					got, e = pe.MRS(r, 9)
				} else {
					e = pe.MSR(r, 9, v)
				}
				switch want.kind {
				case 'u':
					if e.Kind != cpu.Undefined || e.TargetEL != 1 {
						t.Errorf("%s: %v, want UNDEFINED", name, e)
					}
				case 't':
					op0, op1, crn, crm, op2 := r.Encoding()
					wantESR := uint64(sysreg.ECSysRegTrap)<<26 | il | sysISS(op0, op1, crn, crm, op2, 9, read)
					if e.Kind != cpu.SysTrap || e.TargetEL != 2 || uint64(e.ESR) != wantESR || pe.ELR[2] != 0x8000 || pe.PC != 0x10_0400 {
						t.Errorf("%s: %v ELR_EL2 %#x PC %#x, want a trap to EL2 ESR %#x at VBAR_EL2+0x400", name, e, pe.ELR[2], pe.PC, wantESR)
					}
				case 'm':
					if e.Taken() {
						t.Errorf("%s: %v, want a VNCR access at +%#x", name, e, want.off)
						continue
					}
					if read && got != v {
						t.Errorf("%s: read %#x from the VNCR page, want %#x", name, got, uint64(v))
					}
					if !read {
						if w, _ := m.ram.Read(mem.PA(vncrBase+want.off), 8); w != v {
							t.Errorf("%s: VNCR page +%#x holds %#x, want %#x", name, want.off, w, uint64(v))
						}
					}
				case 'r':
					if e.Taken() {
						t.Errorf("%s: %v, want the register", name, e)
						continue
					}
					if read && got != v || !read && *want.reg(pe) != v {
						t.Errorf("%s: register holds %#x (read %#x), want %#x", name, *want.reg(pe), got, uint64(v))
					}
				}
			}
		}
	}
}

// TestCurrentEL: MRS CurrentEL reads EL<<2; at EL1 with HCR_EL2.NV=1 it
// reads EL2 (the CurrentEL accessibility pseudocode); at EL0 it is
// UNDEFINED; it has no MSR encoding.
func TestCurrentEL(t *testing.T) {
	for _, c := range []struct {
		el   uint8
		hcr  sysreg.HCR
		want uint64
	}{{1, 0, 1 << 2}, {2, 0, 2 << 2}, {1, sysreg.HCR_NV, 2 << 2}, {1, sysreg.HCR_NV | sysreg.HCR_NV2, 2 << 2}, {2, sysreg.HCR_NV, 2 << 2}} {
		m := newMachine(t, false)
		pe := m.pe
		pe.EL = c.el
		pe.Regs.HCR_EL2 |= c.hcr
		pe.RegsChanged()
		v, e := pe.MRS(cpu.CurrentEL, 0)
		if e.Taken() || v != c.want {
			t.Errorf("EL%d HCR %#x: CurrentEL %#x %v, want %#x", c.el, uint64(c.hcr), v, e, c.want)
		}
	}
	m := newMachine(t, false)
	if e := m.pe.MSR(cpu.CurrentEL, 0, 0); e.Kind != cpu.Undefined {
		t.Errorf("MSR CurrentEL: %v", e)
	}
	m.pe.EL = 0
	if _, e := m.pe.MRS(cpu.CurrentEL, 0); e.Kind != cpu.Undefined {
		t.Errorf("MRS CurrentEL at EL0: %v", e)
	}
}

// TestNV2Memory: a redirected access is a 64-bit access at VNCR_EL2.BADDR
// + offset in the EL2 or EL2&0 regime, with SCTLR_EL2.EE's endianness; a
// fault on it is a Data Abort to EL2 from a lower EL with ISS.VNCR=1, WnR,
// the fault's FSC and FAR_EL2 = the address (ESR_ELx ISS encoding for a
// Data Abort, VNCR field).
func TestNV2Memory(t *testing.T) {
	const base = ramBase + 0x3f0_0000
	nv2 := sysreg.HCR_NV | sysreg.HCR_NV2
	t.Run("big-endian", func(t *testing.T) {
		m := newMachine(t, false)
		pe := m.pe
		pe.Regs.HCR_EL2 |= nv2
		pe.Regs.SCTLR_EL2 = 1 << 25 // EE
		pe.VNCR = base
		pe.RegsChanged()
		if e := pe.MSR(cpu.HCR_EL2, 1, 0x0102_0304_0506_0708); e.Taken() {
			t.Fatal(e)
		}
		if w, _ := m.ram.Read(base+0x78, 8); w != 0x0807_0605_0403_0201 {
			t.Errorf("stored %#x, want the bytes reversed", w)
		}
		if v, e := pe.MRS(cpu.HCR_EL2, 1); e.Taken() || v != 0x0102_0304_0506_0708 {
			t.Errorf("read back %#x %v", v, e)
		}
	})
	t.Run("EL2&0 regime translates VNCR", func(t *testing.T) {
		m := newMachine(t, false)
		pe := m.pe
		useEL20(pe, false) // EL2&0 uses the EL1 tables: vaData -> dataIPA
		pe.Regs.HCR_EL2 |= nv2
		pe.EL = 1
		pe.VNCR = vaData
		pe.RegsChanged()
		if e := pe.MSR(cpu.VTTBR_EL2, 2, 0x77); e.Taken() {
			t.Fatal(e)
		}
		if w, _ := m.ram.Read(dataIPA+0x20, 8); w != 0x77 {
			t.Errorf("VTTBR_EL2 landed %#x at the translated page", w)
		}
	})
	for _, c := range []struct {
		name  string
		vncr  uint64
		el20  bool
		write bool
		fsc   uint64
	}{
		{"translation fault, read", vaHole, true, false, 0b000111},
		{"translation fault, write", vaHole, true, true, 0b000111},
		{"external abort", 0x9000_0000, false, true, 0b010000},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMachine(t, false)
			pe := m.pe
			if c.el20 {
				useEL20(pe, false)
			}
			pe.Regs.HCR_EL2 |= nv2
			pe.EL, pe.PC, pe.VNCR = 1, 0x4444, c.vncr
			pe.RegsChanged()
			var e cpu.Exception
			if c.write {
				e = pe.MSR(cpu.VTCR_EL2, 3, 1)
			} else {
				_, e = pe.MRS(cpu.VTCR_EL2, 3)
			}
			iss := c.fsc | 1<<13
			if c.write {
				iss |= 1 << 6
			}
			want := uint64(sysreg.ECDataAbortLower)<<26 | il | iss
			if e.Kind != cpu.DataAbort || e.TargetEL != 2 || uint64(e.ESR) != want || pe.FAR[2] != c.vncr+0x40 || pe.ELR[2] != 0x4444 {
				t.Errorf("%v FAR_EL2 %#x ELR_EL2 %#x, want ESR %#x FAR %#x", e, pe.FAR[2], pe.ELR[2], want, c.vncr+0x40)
			}
		})
	}
}

// TestExceptionVectors: exception entry writes ELR_ELx = PC and SPSR_ELx
// from PSTATE, masks D, A, I, F, selects SP_ELx and jumps to VBAR_ELx plus
// 0x000 (same EL, SP_EL0), 0x200 (same EL, SP_ELx) or 0x400 (lower EL,
// AArch64). From EL1 to EL1 with HCR_EL2.NV=1, SPSR_EL1.M[3:2] reports EL2
// when NV1=0 (I_ZJRNN) or NV2=1 (I_DBTLM).
func TestExceptionVectors(t *testing.T) {
	cases := []struct {
		name     string
		el       uint8
		sp       bool
		hcr      sysreg.HCR
		target   uint8
		wantPC   mem.VA
		wantSPSR uint64
	}{
		{"EL0 to EL1", 0, false, 0, 1, 0x1_0400, 0b0000},
		{"EL1t to EL1", 1, false, 0, 1, 0x1_0000, 0b0100},
		{"EL1h to EL1", 1, true, 0, 1, 0x1_0200, 0b0101},
		{"EL1h to EL2", 1, true, 0, 2, 0x2_0400, 0b0101},
		{"EL2h to EL2", 2, true, 0, 2, 0x2_0200, 0b1001},
		{"EL1h to EL1, NV", 1, true, sysreg.HCR_NV, 1, 0x1_0200, 0b1001},
		{"EL1h to EL1, NV,NV1", 1, true, sysreg.HCR_NV | sysreg.HCR_NV1, 1, 0x1_0200, 0b0101},
		{"EL1h to EL1, NV,NV1,NV2", 1, true, sysreg.HCR_NV | sysreg.HCR_NV1 | sysreg.HCR_NV2, 1, 0x1_0200, 0b1001},
		{"EL1t to EL1, NV,NV2", 1, false, sysreg.HCR_NV | sysreg.HCR_NV2, 1, 0x1_0000, 0b1000},
		{"EL0 to EL1, NV", 0, false, sysreg.HCR_NV, 1, 0x1_0400, 0b0000},
	}
	irq := []struct {
		el     uint8
		sp     bool
		target uint8
		wantPC mem.VA
	}{{0, false, 1, 0x1_0480}, {1, true, 1, 0x1_0280}, {1, false, 1, 0x1_0080}, {1, true, 2, 0x2_0480}}
	for _, c := range irq {
		m := newMachine(t, false)
		pe := m.pe
		pe.EL, pe.SP, pe.VBAR[1], pe.VBAR[2] = c.el, c.sp, 0x1_0000, 0x2_0000
		pe.ESR[c.target] = 0x1234
		pe.RegsChanged()
		e := cpu.Exception{Kind: cpu.IRQ, TargetEL: c.target}
		pe.TakeException(&e)
		if pe.PC != c.wantPC || pe.ESR[c.target] != 0x1234 {
			t.Errorf("IRQ from EL%d (SP %v) to EL%d: PC %#x ESR %#x, want PC %#x and ESR unchanged", c.el, c.sp, c.target, pe.PC, uint64(pe.ESR[c.target]), c.wantPC)
		}
	}
	for _, c := range cases {
		m := newMachine(t, false)
		pe := m.pe
		pe.EL, pe.SP, pe.PC = c.el, c.sp, 0x5554
		pe.NZCV, pe.DAIF = 0b1010, 0b0101
		pe.VBAR[1], pe.VBAR[2] = 0x1_0000, 0x2_0000
		pe.Regs.HCR_EL2 |= c.hcr
		pe.Regs.SCTLR_EL1 |= 1 << 23 // SPAN: PAN unchanged
		pe.RegsChanged()
		e := cpu.Exception{Kind: cpu.Undefined, TargetEL: c.target, ESR: il}
		pe.TakeException(&e)
		wantSPSR := c.wantSPSR | 0b1010<<28 | 0b0101<<6
		if pe.PC != c.wantPC || pe.ELR[c.target] != 0x5554 || pe.SPSR[c.target] != wantSPSR ||
			pe.EL != c.target || !pe.SP || pe.DAIF != 0xf {
			t.Errorf("%s: PC %#x ELR %#x SPSR %#x EL%d SP %v DAIF %#x; want PC %#x SPSR %#x",
				c.name, pe.PC, pe.ELR[c.target], pe.SPSR[c.target], pe.EL, pe.SP, pe.DAIF, c.wantPC, wantSPSR)
		}
	}
}

// TestERET: ERET restores PC from ELR_ELx and PSTATE from SPSR_ELx; an
// illegal return (IllegalExceptionReturn) keeps EL and SP and sets
// PSTATE.IL; ERET at EL1 with HCR_EL2.NV=1 traps to EL2 with EC 0x1A.
func TestERET(t *testing.T) {
	cases := []struct {
		name    string
		el      uint8
		hcr     sysreg.HCR
		spsr    uint64
		wantEL  uint8
		wantSP  bool
		illegal bool
	}{
		{"EL1 to EL0", 1, 0, 0b0000, 0, false, false},
		{"EL1 to EL1h", 1, 0, 0b0101, 1, true, false},
		{"EL2 to EL1t", 2, 0, 0b0100, 1, false, false},
		{"EL2 to EL2h", 2, 0, 0b1001, 2, true, false},
		{"EL1 to EL2: higher EL", 1, 0, 0b1001, 1, true, true},
		{"EL2 to EL3", 2, 0, 0b1101, 2, true, true},
		{"EL1 to EL0 with SP_ELx", 1, 0, 0b0001, 1, true, true},
		{"to AArch32", 2, 0, 0b10000, 2, true, true},
		{"EL2 to EL1 with TGE", 2, sysreg.HCR_TGE | sysreg.HCR_E2H, 0b0101, 2, true, true},
	}
	for _, c := range cases {
		m := newMachine(t, false)
		pe := m.pe
		pe.EL, pe.SP = c.el, true
		pe.Regs.HCR_EL2 |= c.hcr
		pe.ELR[c.el] = 0x7000
		pe.SPSR[c.el] = c.spsr | 0b0110<<28 | 0b1001<<6 | 1<<22
		pe.RegsChanged()
		if e := pe.ERET(); e.Taken() {
			t.Errorf("%s: %v", c.name, e)
			continue
		}
		if pe.PC != 0x7000 || pe.EL != c.wantEL || pe.SP != c.wantSP || pe.IL != c.illegal ||
			pe.NZCV != 0b0110 || pe.DAIF != 0b1001 || !pe.PAN {
			t.Errorf("%s: PC %#x EL%d SP %v IL %v NZCV %#x DAIF %#x PAN %v", c.name, pe.PC, pe.EL, pe.SP, pe.IL, pe.NZCV, pe.DAIF, pe.PAN)
		}
	}
	for _, mode := range []nvMode{nvOnly, nvNV1, nvNV2, nvAll} {
		m := newMachine(t, false)
		pe := m.pe
		pe.Regs.HCR_EL2 |= mode.hcr
		pe.PC, pe.VBAR[2] = 0x6000, 0x20_0000
		pe.RegsChanged()
		e := pe.ERET()
		if e.Kind != cpu.ERETTrap || e.TargetEL != 2 || uint64(e.ESR) != 0x1a<<26|il || pe.ELR[2] != 0x6000 || pe.PC != 0x20_0400 || pe.EL != 2 {
			t.Errorf("ERET at EL1 with %s: %v ELR_EL2 %#x PC %#x", mode.name, e, pe.ELR[2], pe.PC)
		}
	}
}

// TestNV1Descriptors: with HCR_EL2.{NV,NV1}={1,1} the EL1&0 stage-1
// descriptors are read as in the EL2 regime (the HCR_EL2.NV1 field
// description): AP[1] is treated as 0 (no EL0 data access), bit 54 is PXN
// (so an EL1 fetch from a page with bit 54 set faults) and bit 53 is RES0
// (so PXN=1 no longer forbids EL1 fetches), and PSTATE.PAN has no effect.
func TestNV1Descriptors(t *testing.T) {
	const (
		vaUXN = 0x1236_0000 // AP=00, bit 54 set
		vaPXN = 0x1236_1000 // AP=00, bit 53 set
	)
	for _, nv1 := range []bool{false, true} {
		m := newMachine(t, false)
		if err := m.s1.MapS1(vaUXN, 3, desc.S1Leaf{OA: dataIPA, AP: 0b00, SH: 3, AF: true, UXN: true}); err != nil {
			t.Fatal(err)
		}
		if err := m.s1.MapS1(vaPXN, 3, desc.S1Leaf{OA: dataIPA, AP: 0b00, SH: 3, AF: true, PXN: true}); err != nil {
			t.Fatal(err)
		}
		pe := m.fresh()
		if nv1 {
			pe.Regs.HCR_EL2 |= sysreg.HCR_NV | sysreg.HCR_NV1
		}
		pe.VBAR[1] = 0x10_0000
		pe.RegsChanged()
		fetch := func(va mem.VA) bool {
			setEL(pe, 1, false)
			_, e := pe.Fetch(va)
			return !e.Taken()
		}
		if got := fetch(vaUXN); got == nv1 {
			t.Errorf("NV1=%v: EL1 fetch with bit 54 set allowed=%v", nv1, got)
		}
		if got := fetch(vaPXN); got != nv1 {
			t.Errorf("NV1=%v: EL1 fetch with bit 53 set allowed=%v", nv1, got)
		}
		setEL(pe, 0, false)
		if _, e := pe.Read(vaData, 8, cpu.Insn{}); e.Taken() != nv1 {
			t.Errorf("NV1=%v: EL0 read of an AP=01 page: %v", nv1, e)
		}
		setEL(pe, 1, true)
		pe.Regs.MMFR1 = pe.Regs.MMFR1 | 1<<20 // FEAT_PAN
		pe.RegsChanged()
		if _, e := pe.Read(vaData, 8, cpu.Insn{}); e.Taken() == nv1 {
			t.Errorf("NV1=%v: EL1 read with PSTATE.PAN=1 of an AP=01 page: %v", nv1, e)
		}
	}
}

package nested_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// sysISS is the ISS of a trapped System instruction (EC 0x18), written
// from the ISS encoding for an exception from MSR, MRS or System
// instruction execution: Op0 [21:20], Op2 [19:17], Op1 [16:14], CRn
// [13:10], Rt [9:5], CRm [4:1], Direction [0] (1: read).
func sysISS(op0, op1, crn, crm, op2 uint64, read bool) uint64 {
	iss := op0<<20 | op2<<17 | op1<<14 | crn<<10 | crm<<1
	if read {
		iss |= 1
	}
	return 0x18<<26 | 1<<25 | iss
}

// l2Insn is an instruction L2 executes at EL1 through nested.L2CPU.
type l2Insn struct {
	name string
	run  func(c *nested.L2CPU) (uint64, error)
	esr  uint64 // the syndrome of its trap
}

func msr(r cpu.SysReg, op0, op1, crn, crm, op2 uint64) l2Insn {
	return l2Insn{"MSR " + r.String(), func(c *nested.L2CPU) (uint64, error) { return 0, c.MSR(r, 0x1000) }, sysISS(op0, op1, crn, crm, op2, false)}
}

func mrs(r cpu.SysReg, op0, op1, crn, crm, op2 uint64) l2Insn {
	return l2Insn{"MRS " + r.String(), func(c *nested.L2CPU) (uint64, error) { return c.MRS(r) }, sysISS(op0, op1, crn, crm, op2, true)}
}

func tlbi(op tlb.Op, op1, crm, op2 uint64) l2Insn {
	return l2Insn{"TLBI " + op.String(), func(c *nested.L2CPU) (uint64, error) { return 0, c.TLBI(op, 0) }, sysISS(1, op1, 8, crm, op2, false)}
}

func atInsn(op at.Op, op1, crm, op2 uint64) l2Insn {
	return l2Insn{"AT " + op.String(), func(c *nested.L2CPU) (uint64, error) {
		p, err := c.AT(op, l2RAM)
		return uint64(p), err
	}, sysISS(1, op1, 7, crm, op2, false)}
}

var eretInsn = l2Insn{"ERET", func(c *nested.L2CPU) (uint64, error) { return 0, c.ERET() }, 0x1a<<26 | 1<<25}

// Where an instruction of L2 is handled.
type level uint8

const (
	hw       level = iota // the PE executes it: no exit
	l0                    // trapped to L0 and emulated there
	l1                    // forwarded to the guest hypervisor
	nvMemory              // FEAT_NV2: a load or store of the VNCR page, no exit
)

func (l level) String() string { return [...]string{"hardware", "L0", "L1", "VNCR page"}[l] }

// TestTrapForwarding: for each trap control of L1's HCR_EL2 and the
// instructions of L2 it governs, the level that handles the instruction
// (the rules of each control in the HCR_EL2 description and the register
// accessibility pseudocode), and for a forwarded one what L1 finds at vEL2:
// ESR_EL2 the syndrome of the trap (EC 0x18 with the instruction's ISS, EC
// 0x1A for ERET, IL=1), ELR_EL2 the instruction, SPSR_EL2 L2's PSTATE
// (EL1h), HPFAR_EL2 UNKNOWN, the exception at VBAR_EL2 + 0x400 (from a
// lower EL) with CurrentEL reading EL2. A control L1 does not set leaves
// the instruction to the hardware, except L0's own TID3 (L2 reads the ID
// registers of the PE L1 believes it has).
func TestTrapForwarding(t *testing.T) {
	sctlrW := msr(cpu.SCTLR_EL1, 3, 0, 1, 0, 0)
	ttbr0W := msr(cpu.TTBR0_EL1, 3, 0, 2, 0, 0)
	tcrW := msr(cpu.TCR_EL1, 3, 0, 2, 0, 2)
	mairW := msr(cpu.MAIR_EL1, 3, 0, 10, 2, 0)
	sctlrR := mrs(cpu.SCTLR_EL1, 3, 0, 1, 0, 0)
	ttbr1R := mrs(cpu.TTBR1_EL1, 3, 0, 2, 0, 1)
	farR := mrs(cpu.FAR_EL1, 3, 0, 6, 0, 0)
	vbarW := msr(cpu.VBAR_EL1, 3, 0, 12, 0, 0)
	elrR := mrs(cpu.ELR_EL1, 3, 0, 4, 0, 1)
	mmfr0 := mrs(cpu.ID_AA64MMFR0_EL1, 3, 0, 0, 7, 0)
	mmfr2 := mrs(cpu.ID_AA64MMFR2_EL1, 3, 0, 0, 7, 2)
	hcrR := mrs(cpu.HCR_EL2, 3, 4, 1, 1, 0)
	vttbrW := msr(cpu.VTTBR_EL2, 3, 4, 2, 1, 0)
	sctlr2R := mrs(cpu.SCTLR_EL2, 3, 4, 1, 0, 0)
	sctlr12W := msr(cpu.SCTLR_EL12, 3, 5, 1, 0, 0)
	elr2R := mrs(cpu.ELR_EL2, 3, 4, 4, 0, 1)
	curEL := mrs(cpu.CurrentEL, 3, 0, 4, 2, 2)
	vmalle1 := tlbi(tlb.OpVMALLE1, 0, 7, 0)
	vae1 := tlbi(tlb.OpVAE1, 0, 7, 1)
	vmalle1is := tlbi(tlb.OpVMALLE1.IS(), 0, 3, 0)
	vae1is := tlbi(tlb.OpVAE1.IS(), 0, 3, 1)
	vmalle1os := tlbi(tlb.OpVMALLE1.OS(), 0, 1, 0)
	alle2 := tlbi(tlb.OpALLE2, 4, 7, 0)
	ipas2e1 := tlbi(tlb.OpIPAS2E1, 4, 4, 1)
	s1e1r := atInsn(at.S1E1R, 0, 8, 0)
	s1e0w := atInsn(at.S1E0W, 0, 8, 3)
	s1e2r := atInsn(at.S1E2R, 4, 8, 0)
	s12e1r := atInsn(at.S12E1R, 4, 8, 4)

	const (
		tvm  = sysreg.HCR_TVM
		trvm = sysreg.HCR(1 << 30)
		tid3 = sysreg.HCR(1 << 18)
		nv   = sysreg.HCR_NV
		nv1  = sysreg.HCR_NV1
		nv2  = sysreg.HCR_NV2
	)
	type want struct {
		in l2Insn
		at level
	}
	cases := []struct {
		name  string
		traps sysreg.HCR
		want  []want
	}{
		{"none", 0, []want{{sctlrW, hw}, {sctlrR, hw}, {mmfr0, l0}, {mmfr2, l0}, {vmalle1, hw}, {vmalle1is, hw}, {s1e1r, hw}, {curEL, hw}}},
		// TVM traps EL1 writes of the stage-1 controls, TRVM their reads.
		{"TVM", tvm, []want{{sctlrW, l1}, {ttbr0W, l1}, {tcrW, l1}, {mairW, l1}, {sctlrR, hw}, {vbarW, hw}}},
		{"TRVM", trvm, []want{{sctlrR, l1}, {ttbr1R, l1}, {farR, l1}, {sctlrW, hw}}},
		// TID3 traps the ID group 3 reads: to L1 when it asks, else L0's own.
		{"TID3", tid3, []want{{mmfr0, l1}, {mmfr2, l1}, {sctlrR, hw}}},
		// TTLB traps every EL1 TLBI; TTLBIS the Inner Shareable forms,
		// TTLBOS the Outer Shareable ones (FEAT_EVT).
		{"TTLB", sysreg.HCR_TTLB, []want{{vmalle1, l1}, {vae1, l1}, {vmalle1is, l1}, {vae1is, l1}, {vmalle1os, l1}}},
		{"TTLBIS", sysreg.HCR_TTLBIS, []want{{vmalle1is, l1}, {vae1is, l1}, {vmalle1, hw}, {vmalle1os, hw}}},
		{"TTLBOS", sysreg.HCR_TTLBOS, []want{{vmalle1os, l1}, {vmalle1is, hw}, {vae1, hw}}},
		// AT traps the stage-1 EL1 and EL0 forms at EL1.
		{"AT", sysreg.HCR_AT, []want{{s1e1r, l1}, {s1e0w, l1}, {sctlrW, hw}}},
		// NV: ERET, the EL2 registers and *_EL12, the EL2 and stage-2 TLBI
		// and AT forms trap; CurrentEL reads EL2 without a trap.
		{"NV", nv, []want{{eretInsn, l1}, {hcrR, l1}, {vttbrW, l1}, {sctlr2R, l1}, {sctlr12W, l1}, {elr2R, l1},
			{alle2, l1}, {ipas2e1, l1}, {s1e2r, l1}, {s12e1r, l1}, {curEL, hw}, {vbarW, hw}, {s1e1r, hw}}},
		// NV1 (without NV2) traps ELR_EL1, SPSR_EL1 and VBAR_EL1 as well.
		{"NV+NV1", nv | nv1, []want{{vbarW, l1}, {elrR, l1}, {hcrR, l1}, {sctlrW, hw}}},
		// NV2: registers with a VNCR offset are the page, ELR/SPSR/ESR/FAR
		// of EL2 reach EL1's, the others trap as with NV.
		{"NV+NV2", nv | nv2, []want{{vttbrW, nvMemory}, {hcrR, nvMemory}, {sctlr12W, nvMemory}, {elr2R, hw},
			{sctlr2R, l1}, {eretInsn, l1}, {alle2, l1}, {curEL, hw}}},
		// NV1 and NV2 are RES0 without NV (EffectiveHCR_EL2_NVx).
		{"NV1, NV2 without NV", nv1 | nv2, []want{{vbarW, hw}, {elrR, hw}, {sctlrW, hw}}},
		{"TVM+TTLB+AT", tvm | sysreg.HCR_TTLB | sysreg.HCR_AT, []want{{sctlrW, l1}, {vae1, l1}, {s1e0w, l1}, {sctlrR, hw}}},
	}
	const vncrPage = 0x4380_0000
	for _, lv1 := range []struct {
		mode nested.Mode
		e2h  bool
	}{{nested.ModeNV, true}, {nested.ModeNV2, true}, {nested.ModeNV, false}, {nested.ModeNV2, false}} {
		mode := lv1.mode
		for _, c := range cases {
			for _, w := range c.want {
				t.Run(fmt.Sprintf("%v,E2H=%v/%s/%s", mode, lv1.e2h, c.name, w.in.name), func(t *testing.T) {
					r := newRig(t, mode, lv1.e2h, 0)
					rec := &recorder{v: r.v}
					r.a.SetTraps(c.traps)
					if err := r.v.MSR(cpu.VNCR_EL2, vncrPage); err != nil {
						t.Fatal(err)
					}
					if err := r.v.Store(vncrPage+0x078, 8, 0x1234); err != nil { // L2's virtual HCR_EL2
						t.Fatal(err)
					}
					r.run(t, r.a)
					r.v.SetGuestHypervisor(rec)
					// Stand in for L2's code: it ran 3 instructions before this one.
					r.v.PE().PC = 0xc
					before := r.v.Stats()
					got, err := w.in.run(r.v.L2())
					st := r.v.Stats()
					traps, fwd := st.L2Traps-before.L2Traps, st.ForwardedTraps-before.ForwardedTraps
					switch w.at {
					case l1:
						if !errors.Is(err, nested.ErrLeftL2) || rec.n != 1 || fwd != 1 {
							t.Fatalf("%v, %d exceptions to vEL2, %d forwarded; want it forwarded to L1", err, rec.n, fwd)
						}
						if rec.esr != w.in.esr || rec.elr != 0xc || rec.spsr != 0b0101 || rec.hpfar != nested.HPFARUnknown {
							t.Errorf("ESR_EL2 %#x ELR_EL2 %#x SPSR_EL2 %#x HPFAR_EL2 %#x; want %#x 0xc 0b0101 %#x",
								rec.esr, rec.elr, rec.spsr, rec.hpfar, w.in.esr, nested.HPFARUnknown)
						}
						if rec.el != 2<<2 || rec.pc != 0x4000_0c00 {
							t.Errorf("CurrentEL %#x at %#x; want EL2 at VBAR_EL2+0x400", rec.el, uint64(rec.pc))
						}
						return
					case l0:
						if err != nil || traps != 1 || fwd != 0 || rec.n != 0 {
							t.Fatalf("%v; %d traps to L0, %d forwarded, %d to L1; want L0 to emulate it", err, traps, fwd, rec.n)
						}
						if ids := r.nvm.IDRegs(); w.in.name == mmfr0.name && got != uint64(ids.MMFR0) || w.in.name == mmfr2.name && got != uint64(ids.MMFR2) {
							t.Errorf("L2 read %#x, not L1's sanitized value", got)
						}
					case hw, nvMemory:
						if err != nil || traps != 0 || rec.n != 0 {
							t.Fatalf("%v; %d traps to L0, %d to L1; want no exit", err, traps, rec.n)
						}
					}
					if r.v.PE().PC != 0x10 {
						t.Errorf("L2's PC %#x after the instruction, want 0x10", uint64(r.v.PE().PC))
					}
					if w.at == nvMemory {
						// Back at L1, its VNCR page holds what L2 wrote (or read).
						if err := r.v.InterruptToVEL2(); err != nil {
							t.Fatal(err)
						}
						if w.in.name == hcrR.name && got != 0x1234 {
							t.Errorf("L2 read HCR_EL2 %#x from the page, want 0x1234", got)
						}
						for _, chk := range []struct {
							in  l2Insn
							off uint64
						}{{vttbrW, 0x020}, {sctlr12W, 0x110}} {
							if w.in.name == chk.in.name {
								x, err := r.v.Load(mem.VA(vncrPage+chk.off), 8)
								if err != nil || x != 0x1000 {
									t.Errorf("L1's VNCR page +%#x holds %#x (%v), want 0x1000", chk.off, x, err)
								}
							}
						}
					}
					if w.in.name == curEL.name {
						want := uint64(1) << 2
						if c.traps.NV() {
							want = 2 << 2
						}
						if got != want {
							t.Errorf("CurrentEL reads %#x, want %#x", got, want)
						}
					}
				})
			}
		}
	}
}

// emulator is a guest hypervisor that emulates its guest's trapped MRS
// (the value 0x1234 into Xt, through the saved registers) and returns past
// the instruction.
type emulator struct{ n int }

func (h *emulator) Exception(c nested.EL2) error {
	h.n++
	esr, err := c.MRS(cpu.ESR_EL2)
	if err != nil {
		return err
	}
	if esr>>26 != 0x18 || esr&1 == 0 {
		return fmt.Errorf("emulator: ESR_EL2 %#x is not a trapped MRS", esr)
	}
	c.(nested.GPRFrame).GuestGPRs()[esr>>5&31] = 0x1234
	elr, err := c.MRS(cpu.ELR_EL2)
	if err != nil {
		return err
	}
	if err := c.MSR(cpu.ELR_EL2, elr+4); err != nil {
		return err
	}
	return c.ERET()
}

// TestForwardedTrapEmulated: L1 emulates the trap forwarded to it and
// returns to L2 past the instruction, which completes with L1's value in
// its register.
func TestForwardedTrapEmulated(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRig(t, mode, true, 0)
			r.a.SetTraps(sysreg.HCR(1 << 18)) // TID3
			r.run(t, r.a)
			em := &emulator{}
			r.v.SetGuestHypervisor(em)
			pc := r.v.PE().PC
			got, err := r.v.L2().MRS(cpu.ID_AA64MMFR1_EL1)
			if err != nil || got != 0x1234 || em.n != 1 {
				t.Fatalf("L2 read %#x (%v) after %d exceptions to L1; want 0x1234 from L1", got, err, em.n)
			}
			if r.v.PE().PC != pc+4 || !r.v.InL2() {
				t.Errorf("L2 at PC %#x (in L2: %v), want %#x", uint64(r.v.PE().PC), r.v.InL2(), uint64(pc+4))
			}
			// The instruction after it runs in L2 with no exit.
			if _, err := r.v.L2().MRS(cpu.SCTLR_EL1); err != nil || em.n != 1 {
				t.Errorf("next instruction: %v, %d exceptions to L1", err, em.n)
			}
		})
	}
}

// TestVNCRAbortForwarded: L1 runs L2 with FEAT_NV2 but its VNCR_EL2 points
// at an L1 IPA without memory: L2's first redirected register access
// aborts, and L1 receives the abort the hardware would give it: a Data
// Abort from a lower EL (EC 0x24) with ISS.VNCR (bit 13), WnR for a write,
// a synchronous External abort (DFSC 0b010000), FAR_EL2 the address
// accessed (BADDR + the register's offset), HPFAR_EL2 UNKNOWN.
func TestVNCRAbortForwarded(t *testing.T) {
	const nowhere = 0x1000_0000 // no memslot: L1's IPA space has a hole there
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, write := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/write=%v", mode, write), func(t *testing.T) {
				r := newRig(t, mode, true, 0)
				r.a.SetTraps(sysreg.HCR_NV | sysreg.HCR_NV2)
				if err := r.v.MSR(cpu.VNCR_EL2, nowhere); err != nil {
					t.Fatal(err)
				}
				r.run(t, r.a)
				rec := &recorder{v: r.v}
				r.v.SetGuestHypervisor(rec)
				var err error
				if write {
					err = r.v.L2().MSR(cpu.VTCR_EL2, 5)
				} else {
					_, err = r.v.L2().MRS(cpu.VTTBR_EL2)
				}
				if !errors.Is(err, nested.ErrLeftL2) || rec.n != 1 {
					t.Fatalf("%v, %d exceptions to L1", err, rec.n)
				}
				wantESR, wantFAR := uint64(0x24<<26|1<<25|1<<13|0b010000), uint64(nowhere+0x020)
				if write {
					wantESR |= 1 << 6
					wantFAR = nowhere + 0x040
				}
				if rec.esr != wantESR || rec.far != wantFAR || rec.hpfar != nested.HPFARUnknown || rec.pc != 0x4000_0c00 {
					t.Errorf("ESR_EL2 %#x FAR_EL2 %#x HPFAR_EL2 %#x at %#x; want %#x %#x UNKNOWN at VBAR_EL2+0x400",
						rec.esr, rec.far, rec.hpfar, uint64(rec.pc), wantESR, wantFAR)
				}
				if st := r.v.Stats(); st.VNCRFaults != 1 {
					t.Errorf("%d VNCR faults, want 1", st.VNCRFaults)
				}
			})
		}
	}
}

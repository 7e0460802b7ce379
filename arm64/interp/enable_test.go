package interp_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// setOwn writes a register the interpreter keeps, by encoding.
func (r *rig) setOwn(op0, op1, crn, crm, op2 uint8, v uint64) {
	r.t.Helper()
	if !r.c.SetByEncoding(op0, op1, crn, crm, op2, v) {
		r.t.Fatalf("S%d_%d_C%d_C%d_%d is not kept by the interpreter", op0, op1, crn, crm, op2)
	}
}

const (
	msrALLINT1 = 0xd501411f // MSR ALLINT, #1
	msrALLINT0 = 0xd501401f // MSR ALLINT, #0
	msrALLINT2 = 0xd501421f // CRm 0b0010: UNDEFINED (the MSR (immediate) decode)
	mrsALLINT  = 0xd5384300 // MRS X0, ALLINT
	msrALLINTx = 0xd5184301 // MSR ALLINT, X1
	brk1       = 0xd4200020 // BRK #1
	eretInsn   = 0xd69f03e0
	spintmask  = 1 << 62 // SCTLR_ELx.SPINTMASK
	spsrALLINT = 1 << 13
)

// TestALLINTExceptionEntryAndReturn: FEAT_NMI (ID_AA64PFR1_EL1.NMI=1 on the
// model, as QEMU's -cpu max): AArch64.TakeException saves PSTATE.ALLINT in
// SPSR_ELx[13] and sets it to NOT SCTLR_ELx.SPINTMASK; ERET restores it
// from SPSR_ELx[13] (SetPSTATEFromPSR).
func TestALLINTExceptionEntryAndReturn(t *testing.T) {
	cases := []struct {
		name      string
		el        uint8
		allint    bool // before the BRK
		spintmask bool // of the target EL's SCTLR
		wantSPSR  bool
		wantAfter bool
	}{
		{"EL2, ALLINT 0, SPINTMASK 0", 2, false, false, false, true},
		{"EL2, ALLINT 1, SPINTMASK 0", 2, true, false, true, true},
		{"EL2, ALLINT 1, SPINTMASK 1", 2, true, true, true, false},
		{"EL2, ALLINT 0, SPINTMASK 1", 2, false, true, false, false},
		{"EL1, ALLINT 0, SPINTMASK 0", 1, false, false, false, true},
		{"EL1, ALLINT 1, SPINTMASK 1", 1, true, true, true, false},
	}
	for _, tc := range cases {
		r := newRig(t, tc.el)
		if tc.spintmask {
			r.pe.Regs.SCTLR_EL1 |= spintmask
			r.pe.Regs.SCTLR_EL2 |= spintmask
		}
		w := uint32(msrALLINT0)
		if tc.allint {
			w = msrALLINT1
		}
		r.code(w, brk1)
		r.run(2)
		if r.pe.EL != tc.el || r.pe.ESR[tc.el]>>26 != 0x3c {
			t.Fatalf("%s: no BRK taken to EL%d (EL%d, ESR %#x)", tc.name, tc.el, r.pe.EL, uint64(r.pe.ESR[tc.el]))
		}
		if got := r.pe.SPSR[tc.el]&spsrALLINT != 0; got != tc.wantSPSR {
			t.Errorf("%s: SPSR[13] %v, want %v", tc.name, got, tc.wantSPSR)
		}
		if r.c.ALLINT != tc.wantAfter {
			t.Errorf("%s: ALLINT on entry %v, want %v", tc.name, r.c.ALLINT, tc.wantAfter)
		}
		// ERET from the vector restores the saved value.
		if !r.ram.Write(mem.PA(r.pe.PC), 4, eretInsn) {
			t.Fatal("vector outside RAM")
		}
		r.c.InvalidateCode()
		r.pe.ELR[tc.el] = codeBase + 8
		r.run(1)
		if r.c.ALLINT != tc.wantSPSR {
			t.Errorf("%s: ALLINT after ERET %v, want SPSR[13] %v", tc.name, r.c.ALLINT, tc.wantSPSR)
		}
	}
}

// TestALLINTAccess: MSR ALLINT, #imm and MRS/MSR ALLINT: UNDEFINED at EL0
// (op1 0b001/0b000: EL1 and up), CRm<3:1> != 0 UNDEFINED (and not an
// encoding the interpreter lacks), the register view at bit 13 only.
func TestALLINTAccess(t *testing.T) {
	r := newRig(t, 1)
	r.c.X[1] = ^uint64(0)
	r.code(msrALLINT1, mrsALLINT, msrALLINT0, msrALLINTx)
	r.run(2)
	if !r.c.ALLINT || r.c.X[0] != spsrALLINT {
		t.Errorf("after MSR ALLINT, #1: ALLINT %v, MRS %#x; want true, %#x", r.c.ALLINT, r.c.X[0], spsrALLINT)
	}
	r.run(1)
	if r.c.ALLINT {
		t.Error("MSR ALLINT, #0 left ALLINT set")
	}
	r.run(1)
	if !r.c.ALLINT {
		t.Error("MSR ALLINT, X1 (bit 13 set) left ALLINT clear")
	}
	if v, _ := r.c.Get("ALLINT"); v != spsrALLINT {
		t.Errorf("ALLINT reads %#x, want only bit 13", v)
	}

	for _, tc := range []struct {
		name string
		el   uint8
		w    uint32
	}{
		{"MSR ALLINT, #1 at EL0", 0, msrALLINT1},
		{"MRS ALLINT at EL0", 0, mrsALLINT},
		{"MSR ALLINT, X1 at EL0", 0, msrALLINTx},
		{"MSR ALLINT with CRm 0b0010 at EL1", 1, msrALLINT2},
		{"MSR ALLINT with CRm 0b0010 at EL2", 2, msrALLINT2},
	} {
		r := newRig(t, tc.el)
		if tc.el == 0 {
			r.pe.SP = false
		}
		r.code(tc.w)
		r.run(1)
		want := tc.el
		if want == 0 {
			want = 1
		}
		if r.pe.EL != want || uint64(r.pe.ESR[want]) != 1<<25 {
			t.Errorf("%s: EL%d ESR %#x, want UNDEFINED at EL%d", tc.name, r.pe.EL, uint64(r.pe.ESR[want]), want)
		}
		if len(r.undef) != 0 {
			t.Errorf("%s: reported as not implemented: %v", tc.name, r.undef)
		}
	}
}

// TestTACR: HCR_EL2.TACR traps ACTLR_EL1 accesses at EL1 to EL2 (EC 0x18,
// ISS with the encoding, Rt and direction), not at EL2; with
// HCR_EL2.{NV,NV1,NV2} it comes before the VNCR page redirection.
func TestTACR(t *testing.T) {
	const (
		mrsACTLR = 0xd5381022 // MRS X2, ACTLR_EL1
		msrACTLR = 0xd5181022 // MSR ACTLR_EL1, X2
		tacr     = sysreg.HCR(1 << 21)
		// ISS: Op0 3 [21:20], Op2 1 [19:17], Op1 0, CRn 1 [13:10], Rt 2 [9:5], CRm 0, direction [0].
		iss = 3<<20 | 1<<17 | 1<<10 | 2<<5
	)
	cases := []struct {
		name   string
		el     uint8
		hcr    sysreg.HCR
		w      uint32
		target uint8
		esr    uint64
	}{
		{"MRS at EL1 with TACR", 1, tacr, mrsACTLR, 2, 0x18<<26 | 1<<25 | iss | 1},
		{"MSR at EL1 with TACR", 1, tacr, msrACTLR, 2, 0x18<<26 | 1<<25 | iss},
		{"MRS at EL1 with TACR and NV, NV1, NV2", 1, tacr | 1<<42 | 1<<43 | 1<<45, mrsACTLR, 2, 0x18<<26 | 1<<25 | iss | 1},
		{"MRS at EL1 without TACR", 1, 0, mrsACTLR, 1, 0},
		{"MRS at EL2 with TACR", 2, tacr, mrsACTLR, 2, 0},
	}
	for _, tc := range cases {
		r := newRigHCR(t, tc.el, tc.hcr)
		r.code(tc.w)
		r.run(1)
		if tc.esr == 0 {
			if r.pe.PC != codeBase+4 || r.pe.EL != tc.el {
				t.Errorf("%s: did not complete (EL%d PC %#x)", tc.name, r.pe.EL, r.pe.PC)
			}
			continue
		}
		if r.pe.EL != tc.target || uint64(r.pe.ESR[tc.target]) != tc.esr {
			t.Errorf("%s: EL%d ESR %#x, want EL%d ESR %#x", tc.name, r.pe.EL, uint64(r.pe.ESR[r.pe.EL]), tc.target, tc.esr)
		}
	}
}

// TestSVEEnableTraps: an SVE encoding (op0 = 0b0010) meets
// AArch64.CheckSVEEnabled's checks in its order: CPACR_EL1.ZEN, then
// CPACR_EL1.FPEN (EL0/EL1, to EL1; to EL2 from EL0 with TGE), then
// CPTR_EL2.TZ (E2H=0) or ZEN (E2H=1), then CPTR_EL2.TFP or FPEN (to EL2).
// SVE access trap: EC 0x19, ISS 0; FP/SIMD: EC 0x07, CV=1, COND=0b1110.
// Enabled, the interpreter does not execute it: UNDEFINED, named to Strict.
func TestSVEEnableTraps(t *testing.T) {
	const (
		rdvl = 0x04bf5020 // RDVL X0, #1
		sve  = 0x19<<26 | 1<<25
		fp   = 0x07<<26 | 1<<25 | 1<<24 | 0xe<<20
		und  = 1 << 25
		zen3 = 3 << 16
		fp3  = 3 << 20
		tz   = 1 << 8
		tfp  = 1 << 10
		e2h  = sysreg.HCR(1 << 34)
		tge  = sysreg.HCR(1 << 27)
	)
	cases := []struct {
		name        string
		el          uint8
		hcr         sysreg.HCR
		cpacr, cptr uint64
		target      uint8
		esr         uint64
	}{
		{"EL1 ZEN 0 FPEN 0", 1, 0, 0, 0, 1, sve},
		{"EL1 ZEN 2 FPEN 3", 1, 0, 2 << 16, 0, 1, sve},
		{"EL1 ZEN 3 FPEN 0", 1, 0, zen3, 0, 1, fp},
		{"EL1 ZEN 0 FPEN 3, TZ: CPACR_EL1 first", 1, 0, fp3, tz, 1, sve},
		{"EL1 ZEN 3 FPEN 3, TZ", 1, 0, zen3 | fp3, tz, 2, sve},
		{"EL1 ZEN 3 FPEN 3, TZ and TFP: TZ first", 1, 0, zen3 | fp3, tz | tfp, 2, sve},
		{"EL1 ZEN 3 FPEN 3, TFP", 1, 0, zen3 | fp3, tfp, 2, fp},
		{"EL1 enabled", 1, 0, zen3 | fp3, 0, 1, und},
		{"EL1 ZEN 1 (EL0 only)", 1, 0, 1<<16 | fp3, 0, 1, und},
		{"EL0 ZEN 1", 0, 0, 1<<16 | fp3, 0, 1, sve},
		{"EL0 ZEN 3 FPEN 1", 0, 0, zen3 | 1<<20, 0, 1, fp},
		{"EL0 ZEN 0 with TGE: to EL2", 0, tge, 0, 0, 2, sve},
		{"EL2 TZ", 2, 0, 0, tz, 2, sve},
		{"EL2 TFP", 2, 0, 0, tfp, 2, fp},
		{"EL2 CPACR_EL1 does not apply", 2, 0, 0, 0, 2, und},
		{"EL2 E2H CPTR_EL2.ZEN 0", 2, e2h, 0, fp3, 2, sve},
		{"EL2 E2H CPTR_EL2.ZEN 3 FPEN 0", 2, e2h, 0, zen3, 2, fp},
		{"EL2 E2H CPTR_EL2.ZEN 1 (EL0 with TGE only)", 2, e2h, 0, 1<<16 | fp3, 2, und},
		{"EL0 E2H TGE CPTR_EL2.ZEN 1", 0, e2h | tge, 0, 1<<16 | fp3, 2, sve},
		{"EL1 E2H CPTR_EL2.ZEN 0", 1, e2h, zen3 | fp3, fp3, 2, sve},
	}
	for _, tc := range cases {
		r := newRigHCR(t, tc.el, tc.hcr)
		r.setOwn(3, 0, 1, 0, 2, tc.cpacr) // CPACR_EL1
		r.setOwn(3, 4, 1, 1, 2, tc.cptr)  // CPTR_EL2
		r.code(rdvl)
		r.run(1)
		if r.pe.EL != tc.target || uint64(r.pe.ESR[tc.target]) != tc.esr {
			t.Errorf("%s: EL%d ESR %#x, want EL%d ESR %#x", tc.name, r.pe.EL, uint64(r.pe.ESR[r.pe.EL]), tc.target, tc.esr)
		}
		if tc.esr == und && len(r.undef) != 1 {
			t.Errorf("%s: Strict reports %v, want the SVE instruction named", tc.name, r.undef)
		}
		if tc.esr != und && len(r.undef) != 0 {
			t.Errorf("%s: a trap reported as not implemented: %v", tc.name, r.undef)
		}
	}
}

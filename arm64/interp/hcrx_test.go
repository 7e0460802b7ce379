package interp_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

const (
	mrsHCRX = 0xd53c1241 // MRS X1, HCRX_EL2
	msrHCRX = 0xd51c1241 // MSR HCRX_EL2, X1
)

// sysTrapISS is the ISS of an EC 0x18 trap of a System register access
// (Op0, Op2, Op1, CRn, Rt, CRm, Direction).
func sysTrapISS(op0, op1, crn, crm, op2, rt uint64, read bool) uint64 {
	iss := op0<<20 | op2<<17 | op1<<14 | crn<<10 | rt<<5 | crm<<1
	if read {
		iss |= 1
	}
	return iss
}

// TestHCRXAccessibility: HCRX_EL2's accessibility pseudocode (FEAT_HCX,
// as ID_AA64MMFR1_EL1.HCX says): UNDEFINED at EL0; at EL1 NVMem[0x0A0]
// with HCR_EL2.{NV2,NV}={1,1}, trapped to EL2 (EC 0x18) with NV=1 alone,
// UNDEFINED otherwise; the register at EL2 (no EL3: SCR_EL3.HXEn has no
// effect).
func TestHCRXAccessibility(t *testing.T) {
	const nv, nv1, nv2 = sysreg.HCR_NV, sysreg.HCR_NV1, sysreg.HCR_NV2
	const (
		reg   = iota // the register
		undef        // UNDEFINED at the current EL (EL1 for EL0)
		trap         // EC 0x18 to EL2
		vncr         // the VNCR page at 0x0a0
	)
	for _, c := range []struct {
		name string
		el   uint8
		word uint32
		hcr  sysreg.HCR
		want int
	}{
		{"EL0 MRS", 0, mrsHCRX, 0, undef},
		{"EL0 MSR", 0, msrHCRX, 0, undef},
		{"EL0 MSR, NV NV2", 0, msrHCRX, nv | nv2, undef},
		{"EL1 MRS", 1, mrsHCRX, 0, undef},
		{"EL1 MSR", 1, msrHCRX, 0, undef},
		{"EL1 MSR, NV1 alone", 1, msrHCRX, nv1, undef},
		{"EL1 MRS, NV2 without NV", 1, mrsHCRX, nv2, undef},
		{"EL1 MRS, NV", 1, mrsHCRX, nv, trap},
		{"EL1 MSR, NV NV1", 1, msrHCRX, nv | nv1, trap},
		{"EL1 MRS, NV NV2", 1, mrsHCRX, nv | nv2, vncr},
		{"EL1 MSR, NV NV2", 1, msrHCRX, nv | nv2, vncr},
		{"EL1 MSR, NV NV1 NV2", 1, msrHCRX, nv | nv1 | nv2, vncr},
		{"EL2 MRS", 2, mrsHCRX, 0, reg},
		{"EL2 MSR", 2, msrHCRX, 0, reg},
		{"EL2 MSR, NV NV2 (not applied at EL2)", 2, msrHCRX, nv | nv2, reg},
	} {
		r := newRig(t, c.el)
		if c.el == 0 {
			r.pe.SP = false
		}
		r.pe.Regs.HCR_EL2 |= c.hcr
		r.pe.Regs.MMFR2 = r.pe.Regs.MMFR2&^(0xf<<24) | 2<<24 // FEAT_NV2
		r.pe.VNCR = dataBase
		r.pe.RegsChanged()
		r.setOwn(3, 4, 1, 2, 2, 1<<6)
		r.ram.Write(dataBase+0xa0, 8, 0x5a5a)
		r.c.X[1] = 1 << 3
		read := c.word == mrsHCRX
		r.code(c.word)
		r.run(1)
		hcrx, _ := r.c.Get("HCRX_EL2")
		page, _ := r.ram.Read(mem.PA(dataBase+0xa0), 8)
		switch c.want {
		case undef:
			want := c.el
			if want == 0 {
				want = 1
			}
			if r.pe.EL != want || uint64(r.pe.ESR[want]) != 1<<25 {
				t.Errorf("%s: EL%d ESR %#x, want UNDEFINED at EL%d", c.name, r.pe.EL, uint64(r.pe.ESR[want]), want)
			}
		case trap:
			esr := r.pe.ESR[2]
			if r.pe.EL != 2 || esr.EC() != 0x18 || uint64(esr)&0x1ffffff != sysTrapISS(3, 4, 1, 2, 2, 1, read) {
				t.Errorf("%s: EL%d ESR_EL2 %#x, want EC 0x18 with ISS %#x", c.name, r.pe.EL, uint64(esr), sysTrapISS(3, 4, 1, 2, 2, 1, read))
			}
		case vncr:
			r.completedAtEL1(c.name)
			if read && r.c.X[1] != 0x5a5a {
				t.Errorf("%s: read %#x, want the VNCR page's 0x5a5a", c.name, r.c.X[1])
			}
			if !read && page != 1<<3 {
				t.Errorf("%s: VNCR page at 0x0a0 holds %#x, want 0x8", c.name, page)
			}
			if hcrx != 1<<6 {
				t.Errorf("%s: HCRX_EL2 %#x changed, want 0x40", c.name, hcrx)
			}
		case reg:
			if r.pe.EL != 2 || r.pe.PC != codeBase+4 {
				t.Fatalf("%s: EL%d PC %#x, want the next instruction at EL2", c.name, r.pe.EL, r.pe.PC)
			}
			if read && r.c.X[1] != 1<<6 {
				t.Errorf("%s: read %#x, want 0x40", c.name, r.c.X[1])
			}
			if !read && hcrx != 1<<3 {
				t.Errorf("%s: HCRX_EL2 %#x, want 0x8", c.name, hcrx)
			}
		}
		if c.want != vncr && page != 0x5a5a {
			t.Errorf("%s: the VNCR page changed to %#x", c.name, page)
		}
	}
}

// TestHCRXReadBack: an MSR of HCRX_EL2 at EL2 reads back with the fields
// of the features the ID registers say are implemented (FEAT_XS: FnXS,
// FGTnXS; FEAT_NMI: TALLINT, VINMI, VFNMI; FEAT_CMOW: CMOW; FEAT_MOPS:
// MCE2, MSCEn) and every other bit RES0 (EnAS0/EnALS/EnASR of FEAT_LS64,
// SMPME of FEAT_SME, TCR2En, SCTLR2En, ... whose ID fields are 0). Its
// reset value is QEMU's (UNKNOWN in the architecture): 0.
func TestHCRXReadBack(t *testing.T) {
	const implemented = 1<<3 | 1<<4 | 1<<6 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11
	r := newRig(t, 2)
	r.code(mrsHCRX, msrHCRX, mrsHCRX, msrHCRX, mrsHCRX)
	r.c.X[1] = 0x1234
	r.run(1)
	if r.c.X[1] != 0 {
		t.Errorf("HCRX_EL2 at reset %#x, want 0", r.c.X[1])
	}
	for _, v := range []uint64{^uint64(0), 1<<0 | 1<<5 | 1<<12 | 1<<13 | 1<<63} {
		r.c.X[1] = v
		r.run(2)
		if want := v & implemented; r.c.X[1] != want {
			t.Errorf("MSR HCRX_EL2, %#x: reads %#x, want %#x", v, r.c.X[1], want)
		}
	}
}

// TestTALLINT: HCRX_EL2.TALLINT traps to EL2 (EC 0x18) the writes of
// PSTATE.ALLINT at EL1: MSR ALLINT, Xt and MSR ALLINT, #1 (with the MSR
// (immediate) ISS: Op0 0b00, Op1 0b001, CRn 4, CRm the immediate, Rt
// 0b11111), not MSR ALLINT, #0 and not MRS ALLINT; never at EL2.
func TestTALLINT(t *testing.T) {
	for _, c := range []struct {
		name    string
		el      uint8
		word    uint32
		tallint bool
		trapISS int64 // -1: no trap
	}{
		{"EL1 MSR ALLINT, #1", 1, msrALLINT1, true, int64(sysTrapISS(0, 1, 4, 1, 0, 31, false))},
		{"EL1 MSR ALLINT, X1", 1, msrALLINTx, true, int64(sysTrapISS(3, 0, 4, 3, 0, 1, false))},
		{"EL1 MSR ALLINT, #0", 1, msrALLINT0, true, -1},
		{"EL1 MRS ALLINT", 1, mrsALLINT, true, -1},
		{"EL1 MSR ALLINT, #1 without TALLINT", 1, msrALLINT1, false, -1},
		{"EL1 MSR ALLINT, X1 without TALLINT", 1, msrALLINTx, false, -1},
		{"EL2 MSR ALLINT, #1", 2, msrALLINT1, true, -1},
		{"EL2 MSR ALLINT, X1", 2, msrALLINTx, true, -1},
	} {
		r := newRig(t, c.el)
		if c.tallint {
			r.setOwn(3, 4, 1, 2, 2, 1<<6)
		}
		r.c.X[1] = spsrALLINT
		r.code(c.word)
		r.run(1)
		if c.trapISS < 0 {
			if r.pe.EL != c.el || r.pe.PC != codeBase+4 {
				t.Errorf("%s: EL%d PC %#x, want completed", c.name, r.pe.EL, r.pe.PC)
			}
			continue
		}
		esr := r.pe.ESR[2]
		if r.pe.EL != 2 || esr.EC() != 0x18 || int64(uint64(esr)&0x1ffffff) != c.trapISS {
			t.Errorf("%s: EL%d ESR_EL2 %#x, want EC 0x18 ISS %#x", c.name, r.pe.EL, uint64(esr), c.trapISS)
		}
		if r.pe.SPSR[2]&spsrALLINT != 0 { // entry to EL2 sets ALLINT itself
			t.Errorf("%s: the trapped write set ALLINT (SPSR_EL2 %#x)", c.name, r.pe.SPSR[2])
		}
	}
}

package interp_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// TestIDRegisterTraps: which ID-space reads at EL1 the HCR_EL2.TID bits
// trap to EL2 (EC 0x18). TID3 traps ID group 3 only, the registers at
// op0=3, op1=0, CRn=0, CRm=1..7 (HCR_EL2.TID3); MIDR_EL1 and MPIDR_EL1
// (CRm=0) are never trapped, an EL1 read returning VPIDR_EL2/VMPIDR_EL2
// (their accessibility pseudocode); REVIDR_EL1 and AIDR_EL1 are TID1's.
func TestIDRegisterTraps(t *testing.T) {
	const tid1, tid3 = sysreg.HCR(1) << 16, sysreg.HCR(1) << 18
	mrs := func(op1, crm, op2 uint32) uint32 { return 0xd5380001 | op1<<16 | crm<<8 | op2<<5 } // MRS X1, S3_<op1>_C0_C<crm>_<op2>
	for _, c := range []struct {
		name string
		word uint32
		hcr  sysreg.HCR
		trap bool
	}{
		{"MIDR_EL1, TID3", mrs(0, 0, 0), tid3, false},
		{"MPIDR_EL1, TID3", mrs(0, 0, 5), tid3, false},
		{"REVIDR_EL1, TID3", mrs(0, 0, 6), tid3, false},
		{"REVIDR_EL1, TID1", mrs(0, 0, 6), tid1, true},
		{"AIDR_EL1, TID1", mrs(1, 0, 7), tid1, true},
		{"ID_AA64PFR0_EL1, TID3", mrs(0, 4, 0), tid3, true},
		{"ID_AA64MMFR0_EL1, TID3", mrs(0, 7, 0), tid3, true},
		{"ID_AA64MMFR0_EL1, TID1", mrs(0, 7, 0), tid1, false},
		{"ID_AA64MMFR0_EL1, no trap bit", mrs(0, 7, 0), 0, false},
	} {
		r := newRigHCR(t, 1, c.hcr)
		r.code(c.word)
		r.run(1)
		if !c.trap {
			r.completedAtEL1(c.name)
			continue
		}
		if esr := r.pe.ESR[2]; r.pe.EL != 2 || esr.EC() != 0x18 || uint64(esr)&1 != 1 {
			t.Errorf("%s: EL%d ESR_EL2 %#x, want a trapped MRS (EC 0x18, direction read) at EL2", c.name, r.pe.EL, uint64(esr))
		}
	}
}

// TestSetByEncoding: a hypervisor's write of VPIDR_EL2 through
// SetByEncoding is what an EL1 read of MIDR_EL1 returns (EL2 enabled:
// MIDR_EL1 reads VPIDR_EL2), GetByEncoding reads it back, and an encoding
// the PE's register model holds (SCTLR_EL1) is refused.
func TestSetByEncoding(t *testing.T) {
	r := newRig(t, 1)
	if !r.c.SetByEncoding(3, 4, 0, 0, 0, 0x41aa0010) {
		t.Fatal("SetByEncoding(VPIDR_EL2) refused")
	}
	if x, ok := r.c.GetByEncoding(3, 4, 0, 0, 0); !ok || x != 0x41aa0010 {
		t.Errorf("GetByEncoding(VPIDR_EL2) = %#x, %v", x, ok)
	}
	r.code(0xd5380001) // MRS X1, MIDR_EL1
	r.run(1)
	if r.pe.EL != 1 || r.c.X[1] != 0x41aa0010 {
		t.Errorf("MIDR_EL1 at EL1 = %#x (EL%d), want VPIDR_EL2 %#x", r.c.X[1], r.pe.EL, 0x41aa0010)
	}
	if r.c.SetByEncoding(3, 0, 1, 0, 0, 1) {
		t.Error("SetByEncoding(SCTLR_EL1) accepted a register of the PE's model")
	}
}

// TestEL2ControlTraps: the EL2 controls of registers the interpreter keeps
// that trap EL1 accesses to EL2 with EC 0x18: CPTR_EL2.TCPAC (CPACR_EL1),
// MDCR_EL2.TDA and TDE (MDSCR_EL1), CNTHCTL_EL2.EL1PCTEN=0 (CNTPCT_EL0,
// E2H=0), each register's accessibility pseudocode; HSTR_EL2 traps only
// AArch32 accesses, so an AArch64 MRS of a CRn=1 register completes.
func TestEL2ControlTraps(t *testing.T) {
	const (
		mrsCPACR  = 0xd5381041 // MRS X1, CPACR_EL1
		msrCPACR  = 0xd5181041 // MSR CPACR_EL1, X1
		mrsMDSCR  = 0xd5300241 // MRS X1, MDSCR_EL1
		mrsCNTPCT = 0xd53be021 // MRS X1, CNTPCT_EL0
		mrsSCTLR  = 0xd5381001 // MRS X1, SCTLR_EL1
	)
	for _, c := range []struct {
		name     string
		word     uint32
		reg      string
		val      uint64
		trap     bool
		wantRead bool
	}{
		{"CPACR_EL1 read, TCPAC", mrsCPACR, "CPTR_EL2", 1 << 31, true, true},
		{"CPACR_EL1 write, TCPAC", msrCPACR, "CPTR_EL2", 1 << 31, true, false},
		{"CPACR_EL1, TFP only", mrsCPACR, "CPTR_EL2", 1 << 10, false, true},
		{"MDSCR_EL1, TDA", mrsMDSCR, "MDCR_EL2", 1 << 9, true, true},
		{"MDSCR_EL1, TDE", mrsMDSCR, "MDCR_EL2", 1 << 8, true, true},
		{"MDSCR_EL1, HPMN only", mrsMDSCR, "MDCR_EL2", 6, false, true},
		{"CNTPCT_EL0, EL1PCTEN=0", mrsCNTPCT, "CNTHCTL_EL2", 2, true, true},
		{"CNTPCT_EL0, EL1PCTEN=1", mrsCNTPCT, "CNTHCTL_EL2", 1, false, true},
		{"SCTLR_EL1, HSTR_EL2.T1", mrsSCTLR, "HSTR_EL2", 0xffff, false, true},
	} {
		r := newRig(t, 1)
		enc := map[string][3]uint8{"CPTR_EL2": {1, 1, 2}, "MDCR_EL2": {1, 1, 1}, "CNTHCTL_EL2": {14, 1, 0}, "HSTR_EL2": {1, 1, 3}}[c.reg]
		if !r.c.SetByEncoding(3, 4, enc[0], enc[1], enc[2], c.val) {
			t.Fatalf("%s: SetByEncoding(%s) refused", c.name, c.reg)
		}
		r.code(c.word)
		r.run(1)
		if !c.trap {
			r.completedAtEL1(c.name)
			continue
		}
		esr := r.pe.ESR[2]
		if r.pe.EL != 2 || esr.EC() != 0x18 || (uint64(esr)&1 == 1) != c.wantRead || uint64(esr)>>5&31 != 1 {
			t.Errorf("%s: EL%d ESR_EL2 %#x, want EC 0x18, Rt 1, read %v at EL2", c.name, r.pe.EL, uint64(esr), c.wantRead)
		}
	}
}

// TestCodeWritten: an instruction rewritten in memory behind the PE (not
// by a store the PE makes, which the interpreter watches) executes in its
// new form once CodeWritten reports the write: the decoded form of the old
// word is dropped.
func TestCodeWritten(t *testing.T) {
	const movz1, movz2 = 0xd2800021, 0xd2800041 // MOVZ X1, #1; MOVZ X1, #2
	r := newRig(t, 1)
	r.code(movz1)
	r.run(1)
	if r.c.X[1] != 1 {
		t.Fatalf("X1 = %d after MOVZ X1, #1", r.c.X[1])
	}
	if !r.ram.Write(codeBase, 4, movz2) {
		t.Fatal("RAM write failed")
	}
	r.c.CodeWritten(codeBase, 4)
	r.pe.PC = codeBase
	r.run(1)
	if r.c.X[1] != 2 {
		t.Errorf("X1 = %d after the word was rewritten to MOVZ X1, #2 and reported", r.c.X[1])
	}
}

// completedAtEL1 checks that the instruction at codeBase completed at EL1.
func (r *rig) completedAtEL1(name string) {
	r.t.Helper()
	if r.pe.EL != 1 || r.pe.PC != codeBase+4 {
		r.t.Errorf("%s: EL%d PC %#x (ESR_EL2 %#x), want the access to complete at EL1", name, r.pe.EL, r.pe.PC, uint64(r.pe.ESR[2]))
	}
}

// TestNV2KeptEL1Registers: with HCR_EL2.{NV,NV1,NV2}={1,1,1} an EL1 access
// to an EL1 register the interpreter keeps that has a VNCR page offset is a
// 64-bit access at VNCR_EL2 + offset (CONTEXTIDR_EL1 0x108, MDSCR_EL1
// 0x158), after the register's own trap controls (HCR_EL2.TVM,
// MDCR_EL2.TDA); with NV1=0 it reaches the register.
func TestNV2KeptEL1Registers(t *testing.T) {
	const (
		msrCONTEXTIDR = 0xd518d021 // MSR CONTEXTIDR_EL1, X1
		mrsMDSCR      = 0xd5300241 // MRS X1, MDSCR_EL1
		nv, nv1, nv2  = sysreg.HCR_NV, sysreg.HCR_NV1, sysreg.HCR_NV2
	)
	for _, c := range []struct {
		name   string
		word   uint32
		hcr    sysreg.HCR
		mdcr   uint64
		off    uint64 // the VNCR page offset reached, 0: the register
		trap   bool
		isRead bool
	}{
		{"CONTEXTIDR_EL1 write, NV2 NV1", msrCONTEXTIDR, nv | nv1 | nv2, 6, 0x108, false, false},
		{"CONTEXTIDR_EL1 write, NV2 NV1, TVM first", msrCONTEXTIDR, nv | nv1 | nv2 | sysreg.HCR_TVM, 6, 0, true, false},
		{"CONTEXTIDR_EL1 write, NV2 without NV1", msrCONTEXTIDR, nv | nv2, 6, 0, false, false},
		{"MDSCR_EL1 read, NV2 NV1", mrsMDSCR, nv | nv1 | nv2, 6, 0x158, false, true},
		{"MDSCR_EL1 read, NV2 NV1, TDA first", mrsMDSCR, nv | nv1 | nv2, 6 | 1<<9, 0, true, true},
		// The kept EL2 registers with a VNCR offset: NV2 replaces their NV trap (NV1 either way).
		{"VPIDR_EL2 write, NV2", 0xd51c0001, nv | nv2, 6, 0x088, false, false},
		{"VMPIDR_EL2 write, NV2 NV1", 0xd51c00a1, nv | nv1 | nv2, 6, 0x050, false, false},
		{"CNTVOFF_EL2 write, NV2", 0xd51ce061, nv | nv2, 6, 0x060, false, false},
		{"HSTR_EL2 write, NV2", 0xd51c1161, nv | nv2, 6, 0x080, false, false},
		{"VPIDR_EL2 write, NV without NV2: trapped", 0xd51c0001, nv, 6, 0, true, false},
		{"CNTVOFF_EL2 write, NV without NV2: trapped", 0xd51ce061, nv | nv1, 6, 0, true, false},
	} {
		r := newRig(t, 1)
		r.pe.Regs.HCR_EL2 |= c.hcr
		r.pe.Regs.MMFR2 = r.pe.Regs.MMFR2&^(0xf<<24) | 2<<24 // FEAT_NV2
		r.pe.VNCR = dataBase
		r.pe.RegsChanged()
		r.c.SetByEncoding(3, 4, 1, 1, 1, c.mdcr)
		r.ram.Write(dataBase+0x158, 8, 0x5a5a)
		r.c.X[1] = 0x77
		r.code(c.word)
		r.run(1)
		if c.trap {
			if esr := r.pe.ESR[2]; r.pe.EL != 2 || esr.EC() != 0x18 {
				t.Errorf("%s: EL%d ESR_EL2 %#x, want the trap (EC 0x18) before any redirection", c.name, r.pe.EL, uint64(esr))
			}
			continue
		}
		r.completedAtEL1(c.name)
		page, _ := r.ram.Read(mem.PA(dataBase+c.off), 8)
		switch {
		case c.isRead && r.c.X[1] != 0x5a5a:
			t.Errorf("%s: read %#x, want the VNCR page's %#x", c.name, r.c.X[1], 0x5a5a)
		case !c.isRead && c.off != 0 && page != 0x77:
			t.Errorf("%s: the VNCR page at %#x holds %#x, want 0x77", c.name, c.off, page)
		case !c.isRead && c.off == 0:
			if x, _ := r.c.Get("CONTEXTIDR_EL1"); x != 0x77 {
				t.Errorf("%s: CONTEXTIDR_EL1 %#x, want 0x77 in the register", c.name, x)
			}
		}
	}
}

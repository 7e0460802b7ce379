package nested_test

import (
	"errors"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// TestKeptEL2TrapFromL2: L2 is itself a guest hypervisor (L1's virtual
// HCR_EL2.NV=1, the recursion of testdata/a64/recurse.c). Its MSR/MRS of an
// EL2 register the PE keeps outside its register model (SP_EL1, TPIDR_EL2:
// an interpreter's) traps at EL1 with NV (EC 0x18) and is L1's trap: L0
// forwards it to vEL2 with that syndrome, ELR_EL2 the instruction, vector
// VBAR_EL2 + 0x400. Without L1's NV such an access is UNDEFINED at EL1
// and never reaches L0 as a trap; one that does is an error.
func TestKeptEL2TrapFromL2(t *testing.T) {
	const vbar, l2pc = 0x4000_8000, 0x4000_2000
	for _, tc := range []struct {
		name                   string
		nv                     bool
		op1, crn, crm, op2, rt uint8
		read                   bool
	}{
		{"MSR SP_EL1", true, 4, 4, 1, 0, 2, false},
		{"MRS TPIDR_EL2", true, 4, 13, 0, 2, 5, true},
		{"MSR SP_EL1 without NV", false, 4, 4, 1, 0, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newOnPERig(t, nested.ModeNV)
			v, pe := r.v, r.pe
			hcr := uint64(1 << 31) // RW
			if tc.nv {
				hcr |= 1 << 42 // NV
			}
			r.el2Reg(12, 0, 0, false, vbar) // VBAR_EL2
			r.el2Reg(1, 1, 0, false, hcr)   // HCR_EL2
			r.el2Reg(4, 0, 0, false, 0x3c5) // SPSR_EL2: EL1h
			r.el2Reg(4, 0, 1, false, l2pc)  // ELR_EL2
			e := cpu.Exception{Kind: cpu.ERETTrap, TargetEL: 2, ESR: 0x1a<<26 | 1<<25}
			pe.TakeException(&e)
			r.exit()
			if !v.InL2() {
				t.Fatal("ERET did not enter L2")
			}
			if got := pe.Regs.HCR_EL2.NV(); got != tc.nv {
				t.Fatalf("the PE's HCR_EL2.NV in L2 = %v, want L1's %v", got, tc.nv)
			}
			trap := pe.SysTrap(2, 3, tc.op1, tc.crn, tc.crm, tc.op2, tc.rt, tc.read)
			x, err := v.PEExit(&trap, &r.regs, &r.sp)
			if !tc.nv {
				if !errors.Is(err, nested.ErrUnhandled) {
					t.Fatalf("PEExit = %v, %v; want ErrUnhandled", x.Reason, err)
				}
				return
			}
			if err != nil || x.Reason != nested.ExitVEL2 || v.InL2() || pe.PC != vbar+0x400 {
				t.Fatalf("PEExit = %v, %v; in L2 %v, PC %#x; want ExitVEL2 at %#x", x.Reason, err, v.InL2(), uint64(pe.PC), vbar+0x400)
			}
			pe.PC = vbar + 0x400
			esr, elr := r.el2Reg(5, 2, 0, true, 0), r.el2Reg(4, 0, 1, true, 0) // MRS ESR_EL2, ELR_EL2
			if esr != uint64(trap.ESR) || elr != l2pc {
				t.Errorf("ESR_EL2 %#x ELR_EL2 %#x, want %#x %#x", esr, elr, uint64(trap.ESR), uint64(l2pc))
			}
		})
	}
}

// TestL2NV2KeptRegsReachL1Page: L1 runs L2 with HCR_EL2.{NV,NV2}={1,1}
// and its VNCR page at VNCR_EL2. L2's MSR SP_EL1 and MSR TPIDR_EL2, which
// the PE here keeps outside its model and redirects to the VNCR page
// (NVMem[0x240], NVMem[0x090]), must land in L1's page, where L1 reads its
// guest's SP_EL1 and TPIDR_EL2 once L2 exits to it (L0 runs L2 on a frame
// of its own that mirrors the page).
func TestL2NV2KeptRegsReachL1Page(t *testing.T) {
	const vbar, l2pc, page = 0x4000_8000, 0x4000_2000, 0x4010_0000
	r := newOnPERig(t, nested.ModeNV)
	v, pe := r.v, r.pe
	r.el2Reg(2, 2, 0, false, page)              // VNCR_EL2
	r.el2Reg(12, 0, 0, false, vbar)             // VBAR_EL2
	r.el2Reg(1, 1, 0, false, 1<<31|1<<42|1<<45) // HCR_EL2: RW, NV, NV2
	r.el2Reg(4, 0, 0, false, 0x3c5)             // SPSR_EL2: EL1h
	r.el2Reg(4, 0, 1, false, l2pc)              // ELR_EL2
	e := cpu.Exception{Kind: cpu.ERETTrap, TargetEL: 2, ESR: 0x1a<<26 | 1<<25}
	pe.TakeException(&e)
	r.exit()
	if !v.InL2() || !pe.Regs.HCR_EL2.NV2() {
		t.Fatalf("in L2 %v, the PE's HCR_EL2 %#x: want L2 with NV2", v.InL2(), uint64(pe.Regs.HCR_EL2))
	}
	want := map[uint16]uint64{0x240: 0x4000_7ff0, 0x090: 0xfeed}
	for off, x := range want {
		if _, ae := pe.NV2Access(off, true, x); ae.Taken() {
			t.Fatalf("L2's FEAT_NV2 store at offset %#x: %v", off, ae)
		}
	}
	written := map[mem.PA]int{} // L0's writes to L1's memory, by host page
	r.nvm.SetGuestWriteObserver(func(pa mem.PA, size int) { written[pa&^0xfff] += size })
	pe.PC = l2pc + 4 // L2's HVC: to L1
	e = cpu.Exception{Kind: cpu.HypervisorCall, TargetEL: 2, ESR: 0x16<<26 | 1<<25}
	pe.TakeException(&e)
	if x := r.exit(); x.Reason != nested.ExitVEL2 {
		t.Fatalf("L2's HVC: %v, want ExitVEL2", x.Reason)
	}
	// The copy back into L1's page was reported, as writes to one host
	// page covering at least the two registers.
	if len(written) != 1 {
		t.Errorf("L0's writes to L1's memory reported on %d host pages, want 1 (the VNCR page)", len(written))
	}
	for _, n := range written {
		if n < 16 {
			t.Errorf("%d bytes reported written into L1's VNCR page, want at least SP_EL1's and TPIDR_EL2's", n)
		}
	}
	for off, x := range want {
		var got uint64
		for try := 0; ; try++ { // L1's load, after L0 maps its memory
			var le cpu.Exception
			got, le = pe.Read(page+mem.VA(off), 8, cpu.Insn{})
			if !le.Taken() {
				break
			}
			if try == 3 {
				t.Fatalf("L1's load of its page: %v", le)
			}
			r.exit()
		}
		if got != x {
			t.Errorf("L1's VNCR page at %#x = %#x, want L2's %#x", off, got, x)
		}
	}
}

package nested_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// FuzzPEExit gives L0 exits of a guest hypervisor whose code runs on the
// PE with guest-controlled syndromes and registers: trapped MSR/MRS, TLBI,
// AT and other system instructions of any encoding (the ISS L0 decodes),
// ERETs with any SPSR_EL2 and ELR_EL2, SMCs, FP/SIMD access traps and BRKs,
// with any register values, after the guest hypervisor wrote any value to
// one of its kept EL2 controls (CPTR_EL2, MDCR_EL2, CNTHCTL_EL2), which L0
// combines with its own on the PE. L0 must answer each with an error or a
// return to a world, never a panic, and never leave the PE at EL2 without
// saying so.
func FuzzPEExit(f *testing.F) {
	f.Add(uint8(0), uint32(3<<20|4<<14|4<<10|1<<1|1), uint64(0x1234), uint64(0x3c5), uint64(0x40001000)) // MRS SP_EL1
	f.Add(uint8(0), uint32(3<<20|4<<14|13<<10|0<<1|2<<17), uint64(7), uint64(0), uint64(0))              // MSR TPIDR_EL2
	f.Add(uint8(0), uint32(3<<20|4<<14|1<<10|1<<1|0<<17|1), uint64(0), uint64(0), uint64(0))             // MRS HCR_EL2
	f.Add(uint8(1), uint32(0), uint64(0), uint64(0x3c9), uint64(0x40001000))                             // ERET within vEL2
	f.Add(uint8(1), uint32(0), uint64(0), uint64(0x3c5), uint64(0x40002000))                             // ERET to L2
	f.Add(uint8(2), uint32(0), uint64(0x84000008), uint64(0), uint64(0))                                 // SMC: PSCI SYSTEM_OFF
	f.Add(uint8(0), uint32(1<<20|4<<14|8<<10|3<<1|1<<17), uint64(0), uint64(0), uint64(0))               // TLBI from vEL2
	f.Add(uint8(3|8), uint32(0), uint64(1<<10), uint64(0), uint64(0))                                    // FP/SIMD at vEL2 with CPTR_EL2.TFP
	f.Add(uint8(4|16|32), uint32(0), uint64(1<<8), uint64(0), uint64(0))                                 // BRK with MDCR_EL2.TDE
	f.Fuzz(func(t *testing.T, kind uint8, iss uint32, x, spsr, elr uint64) {
		mode := nested.ModeNV
		if kind&32 != 0 {
			mode = nested.ModeNV2
		}
		v := newOnPE(t, mode)
		held := keptPE{encCNTVOFF: 0, encCPTR: 0, encMDCR: 6, encCNTHCTL: 3, encHSTR: 0, {1, 0, 2}: 0}
		v.SetIDSource(held.source)
		v.SetKeptWriter(func(op0, op1, crn, crm, op2 uint8, x uint64) bool {
			held[[3]uint8{crn, crm, op2}] = x
			return true
		})
		pe := v.PE()
		if ctl := kind >> 3 & 3; ctl != 0 { // MSR CPTR_EL2, MDCR_EL2 or CNTHCTL_EL2, X3 = x
			enc := [...][3]uint8{encCPTR, encMDCR, encCNTHCTL}[ctl-1]
			regs := [31]uint64{3: x}
			sp := uint64(0)
			pe.SysTrap(2, 3, 4, enc[0], enc[1], enc[2], 3, false)
			e := pe.Last
			if _, err := v.PEExit(&e, &regs, &sp); err != nil {
				t.Fatalf("MSR of a kept EL2 control: %v", err)
			}
		}
		pe.PC = 0x4000_0000
		pe.SPSR[1], pe.ELR[1] = spsr, mem.VA(elr)
		var regs [31]uint64
		for i := range regs {
			regs[i] = x + uint64(i)
		}
		sp := x
		switch kind & 7 % 5 {
		case 0:
			pe.SysTrap(2, uint8(iss>>20&3), uint8(iss>>14&7), uint8(iss>>10&0xf), uint8(iss>>1&0xf), uint8(iss>>17&7), uint8(iss>>5&0x1f), iss&1 == 1)
		case 1:
			e := cpu.Exception{Kind: cpu.ERETTrap, TargetEL: 2, ESR: 0x1a<<26 | 1<<25}
			pe.TakeException(&e)
		case 2:
			e := cpu.Exception{Kind: cpu.SecureMonitorCall, TargetEL: 2, ESR: 0x17<<26 | 1<<25}
			pe.TakeException(&e)
		case 3:
			e := cpu.Exception{Kind: cpu.FPAccess, TargetEL: 2, ESR: 0x07<<26 | 1<<25 | 1<<24 | 0xe<<20}
			pe.TakeException(&e)
		case 4:
			e := cpu.Exception{Kind: cpu.Breakpoint, TargetEL: 2, ESR: sysreg.ESR(0x3c<<26 | 1<<25 | uint64(iss&0xffff))}
			pe.TakeException(&e)
		}
		e := pe.Last
		exit, err := v.PEExit(&e, &regs, &sp)
		if err == nil && exit.Reason != nested.ExitSMC && pe.EL == 2 {
			t.Fatalf("PEExit(%v) left the PE at EL2 without an error (exit %v)", e, exit.Reason)
		}
		if exit.Reason == nested.ExitSMC {
			if err := v.CompleteSMC(); err != nil || pe.EL == 2 {
				t.Fatalf("CompleteSMC: %v, EL%d", err, pe.EL)
			}
		}
	})
}

// newOnPE makes an L0 with one nested vCPU whose guest hypervisor (E2H=0)
// is code on the PE, at vEL2.
func newOnPE(t testing.TB, mode nested.Mode) *nested.VCPU {
	t.Helper()
	_, v := newOnPEVM(t, mode)
	return v
}

// newOnPEVM is newOnPE, also returning L0's nested VM.
func newOnPEVM(t testing.TB, mode nested.Mode) (*nested.VM, *nested.VCPU) {
	t.Helper()
	h, err := kvm.NewHost(kvm.Config{CPUs: 1, MemBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	vm, err := h.NewVM(kvm.VMConfig{IPABits: 40})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vm.AddMemory(0, 0x4000_0000, 16<<20, 0, 0); err != nil {
		t.Fatal(err)
	}
	kv, err := vm.NewVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	nvm, err := nested.New(vm, nested.Config{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nvm.Close() })
	v, err := nvm.NewVCPU(kv, nil)
	if err != nil {
		t.Fatal(err)
	}
	v.SetCodeOnPE()
	if err := v.LoadCPU(0); err != nil {
		t.Fatal(err)
	}
	return nvm, v
}

// TestSPSRFromVEL2NV1: with FEAT_NV alone (NV1=1), an exception the guest
// hypervisor takes at vEL2 writes SPSR_EL1.M = EL1h (GetPSRFromPSTATE:
// no EL2 report for NVx '011'); its MRS SPSR_EL2 must read EL2h, while a
// value software wrote (EL1h, to enter its guest) reads back as written.
func TestSPSRFromVEL2NV1(t *testing.T) {
	r := newOnPERig(t, nested.ModeNV)
	pe := r.pe
	pe.PC, pe.NZCV = 0x4000_0100, 0b0100
	// MSR/MRS X3, SPSR_EL2 (op0 3, op1 4, CRn 4, CRm 0, op2 0): traps.
	mrs := func() uint64 { return r.el2Reg(4, 0, 0, true, 0) }
	msr := func(x uint64) { r.el2Reg(4, 0, 0, false, x) }
	e := cpu.Exception{Kind: cpu.DataAbort, TargetEL: 1, ESR: 0x25<<26 | 1<<25 | 0x07}
	pe.TakeException(&e) // a stage-1 fault of its own, at vEL2
	if got := pe.SPSR[1] >> 2 & 3; got != 1 {
		t.Fatalf("the PE wrote SPSR_EL1.M[3:2] = %d, want 1 (EL1) for NVx 011", got)
	}
	if got, want := mrs(), uint64(0b0100<<28|0xf<<6|0b1001); got != want {
		t.Errorf("SPSR_EL2 after an exception at vEL2 = %#x, want %#x (EL2h)", got, want)
	}
	msr(0x3c5) // EL1h: its guest
	if got := mrs(); got != 0x3c5 {
		t.Errorf("SPSR_EL2 written 0x3c5 reads %#x", got)
	}
}

// onPE drives a guest hypervisor on the PE from a test, the way an
// interpreter does: the general-purpose registers and SP_EL1 are the
// test's.
type onPE struct {
	t    testing.TB
	nvm  *nested.VM
	v    *nested.VCPU
	pe   *cpu.PE
	regs [31]uint64
	sp   uint64
}

func newOnPERig(t testing.TB, mode nested.Mode) *onPE {
	nvm, v := newOnPEVM(t, mode)
	return &onPE{t: t, nvm: nvm, v: v, pe: v.PE()}
}

// exit hands L0 the exception the PE last took to EL2.
func (r *onPE) exit() nested.Exit {
	r.t.Helper()
	e := r.pe.Last
	x, err := r.v.PEExit(&e, &r.regs, &r.sp)
	if err != nil {
		r.t.Fatal(err)
	}
	return x
}

// el2Reg is a trapped MSR (or MRS, read) of an EL2 register (op0 3, op1
// 4) through X3 at vEL2; it returns X3 afterwards.
func (r *onPE) el2Reg(crn, crm, op2 uint8, read bool, x uint64) uint64 {
	r.t.Helper()
	r.regs[3] = x
	r.pe.SysTrap(2, 3, 4, crn, crm, op2, 3, read)
	r.exit()
	return r.regs[3]
}

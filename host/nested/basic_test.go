package nested_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// TestTwoL2VMs: L1 runs two VMs with distinct VMIDs over the same L2 IPAs;
// each sees its own memory, which is L1's memory where L1's stage 2 maps
// it, in every mode.
func TestTwoL2VMs(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, e2h := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v/E2H=%v", mode, e2h), func(t *testing.T) {
				r := newRig(t, mode, e2h, 0)
				r.run(t, r.a)
				r.store(t, l2RAM+0x1008, 0xaaaa)
				r.toL1(t)
				r.run(t, r.b)
				r.store(t, l2RAM+0x1008, 0xbbbb)
				if got := r.load(t, l2RAM+0x1008); got != 0xbbbb {
					t.Errorf("VM B reads %#x", got)
				}
				r.toL1(t)
				r.run(t, r.a)
				if got := r.load(t, l2RAM+0x1008); got != 0xaaaa {
					t.Errorf("VM A reads %#x", got)
				}
				r.toL1(t)
				for _, c := range []struct {
					l1   mem.VA
					want uint64
				}{{l1VMA + 0x1008, 0xaaaa}, {l1VMB + 0x1008, 0xbbbb}} {
					got, err := r.v.Load(c.l1, 8)
					if err != nil || got != c.want {
						t.Errorf("L1 reads %#x at %#x (%v), want %#x", got, uint64(c.l1), err, c.want)
					}
				}
				if err := r.nvm.Check(); err != nil {
					t.Error(err)
				}
				t.Logf("%+v; L1 %+v", r.v.Stats(), r.hyp.Stats())
			})
		}
	}
}

// TestGuestStage2Off: with the guest hypervisor's HCR_EL2.VM=0 its guest
// runs with L2 IPA = L1 IPA, on a shadow keyed by the VMID alone whose
// entries are L0's stage 2 for L1.
func TestGuestStage2Off(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRig(t, mode, true, 0)
			for _, s := range []struct {
				reg cpu.SysReg
				v   uint64
			}{{cpu.HCR_EL2, uint64(sysreg.HCR_RW | sysreg.HCR_E2H)}, {cpu.VTTBR_EL2, 5 << 48}, {cpu.ELR_EL2, 0}, {cpu.SPSR_EL2, 0b0101}} {
				if err := r.v.MSR(s.reg, s.v); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.v.ERET(); err != nil || !r.v.InL2() {
				t.Fatalf("ERET: %v, in L2 %v", err, r.v.InL2())
			}
			r.store(t, l1VMA+0x2008, 0x55)
			sh := r.nvm.Shadows()
			if len(sh) != 1 || sh[0].GuestVM || sh[0].GuestVMID != 5 {
				t.Fatalf("shadows %+v, want one with VM=0 for VMID 5", sh)
			}
			if err := r.nvm.Check(); err != nil {
				t.Error(err)
			}
			if err := r.v.InterruptToVEL2(); err != nil {
				t.Fatal(err)
			}
			if got, err := r.v.Load(l1VMA+0x2008, 8); err != nil || got != 0x55 {
				t.Errorf("L1 reads %#x (%v)", got, err)
			}
		})
	}
}

// TestGuestHypervisorStage1: the guest hypervisor's own code runs in its
// EL2&0 (E2H=1: its *_EL1 encodings reach the PE's EL1 registers directly)
// or EL2 regime (E2H=0: its TCR_EL2 and SCTLR_EL2 writes trap and L0 gives
// the PE's EL1 registers their EL1&0 equivalents, and HCR_EL2.NV1 reads
// the descriptors in the EL2 layout) on L0's stage 2 for it: with its MMU
// on, VA 0x8000_0000 reaches L1 IPA 0x4000_0000 through a 1 GiB block of
// its own tables.
func TestGuestHypervisorStage1(t *testing.T) {
	const table = 0x43f0_0000
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, e2h := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v/E2H=%v", mode, e2h), func(t *testing.T) {
				r := newRig(t, mode, e2h, 0)
				v := r.v
				must := func(err error) {
					t.Helper()
					if err != nil {
						t.Fatal(err)
					}
				}
				must(v.Store(0x4100_1000, 8, 0x99))
				must(v.Store(table+2*8, 8, 0x4000_0000|1<<10|3<<8|0b01)) // AF, inner shareable, AttrIndx 0, block
				sctlr, tcr, ttbr, mair := cpu.SCTLR_EL1, cpu.TCR_EL1, cpu.TTBR0_EL1, cpu.MAIR_EL1
				tcrVal := uint64(25 | 1<<8 | 1<<10 | 3<<12 | 1<<23 | 2<<32) // EL2&0 (TCR_EL1 layout)
				if !e2h {
					sctlr, tcr, ttbr, mair = cpu.SCTLR_EL2, cpu.TCR_EL2, cpu.TTBR0_EL2, cpu.MAIR_EL2
					tcrVal = 25 | 1<<8 | 1<<10 | 3<<12 | 2<<16 | 1<<23 | 1<<31 // TCR_EL2, E2H=0 layout
				}
				must(v.MSR(mair, 0xff))
				must(v.MSR(tcr, tcrVal))
				must(v.MSR(ttbr, table))
				must(v.MSR(sctlr, 1))
				got, err := v.Load(0x8100_1000, 8)
				if err != nil || got != 0x99 {
					t.Errorf("with its MMU on L1 reads %#x (%v) at VA 0x81001000, want 0x99", got, err)
				}
				if _, err := v.Load(0x4100_1000, 8); err == nil {
					t.Error("VA 0x41001000, which its tables do not map, did not fault")
				}
			})
		}
	}
}

// TestWalkGuestStage2: the exported walk gives the L1 IPA, leaf and
// rights of L1's stage 2 for VM A (a 2 MiB block mapped on demand), and
// the fault for an unmapped L2 IPA.
func TestWalkGuestStage2(t *testing.T) {
	r := newRig(t, nested.ModeNV2, true, 0)
	r.run(t, r.a)
	r.store(t, l2RAM+0x3008, 1)
	g := r.v.WalkGuestStage2(l2RAM+0x3008, vmsa.Access{Kind: vmsa.Read, EL: 1})
	if g.Fault.IsFault() || g.L1 != l1VMA+0x3008 || g.Size != 2<<20 || g.Level != 2 || g.Base != l2RAM || !g.Perms.W1 {
		t.Errorf("walk %+v", g)
	}
	f := r.v.WalkGuestStage2(l2RAM+8<<20, vmsa.Access{Kind: vmsa.Read, EL: 1})
	if f.Fault.Kind != vmsa.FaultTranslation || f.Fault.Level != 2 {
		t.Errorf("unmapped: %+v", f.Fault)
	}
}

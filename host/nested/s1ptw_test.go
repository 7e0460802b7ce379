package nested_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// TestWalkUpdateNeedsGuestWrite: L2's stage 1 has hardware Access flag
// updates (TCR_EL1.HA) and a leaf with AF=0; L1's stage 2 maps L2's tables
// read-only. The walk's update of the descriptor is a write at stage 2
// (AArch64.S1Walk), so it takes a stage-2 Permission fault on the
// stage-1 walk, which L0 must check against L1's stage 2 as a write and
// forward: ESR_EL2 EC 0x24, IL, S1PTW, WnR, DFSC Permission at L1's leaf
// level (2: a 2 MiB block), HPFAR_EL2 the table's IPA, FAR_EL2 the VA —
// rather than map the page read-only again and again.
func TestWalkUpdateNeedsGuestWrite(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRig(t, mode, true, 0)
			rec := &recorder{v: r.v}
			r.v.SetGuestHypervisor(rec)
			l1 := func(ipa uint64) mem.VA { return mem.VA(l1VMA + ipa - l2RAM) }
			const tab = l2RAM + 0x10_0000
			for _, w := range []struct{ at, v uint64 }{
				{tab, tab + 0x1000 | 3}, {tab + 0x1000, tab + 0x2000 | 3},
				{tab + 0x2000 + 8, l2RAM + 0x3000 | 3 | 3<<8}, // page, inner shareable, AF=0
			} {
				if err := r.v.Store(l1(w.at), 8, w.v); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.a.Map(l2RAM, l1VMA, 2<<20); err != nil {
				t.Fatal(err)
			}
			p := ptes(t, r.a.Stage2(), l2RAM)[2]
			if err := r.v.Store(mem.VA(p[0]), 8, p[1]&^(1<<7)); err != nil { // S2AP=01: read-only
				t.Fatal(err)
			}
			r.a.SetGuestReg(cpu.SCTLR_EL1, 1)
			r.a.SetGuestReg(cpu.TCR_EL1, 25|1<<23|2<<32|1<<39) // HA
			r.a.SetGuestReg(cpu.TTBR0_EL1, tab)
			r.run(t, r.a)
			exit, err := r.v.RunL2(kvm.Access{VA: 0x1008, Size: 8, Rt: 2})
			if err != nil || exit.Reason != nested.ExitVEL2 || rec.n != 1 {
				t.Fatalf("exit %v, %v, %d exceptions to vEL2", exit.Reason, err, rec.n)
			}
			want := uint64(0x24)<<26 | 1<<25 | 1<<7 | 1<<6 | 0b001110
			if rec.esr != want || rec.far != 0x1008 || rec.hpfar != uint64(sysreg.HPFARFor(tab+0x2000)) {
				t.Errorf("ESR_EL2 %#x FAR_EL2 %#x HPFAR_EL2 %#x; want %#x 0x1008 %#x", rec.esr, rec.far, rec.hpfar, want, uint64(sysreg.HPFARFor(tab+0x2000)))
			}
		})
	}
}

// TestL2TablesInReadOnlyMemory: L2's stage-1 tables are in L1 memory that
// L0 gives L1 read-only (a read-only memslot, L1's ROM). A stage-1 walk
// reads its tables (AArch64.S1Walk; the stage-2 fault on it reports WnR=0),
// so the shadow maps them read-only and L2's load completes; before, every
// fault on a walk counted as a write, the read-only slot refused it and L0
// looked for an External abort that a software walk never finds. Only the
// walk's hardware update of a descriptor (TCR_EL1.HA with AF=0: a write at
// stage 2, WnR=1) cannot be made there: L2 takes the synchronous External
// abort KVM injects (kvm_inject_dabt: EC 0x25 from EL1, IL, FSC 0b010000,
// FAR the VA).
func TestL2TablesInReadOnlyMemory(t *testing.T) {
	const (
		tab   = l2RAM + l2Size // L2 IPA of its stage-1 tables
		l1tab = l1RAM + l1Size // L1 IPA behind them: slot 1, made read-only
	)
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, ha := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/HA=%v", mode, ha), func(t *testing.T) {
				r := newRig(t, mode, true, 0)
				if _, err := r.kvm.AddMemory(1, l1tab, 2<<20, 0, 0); err != nil {
					t.Fatal(err)
				}
				var af uint64 = 1 << 10
				if ha {
					af = 0
				}
				for _, w := range []struct{ at, v uint64 }{
					{l1tab, tab + 0x1000 | 3}, {l1tab + 0x1000, tab + 0x2000 | 3},
					{l1tab + 0x2000 + 8, l2RAM + 0x3000 | 3 | 3<<8 | af},
					{l1VMA + 0x3008, 0x5eed},
				} {
					if err := r.v.Store(mem.VA(w.at), 8, w.v); err != nil {
						t.Fatal(err)
					}
				}
				if err := r.kvm.SetSlotFlags(1, memslot.ReadOnly); err != nil {
					t.Fatal(err)
				}
				if err := r.a.AddSlot(tab, l1tab, 2<<20); err != nil {
					t.Fatal(err)
				}
				tcr := uint64(25 | 1<<23 | 2<<32)
				if ha {
					tcr |= 1 << 39
				}
				r.a.SetGuestReg(cpu.SCTLR_EL1, 1)
				r.a.SetGuestReg(cpu.TCR_EL1, tcr)
				r.a.SetGuestReg(cpu.TTBR0_EL1, tab)
				r.run(t, r.a)
				exit, err := r.v.RunL2(kvm.Access{VA: 0x1008, Size: 8, Rt: 2})
				if err != nil {
					t.Fatal(err)
				}
				if !ha {
					if exit.Reason != nested.ExitNone || r.v.KVM().Ctx().X[2] != 0x5eed {
						t.Fatalf("exit %v, L2 reads %#x; want 0x5eed", exit.Reason, r.v.KVM().Ctx().X[2])
					}
					return
				}
				x := exit.Exception
				want := uint64(0x25)<<26 | 1<<25 | 0b010000
				if exit.Reason != nested.ExitL2Exception || x.Kind != cpu.DataAbort || uint64(x.ESR) != want || x.FAR != 0x1008 {
					t.Fatalf("exit %v %v ESR %#x FAR %#x; want L2's Data Abort ESR %#x FAR 0x1008", exit.Reason, x.Kind, uint64(x.ESR), uint64(x.FAR), want)
				}
			})
		}
	}
}

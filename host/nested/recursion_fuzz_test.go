package nested_test

import (
	"errors"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// FuzzRecursionGuestState feeds L1's engine what L2 controls for L3: its
// VTCR_EL2, VTTBR_EL2 and HCR_EL2 (written by L2's own instructions, to
// L1's VNCR page or trapped to L1), a descriptor of its stage 2, and L3's
// access. The access must end (completed, or forwarded to L2 with a legal
// syndrome, or an error naming the problem), never panic, and the
// invariants of L0 and L1 must hold afterwards.
func FuzzRecursionGuestState(f *testing.F) {
	f.Add(uint64(0x80023558), uint64(0), uint64(1<<31|1), uint64(0), uint64(l3RAM+8), true)
	f.Add(uint64(0x80023540), uint64(1<<48), uint64(1<<31|1|1<<26), uint64(0x4f1), uint64(l3RAM+0x1000), false)
	f.Add(uint64(0xffff_ffff), uint64(0xffff_ffff_ffff_f000), uint64(1<<31|1|1<<46), uint64(0xffff_ffff_ffff_ffff), uint64(0x1234_5678), true)
	f.Add(uint64(0x3f), uint64(2<<48), uint64(1<<31), uint64(3), uint64(l3RAM), false)
	f.Fuzz(func(t *testing.T, vtcr, vttbr, hcr, d, va uint64, write bool) {
		r := newRecRig(t, nested.ModeNV2, true, nested.ModeNV2, nil)
		r.store(t, l3RAM+8, 1)
		r.toL2(t)
		c := r.v.L2()
		root := r.l3.Stage2().VTTBR().BADDR()
		if vttbr&1 != 0 { // keep L2's root, write the descriptor there
			vttbr = uint64(root) | vttbr&(0xffff<<48)
		}
		steps := []func() error{
			func() error { return c.Store(mem.VA(root), 8, d) },
			func() error { return c.MSR(cpu.VTCR_EL2, vtcr) },
			func() error { return c.MSR(cpu.VTTBR_EL2, vttbr) },
			func() error { return c.MSR(cpu.HCR_EL2, hcr) },
			func() error { return c.MSR(cpu.ELR_EL2, 0x40) },
			func() error { return c.MSR(cpu.SPSR_EL2, 0b0101) },
			func() error { return c.ERET() },
		}
		for _, s := range steps {
			if err := s(); err != nil {
				t.Logf("L2: %v", err)
				return
			}
		}
		rec := &recorder{v: r.v}
		r.e.SetGuestHypervisor(rec, r.v.L2())
		exit, err := r.v.RunL2(kvm.Access{VA: mem.VA(va), Size: 8, Write: write, Rt: 1})
		if err != nil {
			if !errors.Is(err, nested.ErrUnhandled) {
				t.Logf("L3's access: %v", err)
			}
			return
		}
		if exit.Reason == nested.ExitSwitched {
			if ec := rec.esr >> 26; rec.n != 1 || ec != 0x24 && ec != 0x18 {
				t.Fatalf("L2 got %d exceptions, ESR_EL2 %#x", rec.n, rec.esr)
			}
			return // L2 is at its vEL2, L1's shadow released
		}
		if err := r.nvm.Check(); err != nil {
			t.Fatalf("L0: %v", err)
		}
		if r.v.InL2() && r.e.InGuest() {
			r.check(t)
		}
	})
}

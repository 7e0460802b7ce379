package nested_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// The recursive machine: newRig's L0 and L1, whose VM A (VMID 1, 16 MiB of
// L2 IPA at l2RAM backed by L1's l1VMA) runs a guest hypervisor L2. L1
// keeps L2's registers in its page l1VNCR with FEAT_NV2. L2 keeps its
// tables in [l2Tables, +4 MiB) and runs one VM, L3 (L2's VMID 1), with 4
// MiB of L3 IPA at l3RAM backed by L2's [l2ForL3, +4 MiB).
const (
	l1VNCR   = 0x4380_0000
	l2VBAR   = l2RAM + 0x800
	l2Tables = l2RAM + 0x80_0000
	l2ForL3  = l2RAM + 0x40_0000
	l3RAM    = 0x4000_0000
	l3Size   = 4 << 20
)

type recRig struct {
	*rig
	e   *nested.EL2VCPU // L1's engine for L2
	l2  *guesthyp.Hypervisor
	l3  *guesthyp.VM
	m12 nested.Mode
}

// newRecRig boots L0 -> L1 (mode m01, E2H e2h) -> L2 (mode m12, VHE) and
// enters L3 (its stage 1 off): the vCPU is left running L3.
func newRecRig(t testing.TB, m01 nested.Mode, e2h bool, m12 nested.Mode) *recRig {
	t.Helper()
	r := &recRig{rig: newRig(t, m01, e2h, 0), m12: m12}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	e, err := r.a.EnableNested(nested.EL2Config{Mode: m12, VNCR: l1VNCR})
	must(err)
	r.e = e
	must(r.hyp.Run(r.a))
	if !r.v.InL2() {
		t.Fatal("L1's ERET did not enter L2")
	}
	l2, err := guesthyp.Boot(r.v.L2(), guesthyp.Config{E2H: true, Tables: l2Tables, TablesSize: 4 << 20, VBAR: l2VBAR})
	must(err)
	r.l2 = l2
	e.SetGuestHypervisor(l2, r.v.L2())
	l3, err := l2.NewVM(1)
	must(err)
	must(l3.AddSlot(l3RAM, l2ForL3, l3Size))
	r.l3 = l3
	must(l2.Run(l3))
	if !e.InGuest() || !r.v.InL2() {
		t.Fatal("L2's ERET did not enter L3")
	}
	return r
}

// l1Word reads L1's memory at an L1 IPA the way L0 reads guest memory.
func (r *recRig) l1Word(t testing.TB, ipa mem.IPA) uint64 {
	t.Helper()
	s := r.kvm.Lookup(ipa)
	if s == nil {
		t.Fatalf("L1 IPA %#x has no memslot", uint64(ipa))
	}
	x, err := r.kvm.AddressSpace().Read(s.HVAOf(ipa), 8)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// check runs the invariant checkers of L0 and L1: an interrupt takes the
// vCPU to L1 (L1's checker runs L1's instructions), which then returns to
// the world it interrupted.
func (r *recRig) check(t testing.TB) {
	t.Helper()
	if err := r.nvm.Check(); err != nil {
		t.Errorf("L0: %v", err)
	}
	if err := r.v.InterruptToVEL2(); err != nil {
		t.Fatal(err)
	}
	if err := r.e.Check(); err != nil {
		t.Errorf("L1: %v", err)
	}
	if err := r.v.ERET(); err != nil || !r.v.InL2() {
		t.Fatalf("L1's return to the interrupted world: %v", err)
	}
}

var recModes = []struct {
	m01 nested.Mode
	e2h bool
	m12 nested.Mode
}{
	{nested.ModeNV2, true, nested.ModeNV2},
	{nested.ModeNV2, true, nested.ModeNV},
	{nested.ModeNV, true, nested.ModeNV2},
	{nested.ModeNV, true, nested.ModeNV},
	{nested.ModeNV2, false, nested.ModeNV2},
	{nested.ModeNV, false, nested.ModeNV},
}

func recName(m01 nested.Mode, e2h bool, m12 nested.Mode) string {
	return fmt.Sprintf("L1=%v,E2H=%v/L2=%v", m01, e2h, m12)
}

// TestRecursionDataIntegrity: L3's stores land where L2's stage 2 and
// L1's stage 2 put them (L3 IPA -> L2 IPA -> L1 IPA), and its loads read
// them back; both levels' invariants hold.
func TestRecursionDataIntegrity(t *testing.T) {
	for _, m := range recModes {
		t.Run(recName(m.m01, m.e2h, m.m12), func(t *testing.T) {
			r := newRecRig(t, m.m01, m.e2h, m.m12)
			for i := uint64(0); i < 4; i++ {
				r.store(t, mem.VA(l3RAM+i*0x1000+8), 0xa0+i)
			}
			r.store(t, mem.VA(l3RAM+0x20_0010), 0xbb)
			for i := uint64(0); i < 4; i++ {
				if got := r.load(t, mem.VA(l3RAM+i*0x1000+8)); got != 0xa0+i {
					t.Errorf("L3 reads %#x at %#x, want %#x", got, l3RAM+i*0x1000+8, 0xa0+i)
				}
				// L3 IPA l3RAM+x is L2 IPA l2ForL3+x, which is L1 IPA l1VMA+0x40_0000+x.
				if got := r.l1Word(t, mem.IPA(l1VMA+0x40_0000+i*0x1000+8)); got != 0xa0+i {
					t.Errorf("L1's memory holds %#x for L3's page %d, want %#x", got, i, 0xa0+i)
				}
			}
			if got := r.l1Word(t, l1VMA+0x60_0010); got != 0xbb {
				t.Errorf("L1's memory holds %#x, want 0xbb", got)
			}
			r.check(t)
			t.Logf("L0 %+v", r.v.Stats())
			t.Logf("L1 %+v; L1 hyp %+v; L2 hyp %+v", r.e.Stats(), r.hyp.Stats(), r.l2.Stats())
		})
	}
}

package nested_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// The recursive machine: newRig's L0 and L1, whose VM A (VMID 1, 16 MiB of
// L2 IPA at l2RAM backed by L1's l1VMA) runs a guest hypervisor L2. L1
// keeps L2's registers in its page l1VNCR with FEAT_NV2. L2 keeps its
// tables in [l2Tables, +4 MiB) and runs one VM, L3 (L2's VMID 1), with 8
// MiB of L3 IPA at l3RAM backed by L2's [l2ForL3, +8 MiB).
const (
	l1VNCR   = 0x4380_0000
	l2VBAR   = l2RAM + 0x800
	l2Tables = l2RAM + 0xc0_0000
	l2ForL3  = l2RAM + 0x40_0000
	l3RAM    = 0x4000_0000
	l3Size   = 8 << 20
)

// recOpts are options of newRecRigConfig: L1's rig and L2's hypervisor.
type recOpts struct {
	l1 []func(*rigConfig)
	l2 func(*guesthyp.Config)
}

type recOpt func(*recOpts)

type recRig struct {
	*rig
	e   *nested.EL2VCPU // L1's engine for L2
	l2  *guesthyp.Hypervisor
	l3  *guesthyp.VM
	m12 nested.Mode
}

// newRecRig boots L0 -> L1 (mode m01, E2H e2h) -> L2 (mode m12, VHE),
// calls prep (if not nil) while L2 runs, and enters L3 (its stage 1 off
// unless prep set it): the vCPU is left running L3.
func newRecRig(t testing.TB, m01 nested.Mode, e2h bool, m12 nested.Mode, prep func(*recRig)) *recRig {
	t.Helper()
	return newRecRigConfig(t, m01, e2h, nested.EL2Config{Mode: m12, VNCR: l1VNCR}, prep)
}

// newRecRigConfig is newRecRig with L1's configuration of L2's vCPU and
// options for L1 (rigConfig) and L2 (its guesthyp.Config).
func newRecRigConfig(t testing.TB, m01 nested.Mode, e2h bool, cfg nested.EL2Config, prep func(*recRig), opts ...recOpt) *recRig {
	t.Helper()
	var o recOpts
	for _, f := range opts {
		f(&o)
	}
	r := &recRig{rig: newRig(t, m01, e2h, 0, o.l1...), m12: cfg.Mode}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	e, err := r.a.EnableNested(cfg)
	must(err)
	r.e = e
	must(r.hyp.Run(r.a))
	if !r.v.InL2() {
		t.Fatal("L1's ERET did not enter L2")
	}
	l2cfg := guesthyp.Config{E2H: true, Tables: l2Tables, TablesSize: 4 << 20, VBAR: l2VBAR}
	if o.l2 != nil {
		o.l2(&l2cfg)
	}
	l2, err := guesthyp.Boot(r.v.L2(), l2cfg)
	must(err)
	r.l2 = l2
	e.SetGuestHypervisor(l2, r.v.L2())
	l3, err := l2.NewVM(1)
	must(err)
	must(l3.AddSlot(l3RAM, l2ForL3, l3Size))
	r.l3 = l3
	if prep != nil {
		prep(r)
	}
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
			r := newRecRig(t, m.m01, m.e2h, m.m12, nil)
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

// TestRecursionFaultForwarding: for each kind of fault of L2's stage 2 (for
// L3) and its level, L3's access reaches L2 at its virtual EL2 with the
// syndrome the architecture gives the EL2 that owns that stage 2 (as in
// TestFaultForwarding, one level down): EC 0x24, IL, ISV with SAS, SF and
// SRT for a fault not on a stage-1 walk, WnR, the DFSC of the kind at
// L2's level; FAR_EL2 L3's VA; HPFAR_EL2 the L3 IPA, UNKNOWN for a
// Permission fault not on a stage-1 walk; ELR_EL2 L3's PC, SPSR_EL2 its
// PSTATE (EL1h); L2's vector VBAR_EL2 + 0x400, CurrentEL reading EL2. L0
// and L1 resolve what is theirs and pass the rest on.
func TestRecursionFaultForwarding(t *testing.T) {
	const (
		page   = l3RAM
		l3tab  = l3RAM + 0x10_0000 // L3's stage-1 table, not mapped by L2
		outRAM = 0x1000_0000       // an L2 IPA no memory of L1's backs
		iss8   = 1<<24 | 3<<22 | 1<<15
	)
	set := func(level int, f func(d uint64) uint64) func(*testing.T, *recRig) {
		return func(t *testing.T, r *recRig) {
			p := ptes(t, r.l3.Stage2(), page)
			if err := r.v.L2().Store(mem.VA(p[level][0]), 8, f(p[level][1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name    string
		mod     func(*testing.T, *recRig)
		write   bool
		s1      bool
		fsc     uint64
		unknown bool
	}{
		{"translation level 1", set(1, func(uint64) uint64 { return 0 }), true, false, 0b000101, false},
		{"translation level 2", set(2, func(uint64) uint64 { return 0 }), true, false, 0b000110, false},
		{"translation level 3, read", set(3, func(uint64) uint64 { return 0 }), false, false, 0b000111, false},
		{"access flag level 3", set(3, func(d uint64) uint64 { return d &^ (1 << 10) }), true, false, 0b001011, false},
		{"permission level 3 (S2AP read-only)", set(3, func(d uint64) uint64 { return d &^ (1 << 7) }), true, false, 0b001111, true},
		{"permission level 3, read (S2AP write-only)", set(3, func(d uint64) uint64 { return d &^ (1 << 6) }), false, false, 0b001111, true},
		{"address size level 2", set(2, func(d uint64) uint64 { return d | 1<<40 }), true, false, 0b000010, false},
		{"external abort on walk level 3", set(2, func(d uint64) uint64 { return d&^0xffff_ffff_f000 | outRAM }), true, false, 0b010111, true},
		{"stage-1 walk: translation level 3", nil, false, true, 0b000111, false},
	}
	for _, m := range recModes {
		for _, c := range cases {
			t.Run(recName(m.m01, m.e2h, m.m12)+"/"+c.name, func(t *testing.T) {
				r := newRecRig(t, m.m01, m.e2h, m.m12, func(r *recRig) {
					if err := r.l3.Map(page, l2ForL3, 4096); err != nil {
						t.Fatal(err)
					}
					if c.mod != nil {
						c.mod(t, r)
					}
					if c.s1 {
						r.l3.SetGuestReg(cpu.SCTLR_EL1, 1)
						r.l3.SetGuestReg(cpu.TCR_EL1, 25|1<<23|2<<32)
						r.l3.SetGuestReg(cpu.TTBR0_EL1, l3tab)
					}
				})
				rec := &recorder{v: r.v}
				r.e.SetGuestHypervisor(rec, r.v.L2())
				va := mem.VA(page + 0x18)
				if c.s1 {
					va = 0x1018
				}
				r.v.KVM().Ctx().X[1] = 7
				pc := r.v.PE().PC
				exit, err := r.v.RunL2(kvm.Access{VA: va, Size: 8, Write: c.write, Rt: 1})
				if err != nil || exit.Reason != nested.ExitSwitched || rec.n != 1 {
					t.Fatalf("exit %v, %v, %d exceptions to L2", exit.Reason, err, rec.n)
				}
				wantESR := uint64(0x24)<<26 | 1<<25 | c.fsc
				wantIPA := uint64(page)
				if c.s1 {
					wantESR |= 1 << 7
					wantIPA = l3tab
				} else {
					wantESR |= iss8 | 1<<16
				}
				if c.write {
					wantESR |= 1 << 6
				}
				wantHPFAR := wantIPA >> 12 << 4
				if c.unknown {
					wantHPFAR = nested.HPFARUnknown
				}
				if rec.esr != wantESR || rec.far != uint64(va) || rec.hpfar != wantHPFAR {
					t.Errorf("L2 reads ESR_EL2 %#x FAR_EL2 %#x HPFAR_EL2 %#x; want %#x %#x %#x", rec.esr, rec.far, rec.hpfar, wantESR, uint64(va), wantHPFAR)
				}
				if rec.elr != uint64(pc) || rec.spsr != 0b0101 || rec.el != 2<<2 || rec.pc != l2VBAR+0x400 {
					t.Errorf("ELR_EL2 %#x SPSR_EL2 %#x CurrentEL %#x vector PC %#x; want %#x, 0b0101, EL2, %#x",
						rec.elr, rec.spsr, rec.el, uint64(rec.pc), uint64(pc), l2VBAR+0x400)
				}
				if r.e.InGuest() {
					t.Error("L1 still runs L3")
				}
				if st := r.e.Stats(); st.Forwarded != 1 {
					t.Errorf("L1 forwarded %d faults to L2, want 1", st.Forwarded)
				}
			})
		}
	}
}

// toL2 interrupts L3 and lets L2 save it: L0's IRQ to L1, L1's to L2.
func (r *recRig) toL2(t testing.TB) {
	t.Helper()
	if err := r.v.InterruptToVEL2(); err != nil {
		t.Fatal(err)
	}
	if err := r.e.InterruptGuest(); err != nil {
		t.Fatal(err)
	}
	if err := r.l2.Interrupted(); err != nil {
		t.Fatal(err)
	}
}

func (r *recRig) runL3(t testing.TB) {
	t.Helper()
	if err := r.l2.Run(r.l3); err != nil {
		t.Fatal(err)
	}
	if !r.e.InGuest() {
		t.Fatal("L2's ERET did not enter L3")
	}
}

// TestRecursionRemap: L2 moves one page of L3 inside a block it mapped
// (break-before-make, TLBI IPAS2E1IS + VMALLE1IS, which trap to L1, whose
// own TLBIs on its shadow trap to L0): L3 then reads the new page, the
// rest of the block still the old memory, and nothing stale survives at
// either level.
func TestRecursionRemap(t *testing.T) {
	for _, m := range recModes {
		t.Run(recName(m.m01, m.e2h, m.m12), func(t *testing.T) {
			r := newRecRig(t, m.m01, m.e2h, m.m12, nil)
			r.store(t, l3RAM+0x1008, 0x11)
			r.store(t, l3RAM+0x2008, 0x33)
			r.check(t)
			r.toL2(t)
			if err := r.v.L2().Store(l2ForL3+0x20_0008, 8, 0x22); err != nil {
				t.Fatal(err)
			}
			before := r.e.Stats()
			if err := r.l3.Map(l3RAM+0x1000, l2ForL3+0x20_0000, 4096); err != nil {
				t.Fatal(err)
			}
			if st := r.e.Stats(); st.TLBITraps == before.TLBITraps {
				t.Error("L2's remap issued no TLBI that reached L1")
			}
			r.runL3(t)
			if got := r.load(t, l3RAM+0x1008); got != 0x22 {
				t.Errorf("L3 reads %#x through the new mapping, want 0x22", got)
			}
			if got := r.load(t, l3RAM+0x2008); got != 0x33 {
				t.Errorf("L3 reads %#x in the rest of the block, want 0x33", got)
			}
			r.store(t, l3RAM+0x1010, 0x44)
			if got := r.l1Word(t, l1VMA+0x60_0010); got != 0x44 {
				t.Errorf("L1's memory behind the new page holds %#x, want 0x44", got)
			}
			if got := r.l1Word(t, l1VMA+0x40_1008); got != 0x11 {
				t.Errorf("L1's memory behind the old page holds %#x, want 0x11 (untouched)", got)
			}
			r.check(t)
		})
	}
}

// TestRecursionUnmapForwards: after L2 unmaps L3's page (BBM + TLBI), L3's
// next access faults to L2 again (a translation fault at L2's level 3, its
// IPA in HPFAR_EL2): no shadow at L1 or L0 kept the old translation.
func TestRecursionUnmapForwards(t *testing.T) {
	for _, m := range recModes {
		t.Run(recName(m.m01, m.e2h, m.m12), func(t *testing.T) {
			r := newRecRig(t, m.m01, m.e2h, m.m12, func(r *recRig) {
				if err := r.l3.Map(l3RAM, l2ForL3, 8192); err != nil {
					t.Fatal(err)
				}
			})
			r.store(t, l3RAM+0x1008, 0x11)
			r.toL2(t)
			if err := r.l3.Unmap(l3RAM+0x1000, 4096); err != nil {
				t.Fatal(err)
			}
			r.runL3(t)
			rec := &recorder{v: r.v}
			r.e.SetGuestHypervisor(rec, r.v.L2())
			r.store(t, l3RAM+0x8, 1) // the other page is still mapped
			exit, err := r.v.RunL2(kvm.Access{VA: l3RAM + 0x1008, Size: 8, Rt: 2})
			if err != nil || exit.Reason != nested.ExitSwitched || rec.n != 1 {
				t.Fatalf("exit %v, %v, %d exceptions to L2", exit.Reason, err, rec.n)
			}
			if rec.esr&0x3f != 0b000111 || rec.hpfar != (l3RAM+0x1000)>>12<<4 {
				t.Errorf("ESR_EL2 %#x HPFAR_EL2 %#x; want a level-3 translation fault at L3 IPA %#x", rec.esr, rec.hpfar, l3RAM+0x1000)
			}
		})
	}
}

// TestRecursionPermissionAfterRead: L3, with its stage 1 on, reads a page
// L2 maps read-only (entries at L1 and L0 are made read-only), then writes
// it: L0's shadow takes a Permission fault (HPFAR_EL2 UNKNOWN, L0 finds
// the IPA with AT), L1's shadow denies it too, so L1 finds the L3 IPA by a
// software walk of L3's stage 1 and L2's stage 2 denies the write: L2 gets
// the Permission fault at its level 3, HPFAR_EL2 UNKNOWN, FAR_EL2 L3's VA.
func TestRecursionPermissionAfterRead(t *testing.T) {
	const (
		t1, t2, t3 = l3RAM + 0x10_0000, l3RAM + 0x10_1000, l3RAM + 0x10_2000 // L3's stage-1 tables
		va         = 0x1000                                                  // -> L3 IPA l3RAM
		b1, b2, b3 = l2ForL3 + 0x10_0000, l2ForL3 + 0x10_1000, l2ForL3 + 0x10_2000
	)
	for _, m := range recModes {
		t.Run(recName(m.m01, m.e2h, m.m12), func(t *testing.T) {
			r := newRecRig(t, m.m01, m.e2h, m.m12, func(r *recRig) {
				if err := r.l3.Map(l3RAM+0x10_0000, l2ForL3+0x10_0000, 0x3000); err != nil {
					t.Fatal(err)
				}
				if err := r.l3.Map(l3RAM, l2ForL3, 4096); err != nil {
					t.Fatal(err)
				}
				if err := r.l3.WriteProtect(l3RAM, 4096); err != nil {
					t.Fatal(err)
				}
				// L3's tables, written by L2 into L3's memory.
				for _, w := range []struct{ at, v uint64 }{{b1, t2 | 3}, {b2, t3 | 3}, {b3 + 8, l3RAM | 1<<10 | 3<<8 | 3}, {l2ForL3 + 0x10, 0x5a}} {
					if err := r.v.L2().Store(mem.VA(w.at), 8, w.v); err != nil {
						t.Fatal(err)
					}
				}
				r.l3.SetGuestReg(cpu.MAIR_EL1, 0xff)
				r.l3.SetGuestReg(cpu.TCR_EL1, 25|1<<23|2<<32)
				r.l3.SetGuestReg(cpu.TTBR0_EL1, t1)
				r.l3.SetGuestReg(cpu.SCTLR_EL1, 1)
			})
			if got := r.load(t, va+0x10); got != 0x5a {
				t.Fatalf("L3 reads %#x, want 0x5a", got)
			}
			rec := &recorder{v: r.v}
			r.e.SetGuestHypervisor(rec, r.v.L2())
			pc := r.v.PE().PC
			r.v.KVM().Ctx().X[3] = 9
			exit, err := r.v.RunL2(kvm.Access{VA: va + 0x18, Size: 4, Write: true, Rt: 3, W: true}) // STR W3
			if err != nil || exit.Reason != nested.ExitSwitched || rec.n != 1 {
				t.Fatalf("exit %v, %v, %d exceptions to L2", exit.Reason, err, rec.n)
			}
			// ISV, SAS=4 bytes (0b10), SRT=3, SF=0, WnR, Permission level 3.
			want := uint64(0x24)<<26 | 1<<25 | 1<<24 | 2<<22 | 3<<16 | 1<<6 | 0b001111
			if rec.esr != want || rec.far != va+0x18 || rec.hpfar != nested.HPFARUnknown || rec.elr != uint64(pc) {
				t.Errorf("ESR_EL2 %#x FAR_EL2 %#x HPFAR_EL2 %#x ELR_EL2 %#x; want %#x %#x UNKNOWN %#x",
					rec.esr, rec.far, rec.hpfar, rec.elr, want, va+0x18, uint64(pc))
			}
		})
	}
}

// TestRecursionCheckFindsStale: L2 rewrites its stage-2 descriptor for
// L3's page without break-before-make or TLBI (a broken guest hypervisor):
// L1's shadow no longer equals L2's stage 2 composed with L1's, and L1's
// checker says so; L0's shadow still equals L1's (what L0 must follow).
func TestRecursionCheckFindsStale(t *testing.T) {
	r := newRecRig(t, nested.ModeNV2, true, nested.ModeNV2, func(r *recRig) {
		if err := r.l3.Map(l3RAM, l2ForL3, 4096); err != nil {
			t.Fatal(err)
		}
	})
	r.store(t, l3RAM+8, 1)
	r.toL2(t)
	p := ptes(t, r.l3.Stage2(), l3RAM)[3]
	if err := r.v.L2().Store(mem.VA(p[0]), 8, p[1]+0x1000); err != nil { // another L2 page
		t.Fatal(err)
	}
	r.runL3(t)
	if err := r.nvm.Check(); err != nil {
		t.Errorf("L0: %v", err)
	}
	if err := r.v.InterruptToVEL2(); err != nil {
		t.Fatal(err)
	}
	if err := r.e.Check(); err == nil {
		t.Error("L1's checker accepts a shadow leaf L2's stage 2 no longer gives")
	} else {
		t.Log(err)
	}
}

// TestRecursionTrapForwarding: the trap controls L2 sets for L3 reach the
// hardware through both levels (L1 folds L2's into its HCR_EL2 for L3, L0
// folds L1's): each trapped instruction of L3 is forwarded by L0 to L1 and
// by L1 to L2, which sees the syndrome of the trap (as TestTrapForwarding
// one level down), ELR_EL2 L3's PC, SPSR_EL2 EL1h, its vector + 0x400.
// Without L2's control, L3's ID register reads stop at L1 (its own TID3:
// L3 reads the ID registers L2 sees, without FEAT_NV), its TLBIs run on
// the hardware, and NV or AT set by L2 have no effect (L1 offers L2 no
// FEAT_NV, whose controls they are: RES0), so L3's AT executes and its EL2
// register access is UNDEFINED at its EL1.
func TestRecursionTrapForwarding(t *testing.T) {
	type l3Insn struct {
		name string
		run  func(c *nested.L2CPU) (uint64, error)
		esr  uint64
	}
	ins := func(i l2Insn) l3Insn { return l3Insn(i) }
	sctlrW := ins(msr(cpu.SCTLR_EL1, 3, 0, 1, 0, 0))
	ttbr1R := ins(mrs(cpu.TTBR1_EL1, 3, 0, 2, 0, 1))
	mmfr0 := ins(mrs(cpu.ID_AA64MMFR0_EL1, 3, 0, 0, 7, 0))
	mmfr2 := ins(mrs(cpu.ID_AA64MMFR2_EL1, 3, 0, 0, 7, 2))
	vmalle1 := ins(tlbi(tlb.OpVMALLE1, 0, 7, 0))
	vmalle1is := ins(tlbi(tlb.OpVMALLE1.IS(), 0, 3, 0))
	s1e1r := ins(atInsn(at.S1E1R, 0, 8, 0))
	hcrR := ins(mrs(cpu.HCR_EL2, 3, 4, 1, 1, 0))
	const (
		tid3 = sysreg.HCR(1 << 18)
		trvm = sysreg.HCR(1 << 30)
	)
	const (
		toL2 = iota
		atL1
		onHW
		undef
	)
	cases := []struct {
		traps sysreg.HCR
		in    l3Insn
		where int
	}{
		{sysreg.HCR_TVM, sctlrW, toL2},
		{trvm, ttbr1R, toL2},
		{tid3, mmfr0, toL2},
		{sysreg.HCR_TTLB, vmalle1, toL2},
		{sysreg.HCR_TTLBIS, vmalle1is, toL2},
		{sysreg.HCR_AT, s1e1r, onHW}, // HCR_EL2.AT is FEAT_NV's: RES0 for L2
		{0, mmfr2, atL1},
		{0, vmalle1is, onHW},
		{0, sctlrW, onHW},
		{sysreg.HCR_NV, hcrR, undef},
	}
	for _, m := range recModes {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%#x/%s", recName(m.m01, m.e2h, m.m12), uint64(c.traps), c.in.name), func(t *testing.T) {
				r := newRecRig(t, m.m01, m.e2h, m.m12, func(r *recRig) { r.l3.SetTraps(c.traps) })
				rec := &recorder{v: r.v}
				r.e.SetGuestHypervisor(rec, r.v.L2())
				pc := r.v.PE().PC
				before := r.e.Stats()
				got, err := c.in.run(r.v.L2())
				st := r.e.Stats()
				switch c.where {
				case toL2:
					if !errors.Is(err, nested.ErrLeftL2) || rec.n != 1 || st.ForwardedTraps != before.ForwardedTraps+1 {
						t.Fatalf("%v, %d exceptions to L2, L1 forwarded %d traps", err, rec.n, st.ForwardedTraps-before.ForwardedTraps)
					}
					if rec.esr != c.in.esr || rec.elr != uint64(pc) || rec.spsr != 0b0101 || rec.hpfar != nested.HPFARUnknown || rec.pc != l2VBAR+0x400 {
						t.Errorf("L2 reads ESR_EL2 %#x ELR_EL2 %#x SPSR_EL2 %#x HPFAR_EL2 %#x at %#x; want %#x %#x 0b0101 UNKNOWN at %#x",
							rec.esr, rec.elr, rec.spsr, rec.hpfar, uint64(rec.pc), c.in.esr, uint64(pc), l2VBAR+0x400)
					}
					return
				case atL1:
					if err != nil || rec.n != 0 || st.GuestTraps != before.GuestTraps+1 || st.ForwardedTraps != before.ForwardedTraps {
						t.Fatalf("%v, %d exceptions to L2, %d traps at L1; want L1 to emulate it", err, rec.n, st.GuestTraps-before.GuestTraps)
					}
					if ids := r.e.IDRegs(); got != uint64(ids.MMFR2) || ids.MMFR2.NV() != 0 {
						t.Errorf("L3 reads %#x, L2's ID_AA64MMFR2_EL1 is %#x (NV must be 0)", got, uint64(ids.MMFR2))
					}
				case onHW:
					if err != nil || rec.n != 0 || st.Exceptions() != before.Exceptions() {
						t.Fatalf("%v, %d exceptions to L2, %d to L1; want none", err, rec.n, st.Exceptions()-before.Exceptions())
					}
				case undef:
					var ge *nested.GuestException
					if !errors.As(err, &ge) || ge.Exception.Kind != cpu.Undefined || ge.Exception.TargetEL != 1 || rec.n != 0 {
						t.Fatalf("%v (%d to L2); want UNDEFINED at L3's EL1", err, rec.n)
					}
					return
				}
				if r.v.PE().PC != pc+4 {
					t.Errorf("L3's PC %#x, want %#x", uint64(r.v.PE().PC), uint64(pc+4))
				}
			})
		}
	}
}

// exitCounts are the exits one L3 access cost at each level.
type exitCounts struct {
	l0, l0vel2, l0guest   uint64 // exits to L0: all, from L1 at vEL2, from L1's guest
	l0regs, l0eret, l0tlb uint64 // of these: register, ERET and TLBI traps of L1
	l0fwd                 uint64 // traps of L1's guest forwarded to L1
	l1, l1regs            uint64 // exceptions the engine at L1 handled; register traps of L2
	l2                    uint64 // stage-2 faults L2 handled
}

func (r *recRig) measure(t *testing.T, f func()) exitCounts {
	t.Helper()
	a0, a1, a2 := r.v.Stats(), r.e.Stats(), r.l2.Stats()
	f()
	b0, b1, b2 := r.v.Stats(), r.e.Stats(), r.l2.Stats()
	return exitCounts{
		l0:      b0.Exits() + b0.GuestExits() - a0.Exits() - a0.GuestExits(),
		l0vel2:  b0.Exits() - a0.Exits(),
		l0guest: b0.GuestExits() - a0.GuestExits(),
		l0regs:  b0.SysRegTraps - a0.SysRegTraps, l0eret: b0.ERETTraps - a0.ERETTraps, l0tlb: b0.TLBITraps - a0.TLBITraps,
		l0fwd: b0.ForwardedTraps - a0.ForwardedTraps,
		l1:    b1.Exceptions() - a1.Exceptions(), l1regs: b1.SysRegTraps - a1.SysRegTraps,
		l2: b2.Faults - a2.Faults,
	}
}

// TestRecursionExits measures the exits of L3 access paths in every mode
// (go test ./host/nested -run TestRecursionExits -v prints the table of
// docs/NESTED.md): a load that hits L0's shadow (no exit); the first
// access to a page L2 and L1 have mapped (L0's shadow fault, forwarded to
// L1, which fills its shadow, then L0 fills its own); the first access to
// a page L2 has not mapped (the fault goes on to L2, whose handler maps it
// with its registers, TLBIs and ERET trapping through L1). NV2 at either
// level must cost fewer exits than NV for the same path.
func TestRecursionExits(t *testing.T) {
	paths := []string{"shadow hit", "L2 and L1 mapped", "L2 not mapped"}
	res := map[string][3]exitCounts{}
	for _, m := range recModes {
		name := recName(m.m01, m.e2h, m.m12)
		// L3's 2 MiB regions: 0 touched first, 1 mapped by L2 (and by L1
		// for L2: L2 wrote it), 2 not mapped by L2.
		r := newRecRig(t, m.m01, m.e2h, m.m12, func(r *recRig) {
			if err := r.l3.Map(l3RAM+0x20_0000, l2ForL3+0x20_0000, 2<<20); err != nil {
				t.Fatal(err)
			}
			if err := r.v.L2().Store(l2ForL3+0x20_0000, 8, 5); err != nil {
				t.Fatal(err)
			}
		})
		r.store(t, l3RAM+8, 1)
		var c [3]exitCounts
		c[0] = r.measure(t, func() {
			if r.load(t, l3RAM+8) != 1 {
				t.Error("L3 lost its store")
			}
		})
		c[1] = r.measure(t, func() {
			if r.load(t, l3RAM+0x20_0000) != 5 {
				t.Error("L3 does not read what L2 stored")
			}
		})
		c[2] = r.measure(t, func() { r.store(t, l3RAM+0x40_0000, 6) })
		if c[0].l0 != 0 || c[1].l2 != 0 || c[2].l2 != 1 {
			t.Errorf("%s: %+v", name, c)
		}
		res[name] = c
		for i, p := range paths {
			t.Logf("%-26s %-18s exits to L0 %3d (from L1 %3d: %3d register, %2d ERET, %2d TLBI; from L1's guest %2d, %2d forwarded); to L1 %2d (%2d register); to L2 %d",
				name, p, c[i].l0, c[i].l0vel2, c[i].l0regs, c[i].l0eret, c[i].l0tlb, c[i].l0guest, c[i].l0fwd, c[i].l1, c[i].l1regs, c[i].l2)
		}
		r.check(t)
	}
	// For comparison, two levels: L2 a plain VM, its first access to a page
	// L1 has not mapped (L0's shadow fault forwarded to L1, L1 maps, ERET,
	// L0's shadow fault again).
	for _, m := range []nested.Mode{nested.ModeNV2, nested.ModeNV} {
		r := newRig(t, m, true, 0)
		r.run(t, r.a)
		r.store(t, l2RAM+8, 1)
		a, fa := r.v.Stats(), r.hyp.Stats().Faults
		r.store(t, l2RAM+0x20_0008, 2)
		b, fb := r.v.Stats(), r.hyp.Stats().Faults
		t.Logf("two levels, L1=%v, L2's first access, L1 not mapped: exits to L0 %d (from L1 %d: %d register, %d ERET); to L1 %d",
			m, b.Exits()+b.GuestExits()-a.Exits()-a.GuestExits(), b.Exits()-a.Exits(), b.SysRegTraps-a.SysRegTraps, b.ERETTraps-a.ERETTraps, fb-fa)
	}
	less := func(a, b string, from int) {
		for i := from; i < 3; i++ {
			if res[a][i].l0 >= res[b][i].l0 {
				t.Errorf("%s: %s costs %d exits to L0, %s %d", paths[i], a, res[a][i].l0, b, res[b][i].l0)
			}
		}
	}
	// L1's mode for L2 matters only where L2 runs (path 2); L0's for L1
	// wherever L1 runs (paths 1 and 2).
	less(recName(nested.ModeNV2, true, nested.ModeNV2), recName(nested.ModeNV2, true, nested.ModeNV), 2)
	less(recName(nested.ModeNV2, true, nested.ModeNV), recName(nested.ModeNV, true, nested.ModeNV), 1)
	less(recName(nested.ModeNV2, true, nested.ModeNV2), recName(nested.ModeNV, true, nested.ModeNV2), 1)
}

// recursionOps is the number of operations of TestRecursionRandomized:
// NESTMMU_RECURSION_OPS overrides it.
func recursionOps(t *testing.T) int { return envOps(t, "NESTMMU_RECURSION_OPS", 150, 400) }

// TestRecursionRandomized drives L2 (moves and unmaps pages of L3 with
// break-before-make and TLBIs; maps 2 MiB blocks on L3's faults), L3 (loads
// and stores), L1 (suspends L3 or L2, unmaps and write-protects blocks of
// L2's memory and moves its pages to other L1 memory, then resumes: its
// engine follows with its reverse map) and the host (swap-out and
// migration of the L1 pages behind L3) at random. Every L3 load must
// return the last value stored in the L1 memory its page maps to through
// L2's and L1's stage 2, and the invariants of L0 and L1 hold after every
// few steps and at the end. L1's engine runs with its reverse map, with a
// pool of 16 extents (overflowing), and without it.
func TestRecursionRandomized(t *testing.T) {
	rmaps := []struct {
		name string
		cfg  func(*nested.EL2Config)
	}{
		{"rmap", func(*nested.EL2Config) {}},
		{"rmap16", func(c *nested.EL2Config) { c.ReverseMapExtents = 16 }},
		{"normap", func(c *nested.EL2Config) { c.NoReverseMap = true }},
		{"rmap", func(*nested.EL2Config) {}},
	}
	for i, m := range recModes[:4] {
		cfg := nested.EL2Config{Mode: m.m12, VNCR: l1VNCR}
		rmaps[i].cfg(&cfg)
		t.Run(recName(m.m01, m.e2h, m.m12)+"/"+rmaps[i].name, func(t *testing.T) {
			runRecursionRandom(t, m.m01, m.e2h, cfg, uint64(i+1), recursionOps(t))
		})
	}
}

// recSpare is L1 memory no one uses (4 MiB), where L1 moves pages of L2.
const recSpare = 0x43c0_0000

func runRecursionRandom(t *testing.T, m01 nested.Mode, e2h bool, cfg nested.EL2Config, seed uint64, steps int) {
	const pages = l3Size / 4096
	r := newRecRigConfig(t, m01, e2h, cfg, nil)
	rng := rand.New(rand.NewPCG(seed, seed*104729))
	// backing[p] is the L2 IPA L3's page p maps to (0: unmapped); moved the
	// L1 IPA of the L2 pages L1 moved (others are at l1VMA + (L2 IPA -
	// l2RAM)); words the L1 memory by L1 IPA.
	backing := make([]uint64, pages)
	moved := map[uint64]uint64{}
	words := map[uint64]uint64{}
	identity := func(p uint64) uint64 { return l2ForL3 + p*4096 }
	l1of := func(l2 uint64) uint64 {
		if x, ok := moved[l2&^0xfff]; ok {
			return x | l2&0xfff
		}
		return l1VMA + l2 - l2RAM
	}
	touch := func(p uint64) uint64 {
		if backing[p] == 0 {
			// L2 maps the 2 MiB block around it where nothing else of the
			// block is mapped (its stage 2 then has no table there), else
			// the page.
			first := p &^ 511
			others := false
			for q := first; q < first+512; q++ {
				others = others || backing[q] != 0
			}
			for q := first; q < first+512 && !others; q++ {
				backing[q] = identity(q)
			}
			backing[p] = identity(p)
		}
		return backing[p]
	}
	inL3 := true
	for step := 0; step < steps; step++ {
		p := rng.Uint64N(pages)
		off := rng.Uint64N(512) * 8
		va := mem.VA(l3RAM + p*4096 + off)
		switch k := rng.IntN(11); {
		case k < 3 && inL3:
			v := rng.Uint64()
			r.store(t, va, v)
			words[l1of(touch(p)+off)] = v
		case k < 6 && inL3:
			want := words[l1of(touch(p)+off)]
			if got := r.load(t, va); got != want {
				t.Fatalf("step %d: L3 reads %#x at %#x (L2 IPA %#x, L1 IPA %#x), want %#x", step, got, uint64(va), backing[p]+off, l1of(backing[p]+off), want)
			}
		case k == 10:
			// L1 changes its stage 2 for L2 (the suspended world resumes after).
			r.toL1(t)
			l2 := identity(rng.Uint64N(pages))
			blk := l2 &^ (2<<20 - 1)
			var err error
			switch rng.IntN(3) {
			case 0:
				err = r.a.Unmap(nested.NestedIPA(blk), 2<<20)
				for q := blk; q < blk+2<<20; q += 4096 {
					delete(moved, q) // faulted in again from the slot
				}
			case 1:
				err = r.a.WriteProtect(nested.NestedIPA(blk), 2<<20)
			default:
				to := recSpare + rng.Uint64N(1024)*4096
				err = r.a.Map(nested.NestedIPA(l2), mem.IPA(to), 4096)
				moved[l2] = to
			}
			if err != nil {
				t.Fatalf("step %d: L1: %v", step, err)
			}
			r.run(t, r.a)
		case k < 8:
			if inL3 {
				r.toL2(t)
				inL3 = false
			}
			if k == 6 {
				q := rng.Uint64N(pages)
				if err := r.l3.Map(nested.NestedIPA(l3RAM+p*4096), mem.IPA(identity(q)), 4096); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				backing[p] = identity(q)
			} else {
				if err := r.l3.Unmap(nested.NestedIPA(l3RAM+p*4096), 4096); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				backing[p] = 0
			}
		case k == 8:
			ipa := mem.IPA(l1VMA + 0x40_0000 + p*4096)
			s := r.kvm.Lookup(ipa)
			var err error
			if rng.IntN(2) == 0 {
				err = r.kvm.AddressSpace().SwapOut(s.HVAOf(ipa))
			} else {
				err = r.kvm.AddressSpace().Migrate(s.HVAOf(ipa))
			}
			if err != nil && !errors.Is(err, hostmm.ErrNotPresent) {
				t.Fatalf("step %d: host event: %v", step, err)
			}
		default:
			if !inL3 {
				r.runL3(t)
				inL3 = true
			}
			if step%4 == 0 {
				r.check(t)
			}
		}
		if t.Failed() {
			t.Fatalf("step %d", step)
		}
	}
	if !inL3 {
		r.runL3(t)
	}
	r.check(t)
	t.Logf("%d steps: L0 %d exits, L1 %d exceptions, L2 %d faults; L1's reverse map %+v", steps, r.v.Stats().Exits()+r.v.Stats().GuestExits(),
		r.e.Stats().Exceptions(), r.l2.Stats().Faults, r.e.RmapStats())
}

// TestNestedHitAllocs: an access of L2, or of L3 through two guest
// hypervisors, that hits the TLB allocates nothing (the executor of
// forward.go on the hot path).
func TestNestedHitAllocs(t *testing.T) {
	r2 := newRig(t, nested.ModeNV2, true, 0)
	r2.run(t, r2.a)
	r3 := newRecRig(t, nested.ModeNV2, true, nested.ModeNV2, nil)
	for _, c := range []struct {
		name string
		r    *rig
		va   mem.VA
	}{{"L2", r2, l2RAM + 8}, {"L3", r3.rig, l3RAM + 8}} {
		name, r := c.name, c.r
		r.store(t, c.va, 1)
		a := kvm.Access{VA: c.va, Size: 8, Rt: 2}
		if n := testing.AllocsPerRun(200, func() {
			if _, err := r.v.RunL2(a); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per access", name, n)
		}
	}
}

package nested_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// recorder is a guest hypervisor that reads what an exception taken to it
// reports and stays at vEL2.
type recorder struct {
	v                              *nested.VCPU
	n                              int
	pc                             mem.VA
	esr, far, hpfar, elr, spsr, el uint64
}

func (r *recorder) Exception(c nested.EL2) error {
	r.n++
	r.pc = r.v.PE().PC
	var err error
	for _, x := range []struct {
		reg cpu.SysReg
		to  *uint64
	}{{cpu.ESR_EL2, &r.esr}, {cpu.FAR_EL2, &r.far}, {cpu.HPFAR_EL2, &r.hpfar}, {cpu.ELR_EL2, &r.elr},
		{cpu.SPSR_EL2, &r.spsr}, {cpu.CurrentEL, &r.el}} {
		if *x.to, err = c.MRS(x.reg); err != nil {
			return err
		}
	}
	return nil
}

// ptes returns the addresses (L1 IPAs) and values of the descriptors L1's
// stage 2 of vm uses for ipa, by level.
func ptes(t *testing.T, s2 *s2pt.VM, ipa nested.NestedIPA) map[int][2]uint64 {
	t.Helper()
	out := map[int][2]uint64{}
	g := mem.IPA(s2.Layout().TableBytes)
	err := s2.Walk(mem.IPA(ipa), mem.IPA(ipa)+g, s2pt.VisitorFunc(func(c *s2pt.Ctx, _ s2pt.WalkFlags) error {
		out[c.Level] = [2]uint64{uint64(c.PTE), c.Old}
		return nil
	}), s2pt.VisitLeaf|s2pt.VisitTablePre)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFaultForwarding: for each kind of fault of L1's stage 2 and its
// level, the syndrome L1 reads at vEL2 is what the architecture reports
// for that fault to the EL2 that owns the stage 2 (ISS encoding for an
// exception from a Data Abort; HPFAR_EL2 and FAR_EL2 descriptions):
// EC 0x24 (from a lower EL), IL=1; for a fault not on a stage-1 walk
// ISV=1 with SAS, SRT, SF of the load or store; WnR; the DFSC of the fault
// kind with the level of L1's descriptor; FAR_EL2 the VA; HPFAR_EL2.FIPA
// the L2 IPA except for a Permission fault not on a stage-1 walk and a
// synchronous External abort on the walk, where it is UNKNOWN (IPAValid); ELR_EL2 L2's PC, SPSR_EL2 its PSTATE (EL1h); the exception
// taken at VBAR_EL2 + 0x400 with CurrentEL reading EL2.
func TestFaultForwarding(t *testing.T) {
	const (
		page   = l2RAM
		l2tab  = l2RAM + 0x10_0000 // L2's stage-1 table, not mapped by L1
		outRAM = 0x1000_0000       // an L1 IPA no memslot holds
		iss8   = 1<<24 | 3<<22 | 1<<15
	)
	type modify func(t *testing.T, r *rig, p map[int][2]uint64)
	set := func(level int, f func(d uint64) uint64) modify {
		return func(t *testing.T, r *rig, p map[int][2]uint64) {
			if err := r.v.Store(mem.VA(p[level][0]), 8, f(p[level][1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name    string
		mod     modify
		write   bool
		s1      bool // L2's stage 1 on, tables at l2tab
		fsc     uint64
		s1ptw   bool
		unknown bool // HPFAR_EL2 UNKNOWN
	}{
		{"translation level 1", set(1, func(uint64) uint64 { return 0 }), true, false, 0b000101, false, false},
		{"translation level 2", set(2, func(uint64) uint64 { return 0 }), true, false, 0b000110, false, false},
		{"translation level 3", set(3, func(uint64) uint64 { return 0 }), true, false, 0b000111, false, false},
		{"translation level 3, read", set(3, func(uint64) uint64 { return 0 }), false, false, 0b000111, false, false},
		{"access flag level 3", set(3, func(d uint64) uint64 { return d &^ (1 << 10) }), true, false, 0b001011, false, false},
		{"permission level 3 (S2AP read-only)", set(3, func(d uint64) uint64 { return d &^ (1 << 7) }), true, false, 0b001111, false, true},
		{"permission level 3, read (S2AP write-only)", set(3, func(d uint64) uint64 { return d &^ (1 << 6) }), false, false, 0b001111, false, true},
		{"address size level 2 (table above PS)", set(2, func(d uint64) uint64 { return d | 1<<40 }), true, false, 0b000010, false, false},
		{"external abort on walk level 3", set(2, func(d uint64) uint64 { return d&^0xffff_ffff_f000 | outRAM }), true, false, 0b010111, false, true},
		{"stage-1 walk: translation level 3", nil, false, true, 0b000111, true, false},
	}
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%v/%s", mode, c.name), func(t *testing.T) {
				r := newRig(t, mode, true, 0)
				rec := &recorder{v: r.v}
				r.v.SetGuestHypervisor(rec)
				if err := r.a.Map(page, l1VMA, 4096); err != nil {
					t.Fatal(err)
				}
				if c.mod != nil {
					c.mod(t, r, ptes(t, r.a.Stage2(), page))
				}
				va := mem.VA(page + 0x18)
				if c.s1 {
					// L2's stage 1: 39-bit VA from level 1 at l2tab, which L1
					// has not mapped: the first descriptor read faults.
					r.a.SetGuestReg(cpu.SCTLR_EL1, 1)
					r.a.SetGuestReg(cpu.TCR_EL1, 25|1<<23|2<<32)
					r.a.SetGuestReg(cpu.TTBR0_EL1, l2tab)
					va = 0x1018
				}
				r.run(t, r.a)
				r.v.KVM().Ctx().X[1] = 7
				exit, err := r.v.RunL2(kvm.Access{VA: va, Size: 8, Write: c.write, Rt: 1})
				if err != nil || exit.Reason != nested.ExitVEL2 || rec.n != 1 {
					t.Fatalf("exit %v, %v, %d exceptions to vEL2", exit.Reason, err, rec.n)
				}
				wantESR := uint64(0x24)<<26 | 1<<25 | c.fsc
				wantIPA := uint64(page)
				if c.s1ptw {
					wantESR |= 1 << 7
					wantIPA = l2tab
				} else {
					wantESR |= iss8 | 1<<16 // ISV, SAS=8 bytes, SF, SRT=1
				}
				if c.write {
					wantESR |= 1 << 6
				}
				wantHPFAR := wantIPA >> 12 << 4
				if c.unknown {
					wantHPFAR = nested.HPFARUnknown
				}
				if rec.esr != wantESR || rec.far != uint64(va) || rec.hpfar != wantHPFAR {
					t.Errorf("ESR_EL2 %#x FAR_EL2 %#x HPFAR_EL2 %#x; want %#x %#x %#x", rec.esr, rec.far, rec.hpfar, wantESR, uint64(va), wantHPFAR)
				}
				if rec.elr != 0 || rec.spsr != 0b0101 || rec.el != 2<<2 || rec.pc != 0x4000_0c00 {
					t.Errorf("ELR_EL2 %#x SPSR_EL2 %#x CurrentEL %#x vector PC %#x; want 0, 0b0101, EL2, 0x4000_0c00", rec.elr, rec.spsr, rec.el, uint64(rec.pc))
				}
				if r.v.InL2() {
					t.Error("the vCPU is still in L2")
				}
			})
		}
	}
}

// TestGuestHardwareUpdates: with VTCR_EL2.HA and HD in L1's stage 2, a
// shadow fault on a descriptor with AF=0 sets AF in L1's memory instead of
// forwarding an Access flag fault, and a write to a writable-clean (DBM)
// page sets its dirty state (S2AP[1]) there (AArch64.S2Translate's
// hardware updates, by compare-and-swap in L1 memory). Upstream KVM
// honours HA only.
func TestGuestHardwareUpdates(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		t.Run(mode.String(), func(t *testing.T) {
			h, err := kvm.NewHost(kvm.Config{CPUs: 1, MemBytes: 256 << 20})
			if err != nil {
				t.Fatal(err)
			}
			vm, _ := h.NewVM(kvm.VMConfig{IPABits: 40})
			_, _ = vm.AddMemory(0, l1RAM, l1Size, 0, 0)
			kv, _ := vm.NewVCPU(0)
			nvm, _ := nested.New(vm, nested.Config{Mode: mode, E2H: true})
			v, _ := nvm.NewVCPU(kv, nil)
			if err := v.LoadCPU(0); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = v.PutCPU(); _ = nvm.Close(); _ = vm.Destroy(); _ = h.Close() }()
			hyp, err := guesthyp.Boot(v, guesthyp.Config{E2H: true, Tables: l1Tables, TablesSize: 4 << 20, HA: true, HD: true})
			if err != nil {
				t.Fatal(err)
			}
			v.SetGuestHypervisor(hyp)
			var written []mem.PA // L0's writes to L1's memory (SetGuestWriteObserver)
			nvm.SetGuestWriteObserver(func(pa mem.PA, size int) { written = append(written, pa) })
			a, err := hyp.NewVM(1)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Map(l2RAM, l1VMA, 4096); err != nil {
				t.Fatal(err)
			}
			p := ptes(t, a.Stage2(), l2RAM)[3]
			clean := p[1]&^(1<<10|1<<7) | 1<<51 // AF=0, S2AP read-only, DBM: writable-clean
			if err := v.Store(mem.VA(p[0]), 8, clean); err != nil {
				t.Fatal(err)
			}
			if err := hyp.Run(a); err != nil {
				t.Fatal(err)
			}
			r := &rig{v: v}
			if got := r.load(t, l2RAM+8); got != 0 {
				t.Fatalf("read %#x", got)
			}
			r.store(t, l2RAM+8, 0x77)
			if got := r.load(t, l2RAM+8); got != 0x77 {
				t.Fatalf("read %#x after the store", got)
			}
			if st := v.Stats(); st.Forwarded != 0 || st.ShadowFaults != 2 {
				t.Errorf("%d faults forwarded to L1, %d shadow faults (want 0 and 2: the read maps read-only, the write faults once more)", st.Forwarded, st.ShadowFaults)
			}
			if err := v.InterruptToVEL2(); err != nil {
				t.Fatal(err)
			}
			d, err := v.Load(mem.VA(p[0]), 8)
			if err != nil || d&(1<<10) == 0 || d&(1<<7) == 0 {
				t.Errorf("L1's descriptor %#x (%v): want AF and S2AP[1] set by the walk", d, err)
			}
			// Both updates were reported, at the host frame that holds the
			// descriptor (where a PE's decoded code would be keyed).
			if len(written) != 2 || written[0] != written[1] {
				t.Errorf("L0's writes reported at %#x, want the descriptor's host PA twice (AF, then dirty)", written)
			} else if x, _ := h.Arena().Read64(written[1] &^ 7); x != d {
				t.Errorf("the reported host PA %#x holds %#x, want the descriptor %#x", uint64(written[1]), x, d)
			}
			if err := nvm.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

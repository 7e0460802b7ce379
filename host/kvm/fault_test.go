package kvm

import (
	"fmt"
	"testing"
	"time"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/mem"
)

// env is one fault-kind case's machine: a VM with slot 0 at gpa backed by
// hva, and a vCPU loaded on CPU 0.
type env struct {
	h   *Host
	vm  *VM
	v   *VCPU
	gpa uint64
	hva hostmm.HVA
}

// s1On turns the guest's stage 1 on with TTBR0_EL1 = ttbr: 4K granule,
// 39-bit VA (T0SZ=25, start level 1), 40-bit IPS, TTBR1 walks disabled.
func s1On(v *VCPU, ttbr uint64) {
	r := &v.PE().Regs
	r.TCR_EL1 = sysreg.TCR(25 | 1<<23 | 0b010<<32)
	r.TTBR0_EL1 = sysreg.TTBR(ttbr)
	r.SCTLR_EL1 = sysreg.SCTLR(1)
	v.PE().RegsChanged()
}

func TestFaultKinds(t *testing.T) {
	const base = 0x4000_0000
	type tc struct {
		name  string
		gpa   uint64 // slot base (default base)
		flags memslot.Flags
		mf    hostmm.MapFlags
		prep  func(t *testing.T, e *env)
		act   func(t *testing.T, e *env) (Exit, error)
		want  ExitReason
		check func(t *testing.T, e *env, ex Exit, d VMStats)
	}
	read := func(off uint64) func(t *testing.T, e *env) (Exit, error) {
		return func(t *testing.T, e *env) (Exit, error) { return e.v.Ldr(1, mem.VA(e.gpa+off), 8) }
	}
	write := func(off, val uint64) func(t *testing.T, e *env) (Exit, error) {
		return func(t *testing.T, e *env) (Exit, error) {
			e.v.Ctx().X[1] = val
			return e.v.Str(1, mem.VA(e.gpa+off), 8)
		}
	}
	leafLevel := func(t *testing.T, e *env, ipa uint64) int {
		d, level, err := s2of(e.vm).Lookup(mem.IPA(ipa))
		if err != nil || d&1 == 0 {
			t.Fatalf("IPA %#x not mapped in stage 2 (%#x, %v)", ipa, d, err)
		}
		return level
	}
	s2Writable := func(t *testing.T, e *env, ipa uint64) bool {
		d, _, err := s2of(e.vm).Lookup(mem.IPA(ipa))
		if err != nil || d&1 == 0 {
			t.Fatalf("IPA %#x not mapped", ipa)
		}
		return d>>7&1 == 1 // S2AP[1]
	}
	cases := []tc{
		{name: "translation fault on a read maps the page", act: read(0x10),
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				if d.Maps != 1 || d.BlockMaps != 0 || leafLevel(t, e, e.gpa) != 3 {
					t.Errorf("maps %d blocks %d", d.Maps, d.BlockMaps)
				}
			}},
		{name: "translation fault on a write maps the page writable", act: write(0x18, 0x1234),
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				if got, _ := e.vm.AddressSpace().Read(e.hva+0x18, 8); got != 0x1234 || !s2Writable(t, e, e.gpa) {
					t.Errorf("host sees %#x", got)
				}
			}},
		{name: "huge host page and congruent slot: 2M block", mf: hostmm.MapHuge, act: read(0x12_3450),
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				if d.BlockMaps != 1 || leafLevel(t, e, e.gpa+0x12_3000) != 2 {
					t.Errorf("block maps %d", d.BlockMaps)
				}
			}},
		{name: "huge host page but GPA not congruent to HVA: page", gpa: base + pg, mf: hostmm.MapHuge, act: read(0x20_0000),
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				if d.BlockMaps != 0 || leafLevel(t, e, e.gpa+0x20_0000) != 3 {
					t.Errorf("block maps %d", d.BlockMaps)
				}
			}},
		{name: "dirty logging forces pages", flags: memslot.LogDirty, mf: hostmm.MapHuge, act: write(0x40_0000, 7),
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				if d.BlockMaps != 0 || leafLevel(t, e, e.gpa+0x40_0000) != 3 || d.DirtyMarked != 1 {
					t.Errorf("%+v", d)
				}
			}},
		{name: "read under dirty logging maps read-only; write relaxes and marks", flags: memslot.LogDirty,
			prep: func(t *testing.T, e *env) { ldr(t, e.v, e.gpa+0x3000) },
			act:  write(0x3008, 9),
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				if d.Relaxes != 1 || d.Maps != 0 || d.DirtyMarked != 1 || !s2Writable(t, e, e.gpa+0x3000) {
					t.Errorf("%+v", d)
				}
				s := e.vm.Slots()[0]
				if !s.Dirty.Test(3) || s.Dirty.Test(2) {
					t.Errorf("dirty bitmap wrong")
				}
			}},
		{name: "write to a KSM page breaks copy-on-write", mf: hostmm.MapMergeable,
			prep: func(t *testing.T, e *env) {
				as := e.vm.AddressSpace()
				for _, off := range []uint64{0, pg} {
					if err := as.Write(e.hva+hostmm.HVA(off), 8, 0x5555); err != nil {
						t.Fatal(err)
					}
				}
				e.h.Kernel().KSMScan(0)
				e.h.Kernel().KSMScan(0)
				if e.h.Kernel().Stats().KSMMerged == 0 {
					t.Fatal("KSM merged nothing")
				}
				if got := ldr(t, e.v, e.gpa+pg); got != 0x5555 {
					t.Fatalf("read %#x", got)
				}
				if s2Writable(t, e, e.gpa+pg) {
					t.Fatal("KSM page mapped writable")
				}
			},
			act: write(pg, 0x6666),
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				// The new page is mapped by the fault, or already by
				// the change_pte notification (MapInPlace, into the
				// level-3 table the COW unmap left in place: s2pt
				// keeps emptied tables), the fault then adding write.
				if e.h.Kernel().Stats().COWBreaks == 0 || d.Maps+d.Relaxes == 0 {
					t.Errorf("COW breaks %d, %+v", e.h.Kernel().Stats().COWBreaks, d)
				}
				a, _ := e.vm.AddressSpace().Read(e.hva, 8)
				b, _ := e.vm.AddressSpace().Read(e.hva+pg, 8)
				if a != 0x5555 || b != 0x6666 {
					t.Errorf("pages hold %#x %#x", a, b)
				}
			}},
		{name: "access flag fault after the host aged the page",
			prep: func(t *testing.T, e *env) {
				ldr(t, e.v, e.gpa)
				if y, err := e.vm.AddressSpace().Age(e.hva, true); err != nil || !y {
					t.Fatalf("Age: %v %v", y, err)
				}
				if tlbHas(e.h, 0, e.vm.VMID(), e.gpa) {
					t.Fatal("ClearFlushYoung left the TLB entry")
				}
			},
			act: read(8),
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				if d.AccessFlagFaults != 1 || d.Maps != 0 {
					t.Errorf("%+v", d)
				}
				if y, _ := s2of(e.vm).TestYoung(mem.IPA(e.gpa), pg); !y {
					t.Error("AF not set again")
				}
			}},
		{name: "read of a read-only slot maps it read-only", flags: memslot.ReadOnly, act: read(0),
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				if d.Maps != 1 || s2Writable(t, e, e.gpa) {
					t.Errorf("%+v", d)
				}
			}},
		{name: "write to a read-only slot is an MMIO exit", flags: memslot.ReadOnly, act: write(0x28, 0xabc), want: ExitMMIO,
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				m := ex.MMIO
				if !m.Write || m.IPA != e.gpa+0x28 || m.Size != 8 || m.Data[0] != 0xabc || d.MMIOExits != 1 {
					t.Errorf("%+v", m)
				}
			}},
		{name: "outside every slot: MMIO exit", act: read(64 * mib), want: ExitMMIO,
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				if ex.MMIO.Write || ex.MMIO.IPA != e.gpa+64*mib || ex.MMIO.Reg != 1 {
					t.Errorf("%+v", ex.MMIO)
				}
			}},
		{name: "instruction fetch outside memory: prefetch abort injected",
			prep: func(t *testing.T, e *env) { e.v.PE().PC = mem.VA(e.gpa + 64*mib); e.v.PE().VBAR[1] = 0x1000 },
			act: func(t *testing.T, e *env) (Exit, error) {
				_, ex, err := e.v.Fetch()
				return ex, err
			},
			want: ExitException,
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				// From EL1 to EL1: EC 0x21 (Instruction Abort, same EL), FSC 0x10
				esr := e.v.PE().ESR[1]
				if esr.EC() != sysreg.ECInstrAbortSame || esr.FSC() != 0x10 || e.v.PE().FAR[1] != e.gpa+64*mib ||
					e.v.PE().EL != 1 || e.v.PE().PC != 0x1200 || e.v.PE().ELR[1] != mem.VA(e.gpa+64*mib) || d.Injected != 1 {
					t.Errorf("ESR %#x FAR %#x PC %#x", uint64(esr), e.v.PE().FAR[1], e.v.PE().PC)
				}
			}},
		{name: "guest stage-1 fault is the guest's (after the S1PTW stage-2 fault is handled)",
			prep: func(t *testing.T, e *env) { s1On(e.v, e.gpa+0x10_0000) },
			act:  func(t *testing.T, e *env) (Exit, error) { return e.v.Ldr(1, 0x1000, 8) },
			want: ExitException,
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				esr := e.v.PE().ESR[1]
				// The table page was mapped (S1PTW fault at EL2), then the
				// empty level-1 entry faults at stage 1: EC 0x25, FSC level 1.
				if d.Maps != 1 || esr.EC() != sysreg.ECDataAbortSame || esr.FSC() != 0x05 || ex.Exception.TargetEL != 1 {
					t.Errorf("ESR %#x %+v", uint64(esr), d)
				}
			}},
		{name: "S1PTW outside memory: data abort injected",
			prep: func(t *testing.T, e *env) { s1On(e.v, e.gpa+256*mib) },
			act:  func(t *testing.T, e *env) (Exit, error) { return e.v.Ldr(1, 0x1000, 8) },
			want: ExitException,
			check: func(t *testing.T, e *env, ex Exit, d VMStats) {
				esr := e.v.PE().ESR[1]
				if esr.EC() != sysreg.ECDataAbortSame || esr.FSC() != 0x10 || e.v.PE().FAR[1] != 0x1000 || d.Injected != 1 {
					t.Errorf("ESR %#x", uint64(esr))
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHost(t, Config{})
			vm := newVM(t, h, 40)
			gpa := c.gpa
			if gpa == 0 {
				gpa = base
			}
			hva := addMem(t, vm, 0, gpa, 8*mib, c.flags, c.mf)
			v := loadedVCPU(t, vm, 0, 0)
			defer destroy(t, vm, v)
			e := &env{h: h, vm: vm, v: v, gpa: gpa, hva: hva}
			if c.prep != nil {
				c.prep(t, e)
			}
			before := vm.Stats()
			ex, err := c.act(t, e)
			if err != nil {
				t.Fatalf("access: %v", err)
			}
			if ex.Reason != c.want {
				t.Fatalf("exit %v (%v), want %v", ex.Reason, ex.Exception, c.want)
			}
			after := vm.Stats()
			d := VMStats{Maps: after.Maps - before.Maps, BlockMaps: after.BlockMaps - before.BlockMaps,
				Relaxes: after.Relaxes - before.Relaxes, AccessFlagFaults: after.AccessFlagFaults - before.AccessFlagFaults,
				MMIOExits: after.MMIOExits - before.MMIOExits, Injected: after.Injected - before.Injected,
				DirtyMarked: after.DirtyMarked - before.DirtyMarked}
			c.check(t, e, ex, d)
		})
	}
}

func TestClassifyFSC(t *testing.T) {
	for _, c := range []struct {
		fsc  uint8
		want FaultKind
	}{
		{0x04, FaultTranslation}, {0x07, FaultTranslation}, {0x2b, FaultTranslation},
		{0x09, FaultAccessFlag}, {0x0f, FaultPermission}, {0x00, FaultAddressSize}, {0x29, FaultAddressSize},
		{0x10, FaultOther}, {0x21, FaultOther}, {0x30, FaultOther},
	} {
		if got := ClassifyFSC(c.fsc); got != c.want {
			t.Errorf("ClassifyFSC(%#x) = %v, want %v", c.fsc, got, c.want)
		}
	}
}

// TestFaultWaitsForInvalidation: a stage-2 fault on a page whose
// invalidation is in progress (mmu_invalidate_in_progress covering its
// HVA) is not installed while it lasts; the fault is retried and installs
// the page once the invalidation has ended.
func TestFaultWaitsForInvalidation(t *testing.T) {
	h := newHost(t, Config{CPUs: 1, MemBytes: 64 * mib})
	vm := newVM(t, h, 40)
	const gpa = 0x4000_0000
	hva := addMem(t, vm, 0, gpa, 4*mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)

	vm.mu.Lock()
	vm.inv.Begin(hva, hva+pg)
	vm.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		ex, err := v.Ldr(1, mem.VA(gpa), 8)
		if err == nil && ex.Reason != ExitNone {
			err = fmt.Errorf("exit %v", ex.Reason)
		}
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for vm.Stats().Retries == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("the fault completed while the invalidation was in progress (err %v)", err)
	case <-time.After(20 * time.Millisecond):
	}
	if n := vm.Stats().Retries; n == 0 {
		t.Fatal("the fault did not see the invalidation")
	}
	vm.mu.Lock()
	if d, _, err := vm.s2.Lookup(gpa); err == nil && d&1 == 1 {
		t.Error("the page was installed during the invalidation")
	}
	if err := vm.inv.End(hva, hva+pg); err != nil {
		t.Fatal(err)
	}
	vm.mu.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the fault did not complete after the invalidation ended")
	}
	if d, _, err := s2of(vm).Lookup(gpa); err != nil || d&1 == 0 {
		t.Errorf("IPA %#x not mapped after the fault (%#x, %v)", gpa, d, err)
	}
}

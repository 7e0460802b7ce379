package kvm

import (
	"reflect"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/mem"
)

// shiftedGuest turns the vCPU's stage 1 on with VA [0, 1G) mapped to IPA
// [1G, 2G) by one level-1 block (the table in a one-page slot at
// s1TableGPA), so that a fault's VA and IPA differ. It returns the HVA of
// the level-1 entry.
func shiftedGuest(t *testing.T, vm *VM, v *VCPU) hostmm.HVA {
	t.Helper()
	hva := addMem(t, vm, 99, s1TableGPA, pg, 0, 0)
	if err := vm.AddressSpace().Write(hva, 8, 1<<30|1<<10|1); err != nil {
		t.Fatal(err)
	}
	v.PE().Regs.MAIR_EL1 = 0xff
	s1On(v, s1TableGPA)
	return hva
}

// TestPermissionFaultIPAFromFAR: a stage-2 Permission fault not on a
// stage-1 walk leaves HPFAR_EL2 UNKNOWN (the PE writes its stand-in,
// IPA 0xbad_bad_bad_000), so the hypervisor must find the IPA by AT S1E1R
// of FAR, as KVM does. Each case is a write that faults on a read-only
// stage-2 page with the guest's VA and IPA differing; a hypervisor that
// trusted HPFAR_EL2 would handle IPA 0xbad_bad_bad_000 (no slot there: an
// MMIO exit) instead. When the AT fails because the guest changed its
// stage 1 in between, the instruction is re-executed and the guest takes
// its own fault.
func TestPermissionFaultIPAFromFAR(t *testing.T) {
	const gpa, va = 1 << 30, 0x5000 // the page at VA 0x5000 is IPA 1G+0x5000
	setup := func(t *testing.T, flags memslot.Flags, mf hostmm.MapFlags) (*Host, *VM, *VCPU, hostmm.HVA, hostmm.HVA) {
		h := newHost(t, Config{})
		vm := newVM(t, h, 40)
		hva := addMem(t, vm, 0, gpa, 2*mib, flags, mf)
		v := loadedVCPU(t, vm, 0, 0)
		t.Cleanup(func() { destroy(t, vm, v) })
		return h, vm, v, hva, shiftedGuest(t, vm, v)
	}
	write := func(t *testing.T, v *VCPU, va, val uint64) Exit {
		t.Helper()
		v.Ctx().X[2] = val
		ex, err := v.Str(2, mem.VA(va), 8)
		if err != nil {
			t.Fatalf("STR to VA %#x: %v", va, err)
		}
		return ex
	}
	t.Run("dirty logging", func(t *testing.T) {
		_, vm, v, _, _ := setup(t, 0, 0)
		write(t, v, va, 1)
		if err := vm.EnableDirtyLog(0, false); err != nil {
			t.Fatal(err)
		}
		if ex := write(t, v, va+8, 2); ex.Reason != ExitNone {
			t.Fatalf("write to a write-protected page: exit %v (MMIO at IPA %#x)", ex.Reason, uint64(ex.MMIO.IPA))
		}
		if got, _ := vm.GetDirtyLog(0); !reflect.DeepEqual(got, []uint64{va / pg}) {
			t.Fatalf("dirty log %v, want [%d]", got, va/pg)
		}
		if got := ldr(t, v, va+8); got != 2 {
			t.Fatalf("reads %#x back", got)
		}
	})
	t.Run("KSM copy-on-write", func(t *testing.T) {
		h, vm, v, hva, _ := setup(t, 0, hostmm.MapMergeable)
		write(t, v, va, 0x77)
		ldr(t, v, va+2*pg) // keeps the level-3 table while the merge unmaps va
		if err := vm.AddressSpace().Write(hva+va+pg, 8, 0x77); err != nil {
			t.Fatal(err)
		}
		h.Kernel().KSMScan(0)
		h.Kernel().KSMScan(0)
		if d, _, _ := s2of(vm).Lookup(gpa + va); d&1 == 0 || d>>7&1 != 0 {
			t.Fatalf("after KSM the page is %#x, want mapped read-only", d)
		}
		if ex := write(t, v, va, 0x88); ex.Reason != ExitNone {
			t.Fatalf("write to the merged page: exit %v (MMIO at IPA %#x)", ex.Reason, uint64(ex.MMIO.IPA))
		}
		if got, _ := vm.AddressSpace().Read(hva+va+pg, 8); got != 0x77 {
			t.Fatalf("the other sharer reads %#x", got)
		}
		if got := ldr(t, v, va); got != 0x88 {
			t.Fatalf("the writer reads %#x", got)
		}
	})
	t.Run("read-only slot", func(t *testing.T) {
		_, _, v, _, _ := setup(t, memslot.ReadOnly, 0)
		ldr(t, v, va) // mapped read-only
		ex := write(t, v, va+0x18, 3)
		if ex.Reason != ExitMMIO || ex.MMIO.IPA != gpa+va+0x18 || !ex.MMIO.Write {
			t.Fatalf("write to a read-only slot: exit %v at IPA %#x, want an MMIO store at %#x", ex.Reason, uint64(ex.MMIO.IPA), uint64(gpa+va+0x18))
		}
		if err := v.CompleteMMIO([2]uint64{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stage 1 changed before the AT", func(t *testing.T) {
		_, vm, v, _, l1 := setup(t, 0, 0)
		write(t, v, va, 1)
		if err := vm.EnableDirtyLog(0, false); err != nil {
			t.Fatal(err)
		}
		v.PE().VBAR[1] = 0x8000
		v.beforeAT = func() {
			v.beforeAT = nil
			if err := vm.AddressSpace().Write(l1, 8, 0); err != nil {
				t.Error(err)
			}
		}
		ex := write(t, v, va, 2)
		if ex.Reason != ExitException || ex.Exception.TargetEL != 1 || ex.Exception.FAR != va ||
			ex.Exception.ESR.EC() != sysreg.ECDataAbortSame || ClassifyFSC(ex.Exception.ESR.FSC()) != FaultTranslation {
			t.Fatalf("write after the guest unmapped the page: exit %v %v, want the guest's own translation fault", ex.Reason, ex.Exception)
		}
		if st := vm.Stats(); st.ATRetries != 1 || st.MMIOExits != 0 {
			t.Fatalf("%d AT retries, %d MMIO exits; want 1 and 0", st.ATRetries, st.MMIOExits)
		}
	})
	// The stand-in value really is what HPFAR_EL2 holds for these faults.
	t.Run("HPFAR is UNKNOWN", func(t *testing.T) {
		_, vm, v, _, _ := setup(t, 0, 0)
		write(t, v, va, 1)
		if err := vm.EnableDirtyLog(0, false); err != nil {
			t.Fatal(err)
		}
		var seen cpu.Exception
		v.beforeAT = func() { seen.HPFAR = v.PE().HPFAR }
		write(t, v, va, 2)
		if seen.HPFAR&^(1<<63) != cpu.DefaultUnknownHPFAR {
			t.Fatalf("HPFAR_EL2 at the permission fault %#x, want the UNKNOWN stand-in %#x", uint64(seen.HPFAR), uint64(cpu.DefaultUnknownHPFAR))
		}
	})
}

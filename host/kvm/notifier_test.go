package kvm

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/mem"
)

// TestNotifierInvalidationReachesTLBs: each host event removes exactly the
// affected stage-2 entries and the TLB entries on every CPU, so the vCPUs'
// next accesses fault instead of hitting a stale translation, and read the
// data the host preserved.
func TestNotifierInvalidationReachesTLBs(t *testing.T) {
	const gpa = 0x4000_0000
	for _, c := range []struct {
		name  string
		mf    hostmm.MapFlags
		event func(as *hostmm.AddressSpace, hva hostmm.HVA) error
		// gone: pages (offsets) whose stage-2 entries must be removed;
		// kept: pages that must stay mapped.
		gone, kept []uint64
	}{
		{"swap-out", 0, func(as *hostmm.AddressSpace, hva hostmm.HVA) error { return as.SwapOut(hva) },
			[]uint64{0}, []uint64{pg}},
		{"migrate", 0, func(as *hostmm.AddressSpace, hva hostmm.HVA) error { return as.Migrate(hva) },
			[]uint64{0}, []uint64{pg}},
		{"migrate huge", hostmm.MapHuge, func(as *hostmm.AddressSpace, hva hostmm.HVA) error { return as.Migrate(hva) },
			[]uint64{0, pg, 2*mib - pg}, []uint64{2 * mib}},
		{"split huge", hostmm.MapHuge, func(as *hostmm.AddressSpace, hva hostmm.HVA) error { return as.SplitHuge(hva) },
			[]uint64{0, pg}, []uint64{2 * mib}},
		{"munmap", 0, func(as *hostmm.AddressSpace, hva hostmm.HVA) error { return nil }, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, vm, hva, v0, v1 := twoCPUGuest(t, gpa, c.mf)
			defer destroy(t, vm, v0, v1)
			offs := append(append([]uint64{}, c.gone...), c.kept...)
			for i, off := range offs {
				str(t, v0, gpa+off, uint64(i)+100)
				ldr(t, v1, gpa+off)
			}
			id := vm.VMID()
			for _, off := range offs {
				for cpu := 0; cpu < 2; cpu++ {
					if !tlbHas(h, cpu, id, gpa+off) {
						t.Fatalf("CPU %d has no TLB entry for %#x before the event", cpu, gpa+off)
					}
				}
			}
			if err := c.event(vm.AddressSpace(), hva); err != nil {
				t.Fatal(err)
			}
			for _, off := range c.gone {
				if d, _, _ := s2of(vm).Lookup(mem.IPA(gpa + off)); d&1 != 0 {
					t.Errorf("stage 2 still maps %#x", gpa+off)
				}
				for cpu := 0; cpu < 2; cpu++ {
					if tlbHas(h, cpu, id, gpa+off) {
						t.Errorf("CPU %d's TLB still translates %#x", cpu, gpa+off)
					}
				}
			}
			for _, off := range c.kept {
				if d, _, _ := s2of(vm).Lookup(mem.IPA(gpa + off)); d&1 == 0 {
					t.Errorf("stage 2 lost %#x, which the event did not touch", gpa+off)
				}
			}
			before := vm.Stats().Maps
			for i, off := range offs {
				if got := ldr(t, v1, gpa+off); got != uint64(i)+100 {
					t.Errorf("after %s, %#x reads %#x, want %#x", c.name, gpa+off, got, i+100)
				}
			}
			if len(c.gone) > 0 && vm.Stats().Maps == before {
				t.Error("no access faulted after the invalidation")
			}
		})
	}
}

// TestMunmapAndRelease: unmapping the VMM region behind a slot unmaps it
// from stage 2; the next access fails with the host's EFAULT.
func TestMunmapBackingFaults(t *testing.T) {
	h := newHost(t, Config{})
	vm := newVM(t, h, 40)
	hva := addMem(t, vm, 0, 0x4000_0000, mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)
	str(t, v, 0x4000_0000, 1)
	if err := vm.AddressSpace().Munmap(hva); err != nil {
		t.Fatal(err)
	}
	if tlbHas(h, 0, vm.VMID(), 0x4000_0000) {
		t.Fatal("TLB entry survived munmap")
	}
	_, err := v.Ldr(1, 0x4000_0000, 8)
	if !errors.Is(err, hostmm.ErrFault) {
		t.Fatalf("access after munmap: %v, want hostmm.ErrFault", err)
	}
}

// TestMemslotEdgeCases covers the slot checks and the invalidations that
// moving and deleting slots imply.
func TestMemslotEdgeCases(t *testing.T) {
	h := newHost(t, Config{})
	vm := newVM(t, h, 36)
	as := vm.AddressSpace()
	hva, err := as.Mmap(8*mib, 0)
	if err != nil {
		t.Fatal(err)
	}
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)
	if err := vm.AddSlot(memslot.Slot{ID: 0, GPA: 0x100_0000, Size: 2 * mib, HVA: hostmm.HVA(uint64(hva))}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		s    memslot.Slot
		want error
	}{
		{"overlap at the start", memslot.Slot{ID: 1, GPA: 0xf0_0000, Size: 2 * mib, HVA: hostmm.HVA(uint64(hva) + 2*mib)}, memslot.ErrOverlap},
		{"overlap inside", memslot.Slot{ID: 1, GPA: 0x110_0000, Size: pg, HVA: hostmm.HVA(uint64(hva) + 2*mib)}, memslot.ErrOverlap},
		{"duplicate ID", memslot.Slot{ID: 0, GPA: 0x800_0000, Size: pg, HVA: hostmm.HVA(uint64(hva) + 2*mib)}, nil},
		{"misaligned GPA", memslot.Slot{ID: 1, GPA: 0x800_0010, Size: pg, HVA: hostmm.HVA(uint64(hva) + 2*mib)}, memslot.ErrAlignment},
		{"misaligned size", memslot.Slot{ID: 1, GPA: 0x800_0000, Size: 100, HVA: hostmm.HVA(uint64(hva) + 2*mib)}, memslot.ErrAlignment},
		{"misaligned HVA", memslot.Slot{ID: 1, GPA: 0x800_0000, Size: pg, HVA: hostmm.HVA(uint64(hva) + 2*mib + 8)}, memslot.ErrAlignment},
		{"beyond the 36-bit IPA space", memslot.Slot{ID: 1, GPA: 1 << 36, Size: pg, HVA: hostmm.HVA(uint64(hva) + 2*mib)}, nil},
		{"HVA outside the VMM's regions", memslot.Slot{ID: 1, GPA: 0x800_0000, Size: pg, HVA: hostmm.HVA(uint64(hva) + 64*mib)}, nil},
		{"empty", memslot.Slot{ID: 1, GPA: 0x800_0000, Size: 0, HVA: hostmm.HVA(uint64(hva) + 2*mib)}, nil},
	} {
		err := vm.AddSlot(c.s)
		if err == nil {
			t.Errorf("%s: AddSlot(%+v) accepted", c.name, c.s)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		t.Logf("%s: %v", c.name, err)
	}
	// Adjacent slots are fine.
	if err := vm.AddSlot(memslot.Slot{ID: 1, GPA: 0x120_0000, Size: 2 * mib, HVA: hostmm.HVA(uint64(hva) + 2*mib)}); err != nil {
		t.Fatalf("adjacent slot: %v", err)
	}
	str(t, v, 0x100_0000, 0xaa)
	str(t, v, 0x120_0000, 0xbb)

	// Move: the old range is unmapped (TLB too) and becomes MMIO; the new
	// one reads the same memory.
	if err := vm.MoveSlot(1, 0x400_0000); err != nil {
		t.Fatal(err)
	}
	if tlbHas(h, 0, vm.VMID(), 0x120_0000) {
		t.Error("TLB entry of the moved slot's old range survived")
	}
	if ex, err := v.Ldr(2, 0x120_0000, 8); err != nil || ex.Reason != ExitMMIO {
		t.Errorf("old range after move: %v %v", ex.Reason, err)
	}
	_ = v.CompleteMMIO([2]uint64{})
	if got := ldr(t, v, 0x400_0000); got != 0xbb {
		t.Errorf("moved slot reads %#x", got)
	}
	if err := vm.MoveSlot(1, 0x100_0000+mib); !errors.Is(err, memslot.ErrOverlap) {
		t.Errorf("move onto slot 0: %v", err)
	}
	// Delete.
	if err := vm.DeleteSlot(0); err != nil {
		t.Fatal(err)
	}
	if d, _, _ := s2of(vm).Lookup(0x100_0000); d&1 != 0 || tlbHas(h, 0, vm.VMID(), 0x100_0000) {
		t.Error("deleted slot still mapped")
	}
	if ex, _ := v.Ldr(2, 0x100_0000, 8); ex.Reason != ExitMMIO {
		t.Errorf("deleted slot: %v", ex.Reason)
	}
	_ = v.CompleteMMIO([2]uint64{})
	if err := vm.DeleteSlot(0); !errors.Is(err, memslot.ErrNoSlot) {
		t.Errorf("second delete: %v", err)
	}
	// Re-adding the range at a new HVA gives fresh memory.
	if err := vm.AddSlot(memslot.Slot{ID: 0, GPA: 0x100_0000, Size: 2 * mib, HVA: hostmm.HVA(uint64(hva) + 4*mib)}); err != nil {
		t.Fatal(err)
	}
	if got := ldr(t, v, 0x100_0000); got != 0 {
		t.Errorf("re-added slot reads %#x, want the new backing's 0", got)
	}
	// Read-only flag: write-protected now, writes exit.
	if err := vm.SetSlotFlags(0, memslot.ReadOnly); err != nil {
		t.Fatal(err)
	}
	v.Ctx().X[1] = 5
	if ex, _ := v.Str(1, 0x100_0000, 8); ex.Reason != ExitMMIO {
		t.Errorf("write to a slot made read-only: %v", ex.Reason)
	}
	_ = v.CompleteMMIO([2]uint64{})
}

// TestGuestTLBIBroadcast: with HCR_EL2.FB a guest's TLBI VMALLE1 on one CPU
// reaches the other CPUs' TLBs.
func TestGuestTLBIBroadcast(t *testing.T) {
	h := newHost(t, Config{CPUs: 2})
	vm := newVM(t, h, 40)
	addMem(t, vm, 0, 0x4000_0000, mib, 0, 0)
	v0 := loadedVCPU(t, vm, 0, 0)
	v1 := loadedVCPU(t, vm, 1, 1)
	defer destroy(t, vm, v0, v1)
	ldr(t, v1, 0x4000_0000)
	if !tlbHas(h, 1, vm.VMID(), 0x4000_0000) {
		t.Fatal("no entry")
	}
	if ex, err := v0.TLBI(tlb.OpVMALLE1, 31); err != nil || ex.Reason != ExitNone {
		t.Fatal(ex, err)
	}
	// With stage 1 off the entries are stage-2-only, which VMALLE1 leaves
	// alone; what matters here is that the operation, upgraded to
	// VMALLE1IS by HCR_EL2.FB, reached CPU 1's TLB.
	if n := h.TLBStats(1).Invalidations[tlb.OpVMALLE1.IS()]; n != 1 {
		t.Fatalf("CPU 1's TLB saw %d VMALLE1IS, want 1", n)
	}
}

// TestChangePTE: KSM merging two identical guest pages raises ChangePTE
// (inside Start..End); stage 2 then maps both GPAs read-only to the one KSM
// frame, so reads need no fault. A write takes a permission fault, breaks
// copy-on-write and gets a private frame. A page whose stage-2 table does
// not exist (the guest never touched that 2 MiB region) is left unmapped:
// change_pte allocates no table. With a 48-bit IPA space (four levels)
// Map's worst case for one page exceeds what Start tops the notifier cache
// up to, so ChangePTE must top it up itself.
func TestChangePTE(t *testing.T) {
	for _, ipaBits := range []uint{40, 48} {
		t.Run(fmt.Sprintf("IPA%d", ipaBits), func(t *testing.T) { testChangePTE(t, ipaBits) })
	}
}

func testChangePTE(t *testing.T, ipaBits uint) {
	const gpa = 0x4000_0000
	h := newHost(t, Config{CPUs: 1})
	vm := newVM(t, h, ipaBits)
	hva := addMem(t, vm, 0, gpa, 4*mib, 0, hostmm.MapMergeable)
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)
	str(t, v, gpa, 0x5555)
	str(t, v, gpa+pg, 0x5555)
	// The third copy is written by the VMM only: no stage-2 table covers
	// the second 2 MiB of the slot.
	far := uint64(2*mib + pg)
	if err := vm.AddressSpace().Write(hva+hostmm.HVA(far), 8, 0x5555); err != nil {
		t.Fatal(err)
	}
	oa := func(ipa uint64) (uint64, bool, bool) {
		d, level, err := s2of(vm).Lookup(mem.IPA(ipa))
		if err != nil || d&1 == 0 {
			return 0, false, false
		}
		return vm.layout.Format.LeafOA(d, level), true, d>>7&1 == 1 // S2AP[1]: write
	}
	h.Kernel().KSMScan(0)
	h.Kernel().KSMScan(0)
	if h.Kernel().Stats().KSMMerged < 2 {
		t.Fatalf("KSM merged %d pages, want >= 2", h.Kernel().Stats().KSMMerged)
	}
	pa0, ok0, w0 := oa(gpa)
	pa1, ok1, w1 := oa(gpa + pg)
	if !ok0 || !ok1 || w0 || w1 || pa0 != pa1 {
		t.Fatalf("after the merge stage 2 maps %#x (valid %v, writable %v) and %#x (valid %v, writable %v), want one frame read-only",
			pa0, ok0, w0, pa1, ok1, w1)
	}
	if m, _ := vm.AddressSpace().Translate(hva); uint64(m.PA) != pa0 || m.Writable {
		t.Fatalf("host maps HVA %#x to %#x (writable %v), stage 2 to %#x", uint64(hva), uint64(m.PA), m.Writable, pa0)
	}
	if _, ok, _ := oa(gpa + far); ok {
		t.Errorf("change_pte mapped GPA %#x, whose stage-2 table did not exist", gpa+far)
	}
	st := vm.Stats()
	if st.ChangedPTEs == 0 {
		t.Fatalf("no ChangedPTEs counted: %+v", st)
	}
	for _, off := range []uint64{0, pg} {
		if got := ldr(t, v, gpa+off); got != 0x5555 {
			t.Errorf("%#x reads %#x after the merge", gpa+off, got)
		}
	}
	if d := vm.Stats(); d.Maps != st.Maps || d.Relaxes != st.Relaxes {
		t.Errorf("reads of the changed pages faulted: %+v -> %+v", st, d)
	}
	str(t, v, gpa+pg, 0x6666)
	if got := ldr(t, v, gpa); got != 0x5555 {
		t.Errorf("the other sharer reads %#x after the write, want 0x5555", got)
	}
	if got := ldr(t, v, gpa+pg); got != 0x6666 {
		t.Errorf("the writer reads %#x, want 0x6666", got)
	}
	pa1, ok1, w1 = oa(gpa + pg)
	if !ok1 || !w1 || pa1 == pa0 || h.Kernel().Stats().COWBreaks == 0 {
		t.Errorf("after the write stage 2 maps %#x (valid %v, writable %v), KSM frame %#x, COW breaks %d",
			pa1, ok1, w1, pa0, h.Kernel().Stats().COWBreaks)
	}
	if err := vm.Err(); err != nil {
		t.Error(err)
	}
}

// TestGuestTLBIOfBlockPieces is issue 14's item 6: the guest maps 1 GiB of
// VA by one stage-1 block over 4K stage-2 pages, so each CPU's TLB holds
// the block as 4K combined entries. A guest TLBI VAAE1 (made Inner
// Shareable by HCR_EL2.FB) of one address of the block removes every entry
// derived from the block on every CPU (the TLBI by VA invalidates cached
// copies of the translation table entry that would translate the VA: the
// whole block entry), and the next accesses walk again.
func TestGuestTLBIOfBlockPieces(t *testing.T) {
	const gpa = 0x4000_0000 // VA = IPA under guestMMUOn's identity 1G blocks
	h, vm, _, v0, v1 := twoCPUGuest(t, gpa, 0)
	defer destroy(t, vm, v0, v1)
	offs := []uint64{0, pg, 2 * mib, 3*mib + 5*pg}
	for _, off := range offs {
		str(t, v0, gpa+off, off)
		ldr(t, v1, gpa+off)
	}
	inBlock := func(cpu int) int {
		n := 0
		for _, e := range h.TLBEntries(cpu) {
			if e.Combined && e.VA>>30 == gpa>>30 {
				n++
			}
		}
		return n
	}
	for cpu := 0; cpu < 2; cpu++ {
		if n := inBlock(cpu); n < len(offs) {
			t.Fatalf("CPU %d holds %d combined entries of the block before the TLBI, want >= %d", cpu, n, len(offs))
		}
	}
	v0.Ctx().X[3] = (gpa + 2*mib) >> 12 // VA[55:12]; ASID field ignored by VAAE1
	if ex, err := v0.TLBI(tlb.OpVAAE1, 3); err != nil || ex.Reason != ExitNone {
		t.Fatal(ex, err)
	}
	for cpu := 0; cpu < 2; cpu++ {
		if n := inBlock(cpu); n != 0 {
			t.Errorf("CPU %d still holds %d entries derived from the invalidated block", cpu, n)
		}
	}
	walks := v1.PE().Stats.Walks
	for _, off := range offs {
		if got := ldr(t, v1, gpa+off); got != off {
			t.Errorf("GPA %#x reads %#x", gpa+off, got)
		}
	}
	if v1.PE().Stats.Walks == walks {
		t.Error("no access walked after the TLBI")
	}
}

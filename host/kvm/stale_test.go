package kvm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/hostmem"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// exhaust takes every free frame of the host's arena, so that any
// allocation fails, and returns a function that gives them back.
func exhaust(t testing.TB, h *Host) func() {
	t.Helper()
	a := h.Arena()
	var held []mem.PA
	for {
		pa, err := a.Alloc(0)
		if err != nil {
			if !errors.Is(err, hostmem.ErrNoMemory) {
				t.Fatal(err)
			}
			break
		}
		held = append(held, pa)
	}
	done := false
	give := func() {
		if done {
			return
		}
		done = true
		for _, pa := range held {
			if err := a.Put(pa); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(give)
	return give
}

// emptyCaches frees the table pages the VM's memslot cache and its vCPUs'
// caches hold, as after a top-up that failed. (The notifiers have no
// cache: they must need no memory.)
func emptyCaches(t testing.TB, vm *VM) {
	t.Helper()
	vm.opMu.Lock()
	defer vm.opMu.Unlock()
	err := vm.opCache.Release()
	for _, v := range vm.vcpus {
		err = errors.Join(err, v.cache.Release())
	}
	if err != nil {
		t.Fatal(err)
	}
}

// freedFrames lists the frames of [pa, pa+size) that the host has freed
// (reference count zero) or that are not host memory at all.
func freedFrames(h *Host, pa, size uint64) []uint64 {
	var bad []uint64
	for f := pa &^ (h.pageSize - 1); f < pa+size; f += h.pageSize {
		if h.arena.Ref(mem.PA(f)) == 0 {
			bad = append(bad, f)
			if len(bad) == 4 {
				break
			}
		}
	}
	return bad
}

// staleMappings returns every stage-2 leaf of vm and every TLB entry of
// vm's VMID on every CPU whose output reaches a frame the host freed.
func staleMappings(h *Host, vm *VM) []string {
	var out []string
	f := vm.layout.Format
	err := s2of(vm).Walk(0, mem.IPA(1)<<vm.layout.IPABits, s2pt.VisitorFunc(func(c *s2pt.Ctx, _ s2pt.WalkFlags) error {
		if c.Old&1 == 0 {
			return nil
		}
		oa := f.LeafOA(c.Old, c.Level)
		if bad := freedFrames(h, oa, c.Size()); len(bad) > 0 {
			out = append(out, fmt.Sprintf("stage 2: IPA %#x (level %d, descriptor %#x) maps freed frames %#x", uint64(c.Addr), c.Level, c.Old, bad))
		}
		return nil
	}), s2pt.VisitLeaf)
	if err != nil {
		out = append(out, fmt.Sprintf("walking stage 2: %v", err))
	}
	id := vm.VMID()
	for cpu := range h.cpus {
		for _, e := range h.TLBEntries(cpu) {
			if e.VMID != id || !(e.Stage2Only || e.Combined) {
				continue
			}
			if bad := freedFrames(h, uint64(e.OA), 1<<e.SizeBits); len(bad) > 0 {
				out = append(out, fmt.Sprintf("CPU %d TLB: VA %#x (IPA %#x, %d bits) -> freed frames %#x", cpu, uint64(e.VA), uint64(e.IPA), e.SizeBits, bad))
			}
		}
	}
	return out
}

func checkNoStale(t testing.TB, h *Host, vm *VM) {
	t.Helper()
	for _, s := range staleMappings(h, vm) {
		t.Error(s)
	}
}

// TestReleaseWithEmptyCacheUnmaps is issue 13's reproduction: a VM with a
// 64 MiB slot, one store, then the VMM's address space closes. Release
// must unmap the page before the host frees its frame, with the notifier's
// memory cache empty.
func TestReleaseWithEmptyCacheUnmaps(t *testing.T) {
	const gpa = 0x4000_0000
	h := newHost(t, Config{MemBytes: 128 * mib})
	vm := newVM(t, h, 40)
	addMem(t, vm, 0, gpa, 64*mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	str(t, v, gpa, 42)
	emptyCaches(t, vm)
	if err := vm.AddressSpace().Close(); err != nil {
		t.Fatal(err)
	}
	if err := vm.Err(); err != nil {
		t.Errorf("notifier error: %v", err)
	}
	if d, _, _ := s2of(vm).Lookup(gpa); d&1 != 0 {
		t.Errorf("stage 2 still maps GPA %#x after Release: %#x", gpa, d)
	}
	checkNoStale(t, h, vm)
	_ = v.Put()
	_ = vm.Destroy()
}

// TestNotifierPathsWithoutMemory: every MMU-notifier path and every memslot
// change removes (or ages) the stage-2 entries of its range with the
// notifier and memslot caches empty and no free frame in the host: none may
// fail for lack of memory, and afterwards no stage-2 entry and no TLB entry
// on any CPU may reach a frame the host freed.
func TestNotifierPathsWithoutMemory(t *testing.T) {
	const gpa = 0x4000_0000
	type env struct {
		h   *Host
		vm  *VM
		hva hostmm.HVA
	}
	unmapped := func(offs ...uint64) func(t *testing.T, e env) {
		return func(t *testing.T, e env) {
			for _, off := range offs {
				if d, _, _ := s2of(e.vm).Lookup(mem.IPA(gpa + off)); d&1 != 0 {
					t.Errorf("stage 2 still maps GPA %#x: %#x", gpa+off, d)
				}
				for cpu := 0; cpu < 2; cpu++ {
					if tlbHas(e.h, cpu, e.vm.VMID(), gpa+off) {
						t.Errorf("CPU %d's TLB still translates GPA %#x", cpu, gpa+off)
					}
				}
			}
		}
	}
	for _, c := range []struct {
		name  string
		mf    hostmm.MapFlags
		event func(e env) error
		check func(t *testing.T, e env)
		// reread: the guest's data must read back once memory is back
		// (false where the event took the memory away for good).
		reread bool
	}{
		{"release", 0, func(e env) error { return e.vm.AddressSpace().Close() }, unmapped(0, pg, 2*mib), false},
		{"invalidate: swap-out", 0, func(e env) error { return e.vm.AddressSpace().SwapOut(e.hva + pg) },
			unmapped(pg), true},
		{"invalidate: swap-out of part of a huge page", hostmm.MapHuge,
			func(e env) error { return e.vm.AddressSpace().SwapOut(e.hva + 2*mib + pg) }, unmapped(2*mib + pg), true},
		{"invalidate: munmap", 0, func(e env) error { return e.vm.AddressSpace().Munmap(e.hva) }, unmapped(0, pg, 2*mib), false},
		{"invalidate and change_pte: KSM merge", hostmm.MapMergeable, func(e env) error {
			e.h.Kernel().KSMScan(0)
			e.h.Kernel().KSMScan(0)
			if n := e.h.Kernel().Stats().KSMMerged; n < 2 {
				return fmt.Errorf("KSM merged %d pages, want >= 2", n)
			}
			return nil
		}, func(t *testing.T, e env) {
			// change_pte maps the KSM frame read-only where the level-3
			// table exists, without allocating.
			d0, l0, _ := s2of(e.vm).Lookup(gpa)
			d1, l1, _ := s2of(e.vm).Lookup(gpa + pg)
			f := e.vm.layout.Format
			if d0&1 == 0 || d1&1 == 0 || f.LeafOA(d0, l0) != f.LeafOA(d1, l1) || d0>>7&1 != 0 {
				t.Errorf("after the merge GPA %#x maps %#x, GPA %#x maps %#x: want one frame, read-only", uint64(gpa), d0, uint64(gpa+pg), d1)
			}
		}, true},
		{"age: clear_flush_young", 0, func(e env) error {
			if y, err := e.vm.AddressSpace().Age(e.hva, true); err != nil || !y {
				return fmt.Errorf("Age: young %v, %v", y, err)
			}
			return nil
		}, func(t *testing.T, e env) {
			if d, _, _ := s2of(e.vm).Lookup(gpa); d&1 == 0 || d&(1<<10) != 0 {
				t.Errorf("after clear_flush_young GPA %#x is %#x: want valid with AF clear", uint64(gpa), d)
			}
			unmapped()(t, e)
			for cpu := 0; cpu < 2; cpu++ {
				if tlbHas(e.h, cpu, e.vm.VMID(), gpa) {
					t.Errorf("CPU %d's TLB still holds GPA %#x after clear_flush_young", cpu, uint64(gpa))
				}
			}
		}, true},
		{"age: clear_young and test_young", 0, func(e env) error {
			if y, err := e.vm.AddressSpace().Age(e.hva+pg, false); err != nil || !y {
				return fmt.Errorf("Age: young %v, %v", y, err)
			}
			if y, err := e.vm.AddressSpace().TestYoung(e.hva + pg); err != nil || y {
				return fmt.Errorf("TestYoung after aging: young %v, %v", y, err)
			}
			return nil
		}, func(t *testing.T, e env) {}, true},
		{"memslot delete", 0, func(e env) error { return e.vm.DeleteSlot(0) }, unmapped(0, pg, 2*mib), false},
		{"memslot move", hostmm.MapHuge, func(e env) error { return e.vm.MoveSlot(0, 2*gpa) }, unmapped(0, pg, 2*mib), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, vm, hva, v0, v1 := twoCPUGuest(t, gpa, c.mf)
			offs := []uint64{0, pg, 2 * mib, 2*mib + pg}
			for _, off := range offs {
				str(t, v0, gpa+off, 0x77)
				ldr(t, v1, gpa+off)
			}
			if c.mf&hostmm.MapHuge != 0 && vm.Stats().BlockMaps == 0 {
				t.Fatal("no stage-2 block mapped from the huge page")
			}
			emptyCaches(t, vm)
			give := exhaust(t, h)
			e := env{h, vm, hva}
			if err := c.event(e); err != nil {
				t.Fatal(err)
			}
			if err := vm.Err(); err != nil {
				t.Errorf("notifier error: %v", err)
			}
			c.check(t, e)
			checkNoStale(t, h, vm)
			give()
			if c.reread {
				for _, off := range offs {
					if got := ldr(t, v1, gpa+off); got != 0x77 {
						t.Errorf("GPA %#x reads %#x after the event, want 0x77", gpa+off, got)
					}
				}
				checkNoStale(t, h, vm)
			}
			for _, v := range []*VCPU{v0, v1} {
				_ = v.Put()
			}
			_ = vm.Destroy()
		})
	}
}

// TestNoGuestAccessReachesFreedFrame is a property test: a random
// interleaving of guest loads and stores on two vCPUs (stage 1 on, so the
// TLBs hold combined entries) with host events that free or move frames
// (swap-out, migration, huge-page split and collapse, KSM merging, aging,
// memslot delete and move) and with phases in which the host has no free
// frame at all. The host poisons freed frames and counts every access the
// modelled hardware makes to a free frame. After every step: no such
// access, no stage-2 or TLB entry reaching a freed frame, no notifier
// error, and every load returns the last value stored (or a failure for
// lack of memory, never a wrong value). At the end the VMM's address space
// is closed (Release) and the same must hold.
func TestNoGuestAccessReachesFreedFrame(t *testing.T) {
	steps := 1500
	if testing.Short() || integrityAccesses < 1_000_000 { // -short or -race
		steps = 600
	}
	for seed := uint64(1); seed <= 2; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runStaleProperty(t, seed, steps) })
	}
}

func runStaleProperty(t *testing.T, seed uint64, steps int) {
	const (
		gpa0, size0 = 0x4000_0000, 4 * mib // huge pages
		gpa1, size1 = 0x8000_0000, 1 * mib // mergeable
		alt1        = 0xc000_0000          // where slot 1 moves for a while
		wordsPP     = 4                    // words used per page
	)
	h := newHost(t, Config{CPUs: 2, MemBytes: 16 * mib, PoisonFreed: true})
	vm := newVM(t, h, 40)
	hva0 := addMem(t, vm, 0, gpa0, size0, 0, hostmm.MapHuge)
	hva1 := addMem(t, vm, 1, gpa1, size1, 0, hostmm.MapMergeable)
	vcpus := []*VCPU{loadedVCPU(t, vm, 0, 0), loadedVCPU(t, vm, 1, 1)}
	guestMMUOn(t, vm, vcpus...)
	as := vm.AddressSpace()
	rng := rand.New(rand.NewPCG(seed, 13))
	exp := map[uint64]uint64{}
	// word picks a guest word and its HVA.
	word := func() (gpa uint64, hva hostmm.HVA) {
		w := uint64(rng.IntN(wordsPP)) * 8
		if rng.IntN(2) == 0 {
			off := uint64(rng.IntN(size0/pg))*pg + w
			return gpa0 + off, hva0 + hostmm.HVA(off)
		}
		off := uint64(rng.IntN(size1/pg))*pg + w
		return gpa1 + off, hva1 + hostmm.HVA(off)
	}
	var give func()
	noMem := func(err error) bool { return errors.Is(err, hostmem.ErrNoMemory) }
	counts := map[string]int{}
	for step := 0; step < steps; step++ {
		var what string
		v := vcpus[rng.IntN(2)]
		switch k := rng.IntN(20); {
		case k < 6: // guest store; small values so that KSM finds equal pages
			gpa, _ := word()
			val := uint64(rng.IntN(3))
			if gpa < gpa1 {
				val = rng.Uint64() >> 1
			}
			what = fmt.Sprintf("store %#x to GPA %#x", val, gpa)
			v.Ctx().X[2] = val
			ex, err := v.Str(2, mem.VA(gpa), 8)
			switch {
			case err == nil && ex.Reason == ExitNone:
				exp[gpa] = val
			case err != nil && noMem(err):
				counts["no memory"]++
			default:
				t.Fatalf("step %d: %s: exit %v, %v", step, what, ex.Reason, err)
			}
		case k < 12: // guest load
			gpa, _ := word()
			what = fmt.Sprintf("load GPA %#x", gpa)
			ex, err := v.Ldr(3, mem.VA(gpa), 8)
			switch {
			case err == nil && ex.Reason == ExitNone:
				if got := v.Ctx().X[3]; got != exp[gpa] {
					t.Fatalf("step %d: %s read %#x, want %#x", step, what, got, exp[gpa])
				}
			case err != nil && noMem(err):
				counts["no memory"]++
			default:
				t.Fatalf("step %d: %s: exit %v, %v", step, what, ex.Reason, err)
			}
		case k == 12:
			_, hva := word()
			what = fmt.Sprintf("swap out HVA %#x", uint64(hva))
			if err := as.SwapOut(hva); err == nil {
				counts["swap-out"]++
			}
		case k == 13:
			_, hva := word()
			what = fmt.Sprintf("migrate HVA %#x", uint64(hva))
			if err := as.Migrate(hva); err == nil {
				counts["migrate"]++
			}
		case k == 14:
			hva := hva0 + hostmm.HVA(rng.IntN(size0/(2*mib)))*2*mib
			what = fmt.Sprintf("split or collapse HVA %#x", uint64(hva))
			if rng.IntN(2) == 0 {
				if as.SplitHuge(hva) == nil {
					counts["split"]++
				}
			} else if as.Collapse(hva) == nil {
				counts["collapse"]++
			}
		case k == 15:
			what = "KSM scan"
			counts["KSM merged"] += h.Kernel().KSMScan(0)
		case k == 16:
			_, hva := word()
			what = fmt.Sprintf("age HVA %#x", uint64(hva))
			_, _ = as.Age(hva, rng.IntN(2) == 0)
		case k == 17:
			if give == nil {
				what = "exhaust host memory"
				give = exhaust(t, h)
				emptyCaches(t, vm)
				counts["exhausted"]++
			} else {
				what = "give host memory back"
				give()
				give = nil
			}
		case k == 18:
			id, gpa, size, hva := 0, uint64(gpa0), uint64(size0), hva0
			if rng.IntN(2) == 0 {
				id, gpa, size, hva = 1, gpa1, size1, hva1
			}
			what = fmt.Sprintf("delete and re-add slot %d", id)
			if err := vm.DeleteSlot(id); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
			checkNoStale(t, h, vm)
			if err := vm.AddSlot(memslot.Slot{ID: id, GPA: mem.IPA(gpa), Size: size, HVA: hva}); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
			counts["slot delete"]++
		default:
			what = "move slot 1 away and back"
			if err := vm.MoveSlot(1, alt1); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
			checkNoStale(t, h, vm)
			if err := vm.MoveSlot(1, gpa1); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
			counts["slot move"]++
		}
		if err := vm.Err(); err != nil {
			t.Fatalf("step %d (%s): notifier error: %v", step, what, err)
		}
		if n, first, ok := h.Arena().StaleAccesses(); ok {
			t.Fatalf("step %d (%s): %d accesses reached a freed frame, the first at PA %#x", step, what, n, uint64(first))
		}
		if s := staleMappings(h, vm); len(s) > 0 {
			t.Fatalf("step %d (%s): %v", step, what, s)
		}
	}
	if give != nil {
		give()
	}
	if err := as.Close(); err != nil {
		t.Fatal(err)
	}
	if err := vm.Err(); err != nil {
		t.Fatalf("release: notifier error: %v", err)
	}
	checkNoStale(t, h, vm)
	for _, v := range vcpus {
		if _, err := v.Ldr(3, gpa0, 8); !errors.Is(err, hostmm.ErrFault) {
			t.Errorf("access after the address space closed: %v, want hostmm.ErrFault", err)
		}
	}
	if n, first, ok := h.Arena().StaleAccesses(); ok {
		t.Fatalf("after release: %d accesses reached a freed frame, the first at PA %#x", n, uint64(first))
	}
	t.Logf("%d steps: %v", steps, counts)
	for _, k := range []string{"swap-out", "migrate", "KSM merged", "exhausted", "slot delete", "slot move"} {
		if counts[k] == 0 {
			t.Errorf("the run never did %q: %v", k, counts)
		}
	}
	for _, v := range vcpus {
		_ = v.Put()
	}
	if err := vm.Destroy(); err != nil && !errors.Is(err, hostmm.ErrClosed) {
		t.Error(err)
	}
}

// TestFreedTablesLeaveTheWalkCache: with a walk cache in every CPU's TLB
// (tlb.Config.WalkCache) and freed frames poisoned, deleting a memslot
// frees its stage-2 tables; the invalidation that precedes the free must
// be one that removes table entries (not a last-level form), over the
// tables' ranges, or a later guest access walks through a freed table.
func TestFreedTablesLeaveTheWalkCache(t *testing.T) {
	h := newHost(t, Config{PoisonFreed: true, TLB: tlb.Config{WalkCache: 64}})
	vm := newVM(t, h, 40)
	const gpa = 0x4000_0000
	addMem(t, vm, 0, gpa, 64*mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	for off := uint64(0); off < 64*mib; off += 16 * pg {
		str(t, v, gpa+off, off)
	}
	if h.TLBStats(0).WalkCacheHits == 0 {
		t.Fatal("the walk cache was never used: the test shows nothing")
	}
	tables := vm.Stats().S2.Tables
	if err := vm.DeleteSlot(0); err != nil {
		t.Fatal(err)
	}
	if got := vm.Stats().S2.Tables; got >= tables {
		t.Fatalf("%d tables before the delete, %d after: none freed", tables, got)
	}
	for off := uint64(0); off < 64*mib; off += 16 * pg {
		ex, err := v.Ldr(1, mem.VA(gpa+off), 8)
		if err != nil || ex.Reason != ExitMMIO {
			t.Fatalf("load from the deleted slot at %#x: exit %v, %v; want an MMIO exit", gpa+off, ex.Reason, err)
		}
		if err := v.CompleteMMIO([2]uint64{}); err != nil {
			t.Fatal(err)
		}
	}
	if n, first, _ := h.Arena().StaleAccesses(); n != 0 {
		t.Fatalf("%d accesses to freed frames (first %#x): a walk went through a freed table", n, uint64(first))
	}
}

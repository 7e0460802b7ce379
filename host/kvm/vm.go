package kvm

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/host/mmio"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/host/vmid"
	"github.com/nestmmu/nestmmu/mem"
)

// VMConfig describes a VM.
type VMConfig struct {
	// IPABits is the IPA size: 32 to 48, or 52 where the ID registers
	// allow it (FEAT_LPA2 with 4K/16K, FEAT_LPA with 64K).
	IPABits uint
	// Bus, when set, is an in-kernel device bus: MMIO accesses are
	// emulated against it without an exit. Otherwise every MMIO access
	// exits to the caller (KVM_EXIT_MMIO).
	Bus mmio.Bus
}

// ErrDestroyed is returned by operations on a destroyed VM.
var ErrDestroyed = errors.New("kvm: VM destroyed")

// VM is a virtual machine: stage-2 tables, memslots, the VMM address space
// that backs them, and the MMU notifier that keeps stage 2 in step with it.
type VM struct {
	host   *Host
	s2     *s2pt.VM
	layout s2pt.Layout
	as     *hostmm.AddressSpace
	reg    *hostmm.Registration
	slots  *memslot.Set
	bus    mmio.Bus
	// huge2M: the layout has 2 MiB blocks (a host huge page can be mapped
	// as one stage-2 block).
	huge2M bool

	// mu is the MMU lock, the one lock of the VM's stage 2: it guards
	// the stage-2 tables (s2pt takes it as Config.MMULock and takes no
	// lock of its own), the invalidation sequence count (inv), slot
	// changes (slotGen) and dirty bitmaps against faults: faults install
	// under it after checking inv and slotGen; notifiers and memslot
	// changes change stage 2 under it.
	mu  sync.Mutex
	inv hostmm.Invalidation
	// slotGen moves (under mu) whenever a slot is added, moved, deleted or
	// changes flags, so a fault that resolved its page from an old slot
	// retries instead of installing it (KVM's memslot generation).
	slotGen atomic.Uint64

	vmid vmid.VM

	// opMu serialises the VMM's memslot and dirty-log operations and
	// their use of opCache (for splitting blocks when dirty logging
	// starts). The notifiers need no cache: s2pt's Unmap, WriteProtect,
	// MkOld and TestYoung take no memory.
	opMu    sync.Mutex
	opCache *s2pt.Cache

	vcpus     []*VCPU // guarded by opMu
	lastRan   []int   // per physical CPU: the vCPU of this VM that ran there last (owner of the CPU)
	destroyed atomic.Bool
	// released is set by the notifier's Release (the VMM's address space
	// is going away); a fault checks it under mu and installs nothing
	// after it, since the host frees the frames without another call.
	released atomic.Bool
	errMu    sync.Mutex
	err      error // first error a notifier callback could not return
	lastErr  error // the last one
	nErrs    uint64

	c vmCounters

	// nested is told about canonical stage-2 changes (SetNestedHooks);
	// guarded by mu.
	nested NestedHooks
}

type vmCounters struct {
	maps, blockMaps, relaxes, afFaults, retries, slotRetries atomic.Uint64
	mmioExits, mmioEmulated, injected, cmSkipped             atomic.Uint64
	notifUnmaps, notifAged, dirtyMarked, changedPTEs         atomic.Uint64
	atRetries, refetches                                     atomic.Uint64
}

// VMStats counts what the hypervisor did for a VM.
type VMStats struct {
	// Maps are stage-2 translation or permission faults that installed a
	// new leaf; BlockMaps those that installed a block.
	Maps, BlockMaps uint64
	// Relaxes are permission faults resolved by adding write permission
	// to the existing leaf (dirty logging, a page the host made writable).
	Relaxes uint64
	// AccessFlagFaults were resolved by setting the Access flag.
	AccessFlagFaults uint64
	// Retries are faults that saw an invalidation race (sequence count)
	// and started again; SlotRetries those that saw a memslot change;
	// ATRetries permission faults whose IPA the AT S1E1R of FAR could not
	// give (the guest's stage 1 changed meanwhile), re-executed.
	Retries, SlotRetries, ATRetries uint64
	// MMIOExits returned to the caller, MMIOEmulated went to the VM's Bus,
	// Injected aborts were injected into the guest, CMSkipped are cache
	// maintenance instructions on MMIO that were skipped.
	MMIOExits, MMIOEmulated, Injected, CMSkipped uint64
	// Refetches are MMIO decodes (ISV=0) that could not read the
	// instruction through stage 2: the PE fetched it at EL1 (resolving
	// its stage-2 faults) and the instruction was executed again.
	Refetches uint64
	// NotifierUnmaps are invalidate-range starts that touched a slot;
	// Aged are young callbacks that touched one.
	NotifierUnmaps, Aged uint64
	// ChangedPTEs are stage-2 pages mapped read-only from a ChangePTE.
	ChangedPTEs uint64
	// DirtyMarked counts pages marked in a dirty bitmap by write faults.
	DirtyMarked uint64
	// S2 is the stage-2 page-table accounting.
	S2 s2pt.Stats
}

// NewVM creates a VM: stage-2 tables with the VTCR_EL2 that cfg's IPA size
// and the host granule give, an empty slot set, and a VMM address space
// with the VM's MMU notifier registered on it.
func (h *Host) NewVM(cfg VMConfig) (*VM, error) {
	if h.closed.Load() {
		return nil, errors.New("kvm: host closed")
	}
	vm := &VM{host: h, bus: cfg.Bus}
	s2, err := s2pt.New(s2pt.Config{IPABits: cfg.IPABits, Granule: h.granule, MMFR0: h.id.MMFR0, MMFR1: h.id.MMFR1, MMULock: &vm.mu},
		s2pt.ArenaTables{Arena: h.arena}, s2inv{vm})
	if err != nil {
		return nil, fmt.Errorf("kvm: VM with a %d-bit IPA space: %w", cfg.IPABits, err)
	}
	vm.s2, vm.layout = s2, s2.Layout()
	for _, bs := range vm.layout.BlockSizes() {
		vm.huge2M = vm.huge2M || bs == hostmm.HugeSize
	}
	vm.slots, err = memslot.NewSet(h.pageSize, vm.layout.IPABits)
	if err != nil {
		_ = s2.Destroy()
		return nil, fmt.Errorf("kvm: %w", err)
	}
	vm.opCache = s2.NewCache()
	vm.lastRan = make([]int, len(h.cpus))
	for i := range vm.lastRan {
		vm.lastRan[i] = -1
	}
	vm.as = h.kernel.NewAddressSpace()
	vm.reg, err = vm.as.RegisterNotifier(notifier{vm})
	if err != nil {
		_ = s2.Destroy()
		return nil, fmt.Errorf("kvm: %w", err)
	}
	h.vms.Add(1)
	return vm, nil
}

// Destroy tears the VM down: every vCPU must have been put. The notifier
// is unregistered, the stage-2 tables freed (after TLBI VMALLS12E1IS), the
// VMID released and the VMM address space closed.
func (vm *VM) Destroy() error {
	vm.opMu.Lock()
	defer vm.opMu.Unlock()
	for _, v := range vm.vcpus {
		if v.cpu != nil {
			return fmt.Errorf("kvm: vCPU %d is still loaded on CPU %d", v.id, v.cpuIdx)
		}
	}
	if vm.destroyed.Swap(true) {
		return ErrDestroyed
	}
	vm.reg.Unregister()
	vm.host.vms.Add(-1)
	var errs []error
	vm.mu.Lock()
	errs = append(errs, vm.s2.Destroy())
	vm.mu.Unlock()
	errs = append(errs, vm.host.vmids.Free(&vm.vmid))
	errs = append(errs, vm.opCache.Release())
	for _, v := range vm.vcpus {
		errs = append(errs, v.cache.Release())
	}
	if err := vm.as.Close(); !errors.Is(err, hostmm.ErrClosed) {
		errs = append(errs, err) // the VMM may have closed it already
	}
	vm.mu.Lock()
	for _, s := range vm.slots.Slots() {
		_, _ = vm.slots.Delete(s.ID)
	}
	vm.slotGen.Add(1)
	vm.mu.Unlock()
	return errors.Join(errs...)
}

// AddressSpace returns the VMM's address space, whose regions back the
// memslots (Mmap there, then AddSlot).
func (vm *VM) AddressSpace() *hostmm.AddressSpace { return vm.as }

// VTCR returns VTCR_EL2 for the VM.
func (vm *VM) VTCR() sysreg.VTCR { return vm.s2.VTCR() }

// Layout returns the VM's stage-2 layout.
func (vm *VM) Layout() s2pt.Layout { return vm.layout }

// Stage2 returns the VM's stage-2 tables (for inspection). Its table
// operations require the VM's MMU lock, which only the hypervisor takes:
// outside it, use only Layout, VTCR, VTTBR and ApplyRegs.
func (vm *VM) Stage2() *s2pt.VM { return vm.s2 }

// WalkStage2 walks the VM's stage 2 under its MMU lock (s2pt.VM.Walk with
// the lock s2pt requires): for checks and inspection from outside the
// hypervisor. The visitor must not call the VM.
func (vm *VM) WalkStage2(start, end mem.IPA, v s2pt.Visitor, flags s2pt.WalkFlags) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.s2.Walk(start, end, v, flags)
}

// VMID returns the VMID the VM last got from the allocator (it changes
// only when a vCPU is loaded after a generation rollover).
func (vm *VM) VMID() uint16 { return vm.vmid.VMID(vm.host.vmids) }

// Err returns the first error a notifier callback met (it cannot return
// one), or nil; Errors also gives their number and the last.
func (vm *VM) Err() error {
	vm.errMu.Lock()
	defer vm.errMu.Unlock()
	return vm.err
}

// Errors returns how many errors the notifier callbacks met, the first and
// the last.
func (vm *VM) Errors() (n uint64, first, last error) {
	vm.errMu.Lock()
	defer vm.errMu.Unlock()
	return vm.nErrs, vm.err, vm.lastErr
}

func (vm *VM) setErr(err error) {
	if err == nil {
		return
	}
	vm.errMu.Lock()
	if vm.err == nil {
		vm.err = err
	}
	vm.lastErr = err
	vm.nErrs++
	vm.errMu.Unlock()
}

// Stats returns the VM's counters.
func (vm *VM) Stats() VMStats {
	c := &vm.c
	return VMStats{Maps: c.maps.Load(), BlockMaps: c.blockMaps.Load(), Relaxes: c.relaxes.Load(),
		AccessFlagFaults: c.afFaults.Load(), Retries: c.retries.Load(), SlotRetries: c.slotRetries.Load(), ATRetries: c.atRetries.Load(),
		MMIOExits: c.mmioExits.Load(), MMIOEmulated: c.mmioEmulated.Load(), Injected: c.injected.Load(),
		CMSkipped: c.cmSkipped.Load(), Refetches: c.refetches.Load(), NotifierUnmaps: c.notifUnmaps.Load(), Aged: c.notifAged.Load(),
		ChangedPTEs: c.changedPTEs.Load(),
		DirtyMarked: c.dirtyMarked.Load(), S2: vm.s2Stats()}
}

func (vm *VM) s2Stats() s2pt.Stats {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.s2.Stats()
}

// s2inv is the VM's s2pt.RangeInvalidator: the broadcast TLB maintenance
// of the host, tagged with the VM's current VMID (it changes on rollover).
type s2inv struct{ vm *VM }

// InvalidateIPA is TLBI IPAS2E1IS then TLBI VMALLE1IS.
func (s s2inv) InvalidateIPA(ipa mem.IPA, level int) {
	var one [1]mem.IPA
	one[0] = ipa
	s.vm.host.tlbiIPA(s.vm.VMID(), one[:], level)
}

// InvalidateRanges is one batch: TLBI RIPAS2E1IS / RIPAS2LE1IS (IPAS2E1IS
// / IPAS2LE1IS for one granule) per range with its TTL, then TLBI
// VMALLE1IS once (kvm_tlb_flush_vmid_range).
func (s s2inv) InvalidateRanges(rs []s2pt.Range) { s.vm.host.tlbiRanges(s.vm.VMID(), rs) }

// InvalidateVMID is TLBI VMALLS12E1IS.
func (s s2inv) InvalidateVMID() { s.vm.host.tlbiVMID(s.vm.VMID()) }

// flushRange invalidates the TLB entries of [gpa, gpa+size) after the
// Access flags of its leaves were cleared: one batch of TLBI RIPAS2LE1IS
// (the last-level form: only leaf descriptors changed, the walk caches
// stay valid) then VMALLE1IS, as kvm_flush_remote_tlbs_range; a range the
// range operands cannot express falls back to VMALLS12E1IS.
func (vm *VM) flushRange(gpa mem.IPA, size uint64) {
	var one [1]s2pt.Range
	one[0] = s2pt.Range{Start: gpa, End: gpa + mem.IPA(size), Level: s2pt.NoLevelHint, LeafOnly: true, Stride: vm.host.pageSize}
	vm.host.tlbiRanges(vm.VMID(), one[:])
}

// overlap calls f with the GPA range of each slot that backs part of the
// HVA range [start, end).
func (vm *VM) overlap(start, end hostmm.HVA, f func(s *memslot.Slot, gpa mem.IPA, size uint64)) {
	for _, s := range vm.slots.Slots() {
		lo, hi := start, end
		if s.HVA > lo {
			lo = s.HVA
		}
		if e := s.HVA + hostmm.HVA(s.Size); e < hi {
			hi = e
		}
		if lo >= hi {
			continue
		}
		f(s, s.GPAOf(lo), uint64(hi-lo))
	}
}

// AddSlot adds a memslot: the GPA range [s.GPA, s.GPA+s.Size) backed by the
// VMM's HVA range from s.HVA, which must lie inside one region of the
// address space. Overlapping or misaligned slots are rejected (errors match
// memslot.ErrOverlap and memslot.ErrAlignment). Nothing is mapped until the
// guest faults.
func (vm *VM) AddSlot(s memslot.Slot) error {
	if vm.destroyed.Load() {
		return ErrDestroyed
	}
	if err := vm.checkBacking(s.HVA, s.Size); err != nil {
		return err
	}
	vm.opMu.Lock()
	defer vm.opMu.Unlock()
	vm.mu.Lock()
	defer vm.mu.Unlock()
	s.Dirty = nil
	if err := vm.slots.Add(s); err != nil {
		return fmt.Errorf("kvm: %w", err)
	}
	vm.slotGen.Add(1)
	return nil
}

func (vm *VM) checkBacking(hva hostmm.HVA, size uint64) error {
	if size == 0 {
		return nil // memslot names the empty slot
	}
	end := hva + hostmm.HVA(size)
	for _, r := range vm.as.Regions() {
		if hva >= r.Start && end <= r.End && end > hva {
			return nil
		}
	}
	return fmt.Errorf("kvm: HVA range %#x+%#x is not inside one region of the VMM address space", uint64(hva), size)
}

// AddMemory maps size bytes of anonymous memory in the VMM address space
// (with mf: huge pages, mergeable) and adds it as slot id at gpa.
func (vm *VM) AddMemory(id int, gpa mem.IPA, size uint64, flags memslot.Flags, mf hostmm.MapFlags) (hostmm.HVA, error) {
	hva, err := vm.as.Mmap(size, mf)
	if err != nil {
		return 0, fmt.Errorf("kvm: %w", err)
	}
	if err := vm.AddSlot(memslot.Slot{ID: id, GPA: gpa, Size: size, HVA: hva, Flags: flags}); err != nil {
		_ = vm.as.Munmap(hva)
		return 0, err
	}
	return hva, nil
}

// DeleteSlot removes slot id and unmaps its range from stage 2 (with the
// TLB invalidation) before returning.
func (vm *VM) DeleteSlot(id int) error {
	return vm.changeSlot(id, func() (memslot.Range, error) { return vm.slots.Delete(id) })
}

// MoveSlot moves slot id to newGPA (same size and HVA, KVM_MR_MOVE) and
// unmaps the old GPA range from stage 2 before returning.
func (vm *VM) MoveSlot(id int, newGPA mem.IPA) error {
	return vm.changeSlot(id, func() (memslot.Range, error) { return vm.slots.Move(id, newGPA) })
}

func (vm *VM) slotByID(id int) *memslot.Slot {
	for _, s := range vm.slots.Slots() {
		if s.ID == id {
			return s
		}
	}
	return nil
}

func (vm *VM) changeSlot(id int, change func() (memslot.Range, error)) error {
	if vm.destroyed.Load() {
		return ErrDestroyed
	}
	vm.opMu.Lock()
	defer vm.opMu.Unlock()
	vm.mu.Lock()
	defer vm.mu.Unlock()
	r, err := change()
	if err != nil {
		return fmt.Errorf("kvm: %w", err)
	}
	vm.slotGen.Add(1)
	vm.nestedUnmapped(r.Start, uint64(r.End-r.Start))
	// Unmap takes no memory: a slot change cannot fail for lack of it.
	if err := vm.s2.Unmap(r.Start, uint64(r.End-r.Start)); err != nil {
		return fmt.Errorf("kvm: unmapping slot %d's old range %#x-%#x: %w", id, uint64(r.Start), uint64(r.End), err)
	}
	return nil
}

// SetSlotFlags changes slot id's flags. Making it read-only or turning on
// dirty logging write-protects its range in stage 2 (with TLB
// invalidation) before returning; use EnableDirtyLog to also split blocks.
func (vm *VM) SetSlotFlags(id int, f memslot.Flags) error {
	if f&^(memslot.ReadOnly|memslot.LogDirty) != 0 {
		return fmt.Errorf("kvm: unknown slot flags %#x", uint8(f))
	}
	return vm.setFlags(id, func(memslot.Flags) memslot.Flags { return f }, false)
}

// EnableDirtyLog starts dirty logging on slot id: the slot is
// write-protected in stage 2 (and, with split, its blocks are split into
// pages now rather than on the first write), so the next write to each
// page faults and is recorded.
func (vm *VM) EnableDirtyLog(id int, split bool) error {
	return vm.setFlags(id, func(f memslot.Flags) memslot.Flags { return f | memslot.LogDirty }, split)
}

// DisableDirtyLog stops dirty logging on slot id. Pages stay mapped as they
// are; later faults may map blocks again.
func (vm *VM) DisableDirtyLog(id int) error {
	return vm.setFlags(id, func(f memslot.Flags) memslot.Flags { return f &^ memslot.LogDirty }, false)
}

// setFlags changes slot id's flags to change(old flags), reading and
// writing them under opMu, which every flag change holds: concurrent
// changes apply in some serial order and none is lost.
func (vm *VM) setFlags(id int, change func(memslot.Flags) memslot.Flags, split bool) error {
	if vm.destroyed.Load() {
		return ErrDestroyed
	}
	vm.opMu.Lock()
	defer vm.opMu.Unlock()
	old := vm.slotByID(id)
	if old == nil {
		return fmt.Errorf("kvm: slot %d: %w", id, memslot.ErrNoSlot)
	}
	f := change(old.Flags)
	if split {
		// Only the split takes memory (write-protection takes none); a
		// failed top-up changes nothing.
		if err := vm.opCache.Topup(vm.s2.SplitPagesNeeded(old.GPA, old.Size)); err != nil {
			return fmt.Errorf("kvm: %w", err)
		}
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	s, err := vm.slots.SetFlags(id, f)
	if err != nil {
		return fmt.Errorf("kvm: %w", err)
	}
	vm.slotGen.Add(1)
	restrict := (f&memslot.ReadOnly != 0 && old.Flags&memslot.ReadOnly == 0) ||
		(f&memslot.LogDirty != 0 && old.Flags&memslot.LogDirty == 0)
	if restrict {
		vm.nestedWriteProtected(s.GPA, s.Size)
		if err := vm.s2.WriteProtect(s.GPA, s.Size); err != nil {
			return fmt.Errorf("kvm: write-protecting slot %d: %w", id, err)
		}
	}
	if split {
		if err := vm.s2.Split(vm.opCache, s.GPA, s.Size); err != nil {
			return fmt.Errorf("kvm: splitting slot %d: %w", id, err)
		}
	}
	return nil
}

// GetDirtyLog returns the pages of slot id (indices from the slot's first
// page) written since logging started or since the last call, and clears
// them. In KVM's order, under the MMU lock: each bitmap word is taken and
// cleared, the pages it named are write-protected again in stage 2, and the
// TLB is invalidated, all before the pages are returned; a write fault marks
// its page dirty under the same lock before making it writable. So a write
// is either in this result (it happened before the page was write-protected
// again) or faults and is in the next one. Write-protection takes no memory
// (a block is write-protected whole), so clearing and re-protecting cannot
// fail for lack of it; should it fail otherwise, the pages not yet
// protected are marked dirty again (reported by the next call) and the
// error is returned with the pages that were.
func (vm *VM) GetDirtyLog(id int) ([]uint64, error) {
	if vm.destroyed.Load() {
		return nil, ErrDestroyed
	}
	vm.opMu.Lock()
	defer vm.opMu.Unlock()
	pg := vm.host.pageSize
	vm.mu.Lock()
	s := vm.slotByID(id)
	if s == nil || s.Dirty == nil {
		vm.mu.Unlock()
		if s == nil {
			return nil, fmt.Errorf("kvm: slot %d: %w", id, memslot.ErrNoSlot)
		}
		return nil, fmt.Errorf("kvm: slot %d is not logging dirty pages", id)
	}
	pages := s.Dirty.GetAndClear()
	for i := 0; i < len(pages); {
		j := i + 1
		for j < len(pages) && pages[j] == pages[j-1]+1 {
			j++
		}
		gpa, size := s.GPA+mem.IPA(pages[i]*pg), uint64(j-i)*pg
		vm.nestedWriteProtected(gpa, size)
		if err := vm.s2.WriteProtect(gpa, size); err != nil {
			for _, p := range pages[i:] {
				s.Dirty.Set(p)
			}
			vm.mu.Unlock()
			return pages[:i], fmt.Errorf("kvm: write-protecting dirty pages of slot %d (pages %d on stay marked dirty): %w", id, pages[i], err)
		}
		i = j
	}
	vm.mu.Unlock()
	return pages, nil
}

// Slots returns the VM's slots in GPA order (do not modify them); none
// once the VM is destroyed.
func (vm *VM) Slots() []*memslot.Slot { return vm.slots.Slots() }

// notifier is the VM's MMU notifier on its VMM address space.
type notifier struct{ vm *VM }

// InvalidateRangeStart unmaps, before returning, every stage-2 entry that
// covers any GPA whose memslot HVA lies in r (a block the range covers in
// part goes whole), with the TLB invalidation (one batch: s2pt's ranges as
// TLBI RIPAS2E1IS/RIPAS2LE1IS, then VMALLE1IS), and marks the range in
// progress so no fault installs a page of it until End. It takes no memory.
func (n notifier) InvalidateRangeStart(r hostmm.Range) {
	vm := n.vm
	vm.mu.Lock()
	defer vm.mu.Unlock()
	vm.inv.Begin(r.Start, r.End)
	if vm.destroyed.Load() {
		return
	}
	vm.overlap(r.Start, r.End, func(_ *memslot.Slot, gpa mem.IPA, size uint64) {
		vm.c.notifUnmaps.Add(1)
		vm.nestedUnmapped(gpa, size)
		if err := vm.s2.Unmap(gpa, size); err != nil {
			vm.setErr(fmt.Errorf("kvm: notifier unmap of %v (GPA %#x+%#x): %w", r, uint64(gpa), size, err))
		}
	})
}

// InvalidateRangeEnd ends the invalidation: faults may install again.
func (n notifier) InvalidateRangeEnd(r hostmm.Range) {
	vm := n.vm
	vm.mu.Lock()
	if err := vm.inv.End(r.Start, r.End); err != nil {
		vm.setErr(err)
	}
	vm.mu.Unlock()
}

// ChangePTE is change_pte (kvm_set_spte_gfn, as KVM did it before Linux
// 6.9): the host entry for hva now maps pa, so every GPA that maps hva is
// mapped to pa read-only at page size, and the guest's next read needs no
// stage-2 fault; a write takes a permission fault and goes through FaultIn
// (copy-on-write break, KSM unshare). Start already unmapped the page and
// marked the range in progress, so no fault can install a stale frame
// meanwhile; this mapping comes from the host entry itself. As KVM (which
// passed no memory cache), it maps only where the level-3 table holding the
// page already exists (s2pt.MapInPlace: nothing allocated, split or freed):
// no table is allocated for a change the guest may never use, and where one
// would be needed the call is ignored, which the protocol allows (the next
// access faults).
func (n notifier) ChangePTE(hva hostmm.HVA, pa mem.PA) {
	vm := n.vm
	pg := vm.host.pageSize
	page := hva &^ hostmm.HVA(pg-1)
	pa &^= mem.PA(pg - 1)
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.destroyed.Load() {
		return
	}
	vm.overlap(page, page+hostmm.HVA(pg), func(_ *memslot.Slot, gpa mem.IPA, _ uint64) {
		vm.nestedChangedPTE(gpa, pa)
		err := vm.s2.Map(nil, gpa, pa, pg, s2pt.ProtR|s2pt.ProtX, s2pt.MapInPlace)
		if errors.Is(err, s2pt.ErrNeedsTables) {
			return // no level-3 table holds the page (or a block would be split)
		}
		if err != nil {
			vm.setErr(fmt.Errorf("kvm: change_pte of HVA %#x (GPA %#x) to %#x: %w", uint64(hva), uint64(gpa), uint64(pa), err))
			return
		}
		vm.c.changedPTEs.Add(1)
	})
}

// ClearYoung clears the Access flag of the stage-2 entries of the range
// without TLB invalidation (clear_young: a cached entry may keep the page
// looking unused for a while, which only affects reclaim's choice).
func (n notifier) ClearYoung(start, end hostmm.HVA) bool { return n.vm.age(start, end, false) }

// ClearFlushYoung clears the Access flags and invalidates the range's TLB
// entries, so the next access walks and faults on the clear flag.
func (n notifier) ClearFlushYoung(start, end hostmm.HVA) bool { return n.vm.age(start, end, true) }

// TestYoung reports whether any stage-2 entry of the range has its Access
// flag set.
func (n notifier) TestYoung(start, end hostmm.HVA) bool {
	vm := n.vm
	vm.mu.Lock()
	defer vm.mu.Unlock()
	young := false
	vm.overlap(start, end, func(_ *memslot.Slot, gpa mem.IPA, size uint64) {
		y, err := vm.s2.TestYoung(gpa, size)
		vm.setErr(err)
		young = young || y || vm.nestedTestYoung(gpa, size)
	})
	return young
}

// Release unmaps every slot's GPA range (every slot is backed by the VMM's
// address space, which is going away and whose frames the host frees with
// no further call). Unmap takes no memory, so this cannot fail for lack of
// it. Faults that resolved a frame before Release see vm.released under the
// MMU lock and install nothing.
func (n notifier) Release() {
	vm := n.vm
	vm.released.Store(true)
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.destroyed.Load() {
		return
	}
	for _, s := range vm.slots.Slots() {
		vm.nestedUnmapped(s.GPA, s.Size)
		if err := vm.s2.Unmap(s.GPA, s.Size); err != nil {
			vm.setErr(fmt.Errorf("kvm: release unmap of slot %d (GPA %#x+%#x): %w", s.ID, uint64(s.GPA), s.Size, err))
		}
	}
}

func (vm *VM) age(start, end hostmm.HVA, flush bool) bool {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	young := false
	vm.overlap(start, end, func(_ *memslot.Slot, gpa mem.IPA, size uint64) {
		vm.c.notifAged.Add(1)
		y, err := vm.s2.MkOld(gpa, size)
		vm.setErr(err)
		if y && flush {
			vm.flushRange(gpa, size)
		}
		young = vm.nestedAge(gpa, size, flush) || young || y
	})
	return young
}

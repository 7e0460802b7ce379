package kvm

import (
	"fmt"
	"runtime"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/host/mmio"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// Fault status code classes (ESR_ELx.DFSC/IFSC with the level bits
// cleared): ISS encoding for an exception from a Data/Instruction Abort.
const (
	fscAddrSize    = 0x00 // 0b0000LL
	fscTranslation = 0x04 // 0b0001LL
	fscAccessFlag  = 0x08 // 0b0010LL
	fscPermission  = 0x0c // 0b0011LL
	fscTransLM1    = 0x2b // translation fault, level -1 (FEAT_LPA2)
	fscAddrLM1     = 0x29 // address size fault, level -1
)

// FaultKind classifies a stage-2 abort the way the hypervisor handles it.
type FaultKind uint8

// Fault kinds.
const (
	FaultOther FaultKind = iota
	FaultTranslation
	FaultAccessFlag
	FaultPermission
	FaultAddressSize
)

// String returns the kind's name.
func (k FaultKind) String() string {
	switch k {
	case FaultTranslation:
		return "translation"
	case FaultAccessFlag:
		return "access flag"
	case FaultPermission:
		return "permission"
	case FaultAddressSize:
		return "address size"
	}
	return "other"
}

// ClassifyFSC returns the kind of a data or instruction fault status code.
func ClassifyFSC(fsc uint8) FaultKind {
	switch {
	case fsc == fscTransLM1:
		return FaultTranslation
	case fsc == fscAddrLM1:
		return FaultAddressSize
	case fsc > 0x0f:
		return FaultOther
	}
	switch fsc & 0x3c {
	case fscTranslation:
		return FaultTranslation
	case fscAccessFlag:
		return FaultAccessFlag
	case fscPermission:
		return FaultPermission
	case fscAddrSize:
		return FaultAddressSize
	}
	return FaultOther
}

// hpfarValid reports whether HPFAR_EL2 holds the faulting IPA of a
// stage-2 abort with syndrome esr, as far as a hypervisor can tell from the
// syndrome (the pseudocode's IPAValid, KVM's __hpfar_valid): a Translation,
// Access flag or Address size fault, or a Permission fault on a stage-1
// table walk (S1PTW). For a Permission fault of the access itself
// HPFAR_EL2 is UNKNOWN.
func hpfarValid(esr sysreg.ESR) bool {
	switch ClassifyFSC(esr.FSC()) {
	case FaultTranslation, FaultAccessFlag, FaultAddressSize:
		return true
	case FaultPermission:
		return esr.S1PTW()
	}
	return false
}

// faultIPA returns the IPA of a stage-2 abort: HPFAR_EL2.FIPA and FAR's
// page offset where HPFAR_EL2 is valid; otherwise, as KVM's
// __translate_far_to_hpfar (seed 003's v15 fix), the stage-1 output of FAR
// by AT S1E1R executed at EL2 (stage 1 already allowed the access, so the
// EL1 regime's read translation gives its IPA whatever the access was).
// PAR_EL1 is the guest's and is restored. ok is false when the AT fails:
// the guest changed its stage 1 since the fault (or the host took a stage-1
// table page away), and the guest instruction is retried.
func (v *VCPU) faultIPA(e cpu.Exception) (ipa mem.IPA, ok bool, err error) {
	if hpfarValid(e.ESR) {
		return mem.IPA(mmio.FaultIPA(uint64(e.HPFAR), uint64(e.FAR))), true, nil
	}
	pe, c := v.pe, v.cpu
	saved := pe.PAR
	c.mu.Lock() // a walk of this CPU: a TLBI waits for it (see pcpu)
	if v.beforeAT != nil {
		v.beforeAT()
	}
	ex := pe.AT(at.S1E1R, 0, e.FAR)
	par := pe.PAR
	c.mu.Unlock()
	pe.PAR = saved
	if ex.Taken() {
		return 0, false, fmt.Errorf("kvm: AT S1E1R of FAR %#x for a stage-2 permission fault took %v", uint64(e.FAR), ex)
	}
	if par.F() {
		v.vm.c.atRetries.Add(1)
		return 0, false, nil
	}
	return mem.IPA(par.PA()) | mem.IPA(uint64(e.FAR)&0xfff), true, nil
}

// stage2Abort is kvm_handle_guest_abort: the PE is at EL2 with ESR_EL2,
// FAR_EL2 and HPFAR_EL2 describing a stage-2 fault of the guest.
func (v *VCPU) stage2Abort(e cpu.Exception) (Exit, bool, error) {
	vm := v.vm
	esr := e.ESR
	fetch := e.Kind == cpu.InstructionAbort
	s1ptw := esr.S1PTW()
	kind := ClassifyFSC(esr.FSC())
	if kind == FaultOther {
		// A synchronous External abort on the stage-2 walk or a stage-2
		// Alignment fault: HPFAR_EL2 is UNKNOWN and (as KVM's
		// __fault_safe_to_translate) FAR is not translated.
		return Exit{}, false, fmt.Errorf("%w: stage-2 abort with FSC %#x at VA %#x", ErrUnhandledTrap, esr.FSC(), uint64(e.FAR))
	}
	ipa, ok, err := v.faultIPA(e)
	switch {
	case err != nil:
		return Exit{}, false, err
	case !ok:
		return Exit{}, true, nil // re-execute: the fault happens again, or not
	}
	// A fault on the stage-1 walk counts as a write (the walk may update
	// the Access flag or dirty state of a stage-1 descriptor), as KVM's
	// kvm_is_write_fault does; a cache maintenance abort (CM) as a read.
	write := !fetch && (s1ptw || (esr.WnR() && !esr.CM()))
	if kind == FaultTranslation {
		if ex, beyond := vm.beyondIPASpace(fetch, e.FAR, ipa); beyond {
			return ex, false, nil
		}
	}

	gen := vm.slotGen.Load()
	slot := vm.slots.Lookup(ipa)
	ro := slot != nil && slot.Flags&memslot.ReadOnly != 0
	if slot == nil || (write && ro && !s1ptw) {
		switch {
		case fetch:
			// Executing from MMIO or a hole: KVM injects a prefetch abort.
			return abortExit(true, e.FAR), false, nil
		case s1ptw:
			// Stage-1 tables outside memory cannot be walked.
			return abortExit(false, e.FAR), false, nil
		}
		return v.mmioAccess(e, ipa)
	}
	if s1ptw && ro {
		write = false
	}
	switch kind {
	case FaultAccessFlag:
		// handle_access_fault: set AF in place; no TLBI is needed to make
		// an entry more permissive. If the page went away meanwhile the
		// retry takes a translation fault.
		vm.mu.Lock()
		_, err := vm.s2.MkYoung(ipa &^ mem.IPA(vm.host.pageSize-1))
		vm.mu.Unlock()
		vm.c.afFaults.Add(1)
		if err != nil {
			return Exit{}, false, fmt.Errorf("kvm: access flag fault at IPA %#x: %w", ipa, err)
		}
		return Exit{}, true, nil
	case FaultTranslation, FaultPermission:
		return v.userMemAbort(slot, gen, ipa, write, canonical{v})
	}
	// FaultAddressSize.
	return abortExit(fetch, e.FAR), false, nil
}

// installer puts the result of a stage-2 fault into stage-2 tables: the
// VM's own (canonical) or a shadow of a nested guest's.
type installer interface {
	// topup prepares, outside the MMU lock, the table pages install may
	// need for a mapping of [base, base+size) to pa.
	topup(base mem.IPA, pa mem.PA, size uint64, flags s2pt.MapFlags) error
	// install maps it, under the MMU lock, after the sequence-count check.
	install(base mem.IPA, pa mem.PA, size uint64, prot s2pt.Prot, flags s2pt.MapFlags) error
}

// canonical installs into the VM's own stage 2 with the vCPU's cache.
type canonical struct{ v *VCPU }

func (c canonical) topup(base mem.IPA, pa mem.PA, size uint64, flags s2pt.MapFlags) error {
	s2 := c.v.vm.s2
	return c.v.cache.Topup(s2.MapPagesNeeded(base, pa, size, flags) + s2.EdgePagesNeeded(base, size))
}

func (c canonical) install(base mem.IPA, pa mem.PA, size uint64, prot s2pt.Prot, flags s2pt.MapFlags) error {
	relaxed, level, err := c.v.vm.install(c.v.cache, base, pa, size, prot, flags)
	if relaxed && err == nil {
		// A relaxation needs no broadcast TLBI, but this CPU may hold
		// the entry with the old permissions and fault on it again
		// (kvm_pgtable_stage2_relax_perms' local invalidation).
		c.v.vm.host.localIPA(c.v.cpuIdx, c.v.vm.VMID(), base, level)
	}
	return err
}

// beyondIPASpace handles an IPA outside the VM's IPA space, which the
// hardware reports as a stage-2 Translation fault at level 0
// (AArch64.IPAIsOutOfRange against VTCR_EL2.T0SZ), as KVM's
// kvm_handle_guest_abort does: never an MMIO exit; at or above the largest
// IPA size the host supports (KVM's IPA limit, from PARange) the guest gets
// an Address size fault at level 0 (kvm_inject_size_fault: an abort with
// FSC 0b000000), and between the VM's IPA size and that limit a synchronous
// External abort (kvm_inject_dabt / kvm_inject_pabt). FAR_EL1 is the
// faulting VA (KVM passes the IPA there).
func (vm *VM) beyondIPASpace(fetch bool, far mem.VA, ipa mem.IPA) (Exit, bool) {
	if uint64(ipa)>>vm.layout.IPABits == 0 {
		return Exit{}, false
	}
	ex := abortExit(fetch, far)
	if uint64(ipa)>>vm.host.ipaLimit != 0 {
		e := &ex.Exception
		e.ESR = e.ESR &^ 0x3f // FSC 0b000000: Address size fault, level 0
	}
	return ex, true
}

// userMemAbort is user_mem_abort: resolve the page through the host
// (FaultIn, outside the MMU lock), top up the installer's table cache
// (outside the lock), then under the MMU lock check that no invalidation
// raced with the resolution (sequence count) and that the slots did not
// change, and install the page or block.
func (v *VCPU) userMemAbort(slot *memslot.Slot, gen uint64, ipa mem.IPA, write bool, to installer) (Exit, bool, error) {
	vm := v.vm
	pg := vm.host.pageSize
	page := ipa &^ mem.IPA(pg-1)
	hva := slot.HVAOf(page)
	logging := slot.Flags&memslot.LogDirty != 0 && slot.Dirty != nil
	ro := slot.Flags&memslot.ReadOnly != 0
	for {
		seq := vm.inv.Seq()
		m, err := vm.as.FaultIn(hva, write)
		if err != nil {
			// hostmm.ErrFault: KVM returns -EFAULT to the VMM.
			return Exit{}, false, fmt.Errorf("kvm: faulting in HVA %#x for IPA %#x: %w", uint64(hva), ipa, err)
		}
		size, base, pa := pg, page, m.PA&^mem.PA(pg-1)
		var flags s2pt.MapFlags
		if m.Huge && !logging && vm.blockOK(slot, ipa) {
			size = hostmm.HugeSize
			base, pa, flags = ipa&^mem.IPA(size-1), m.PA&^mem.PA(size-1), s2pt.MapBlocks
		}
		if err := to.topup(base, pa, size, flags); err != nil {
			return Exit{}, false, fmt.Errorf("kvm: stage-2 table cache: %w", err)
		}
		vm.mu.Lock()
		if vm.slotGen.Load() != gen {
			vm.mu.Unlock()
			vm.c.slotRetries.Add(1)
			return Exit{}, true, nil // the slot changed: take the fault again
		}
		if vm.released.Load() {
			// The VMM's address space went away after FaultIn: its
			// frames are being freed without a notifier call.
			vm.mu.Unlock()
			return Exit{}, false, fmt.Errorf("kvm: faulting in HVA %#x for IPA %#x: the VMM's address space was released: %w", uint64(hva), ipa, hostmm.ErrFault)
		}
		if vm.inv.Retry(seq, hva) {
			// An invalidation of hva is in progress or ended since seq:
			// m may be stale; never install it.
			vm.mu.Unlock()
			vm.c.retries.Add(1)
			// Take the fault again once the invalidation has ended (its
			// End moves the sequence count): resolving the page while it
			// is in progress only fails this check again, and each try
			// takes the MMU lock its End needs.
			for vm.inv.InProgress() > 0 && vm.inv.Seq() == seq {
				runtime.Gosched()
			}
			continue
		}
		prot := s2pt.ProtR | s2pt.ProtX
		if !ro && (write || (m.Writable && !logging)) {
			prot |= s2pt.ProtW
			if logging {
				// mark_page_dirty before the page becomes writable, under
				// the lock GetDirtyLog takes.
				slot.Dirty.Set(uint64(page-slot.GPA) / pg)
				vm.c.dirtyMarked.Add(1)
			}
		}
		err = to.install(base, pa, size, prot, flags)
		vm.mu.Unlock()
		if err != nil {
			return Exit{}, false, fmt.Errorf("kvm: mapping IPA %#x: %w", base, err)
		}
		return Exit{}, true, nil
	}
}

// blockOK reports whether the 2 MiB block around ipa may be mapped as one
// stage-2 block (fault_supports_stage2_huge_mapping): the layout has 2 MiB
// blocks, the slot's GPA and HVA are congruent modulo 2 MiB, and the whole
// block lies in the slot.
func (vm *VM) blockOK(slot *memslot.Slot, ipa mem.IPA) bool {
	const bs = hostmm.HugeSize
	if !vm.huge2M || uint64(slot.GPA)%bs != uint64(slot.HVA)%bs {
		return false
	}
	b := ipa &^ (bs - 1)
	return b >= slot.GPA && b+bs <= slot.End()
}

// leafSize is the size of a leaf at level for the VM's granule.
func (vm *VM) leafSize(level int) uint64 {
	g := log2(vm.host.pageSize)
	return 1 << (g + uint(3-level)*(g-3))
}

// install maps [base, base+size) to pa with prot under the MMU lock. When
// the tables already map exactly that (same output, same leaf size) only
// the permissions are relaxed: no break-before-make and no TLBI is needed
// to add permissions. Otherwise Map replaces what is there (break-before-make
// with TLBI for a valid entry whose output or size changes).
// It reports a relaxation and the leaf's level.
func (vm *VM) install(cache *s2pt.Cache, base mem.IPA, pa mem.PA, size uint64, prot s2pt.Prot, flags s2pt.MapFlags) (relaxed bool, level int, err error) {
	d, level, err := vm.s2.Lookup(base)
	if err == nil && d&1 == 1 {
		k := desc.KindAt(d, level)
		if (k == desc.Block || k == desc.Page) && vm.leafSize(level) == size &&
			vm.layout.Format.LeafOA(d, level) == uint64(pa) {
			vm.c.relaxes.Add(1)
			return true, level, vm.s2.Relax(cache, base, size, prot&(s2pt.ProtR|s2pt.ProtW|s2pt.ProtX))
		}
	}
	if err := vm.s2.Map(cache, base, pa, size, prot, flags); err != nil {
		return false, 0, err
	}
	vm.c.maps.Add(1)
	if size > vm.host.pageSize {
		vm.c.blockMaps.Add(1)
	}
	return false, 0, nil
}

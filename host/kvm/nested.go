package kvm

import (
	"errors"
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/host/vmid"
	"github.com/nestmmu/nestmmu/mem"
)

// The hypervisor's support for nested virtualization (package host/nested
// builds on it): the VM whose vCPUs run a guest hypervisor keeps shadow
// stage-2 tables derived from its own (canonical) stage 2, so every change
// of the canonical mappings is reported to them, and a shadow fault goes
// through the VM's ordinary fault path with the shadow as the place the
// result is installed.

// NestedHooks is told, with the MMU lock held and before the host can
// reuse a frame, about every change to the VM's canonical stage 2 that
// shadow stage-2 entries derived from it must follow.
type NestedHooks interface {
	// CanonicalUnmapped: the mappings of [gpa, gpa+size) were removed (an
	// MMU-notifier invalidation, a memslot deleted or moved, the address
	// space released).
	CanonicalUnmapped(gpa mem.IPA, size uint64)
	// CanonicalWriteProtected: [gpa, gpa+size) lost write permission
	// (dirty logging, a read-only slot).
	CanonicalWriteProtected(gpa mem.IPA, size uint64)
	// CanonicalChangedPTE: change_pte, between the start and the end of an
	// invalidation of gpa's page: the host now maps it to pa read-only.
	CanonicalChangedPTE(gpa mem.IPA, pa mem.PA)
	// CanonicalAge clears the Access flags of the entries derived from
	// [gpa, gpa+size) (invalidating their TLB entries when flush) and
	// reports whether any was set; CanonicalTestYoung only reports it.
	CanonicalAge(gpa mem.IPA, size uint64, flush bool) bool
	CanonicalTestYoung(gpa mem.IPA, size uint64) bool
}

// SetNestedHooks registers h (nil removes it).
func (vm *VM) SetNestedHooks(h NestedHooks) {
	vm.mu.Lock()
	vm.nested = h
	vm.mu.Unlock()
}

func (vm *VM) nestedUnmapped(gpa mem.IPA, size uint64) {
	if vm.nested != nil {
		vm.nested.CanonicalUnmapped(gpa, size)
	}
}

func (vm *VM) nestedWriteProtected(gpa mem.IPA, size uint64) {
	if vm.nested != nil {
		vm.nested.CanonicalWriteProtected(gpa, size)
	}
}

func (vm *VM) nestedChangedPTE(gpa mem.IPA, pa mem.PA) {
	if vm.nested != nil {
		vm.nested.CanonicalChangedPTE(gpa, pa)
	}
}

func (vm *VM) nestedAge(gpa mem.IPA, size uint64, flush bool) bool {
	return vm.nested != nil && vm.nested.CanonicalAge(gpa, size, flush)
}

func (vm *VM) nestedTestYoung(gpa mem.IPA, size uint64) bool {
	return vm.nested != nil && vm.nested.CanonicalTestYoung(gpa, size)
}

// LockMMU takes the VM's MMU lock (kvm->mmu_lock): shadow stage-2 tables
// change under it, as the canonical ones do.
func (vm *VM) LockMMU() { vm.mu.Lock() }

// UnlockMMU releases the MMU lock.
func (vm *VM) UnlockMMU() { vm.mu.Unlock() }

// Host returns the host the VM runs on.
func (vm *VM) Host() *Host { return vm.host }

// Lookup returns the slot that holds gpa, or nil.
func (vm *VM) Lookup(gpa mem.IPA) *memslot.Slot { return vm.slots.Lookup(gpa) }

// MarkDirty records a write the hypervisor made to guest memory at gpa in
// the slot's dirty bitmap when it logs dirty pages (mark_page_dirty).
func (vm *VM) MarkDirty(gpa mem.IPA) {
	s := vm.slots.Lookup(gpa)
	if s != nil && s.Flags&memslot.LogDirty != 0 && s.Dirty != nil {
		s.Dirty.Set(uint64(gpa-s.GPA) / vm.host.pageSize)
		vm.c.dirtyMarked.Add(1)
	}
}

// Installer receives the result of a fault resolved for another set of
// stage-2 tables (a shadow): Topup runs before the MMU lock is taken,
// Install under it once the page is known to be current. The mapping is
// the canonical one the fault path chose for the guest-physical range
// [base, base+size): host frames from pa, with prot (W only if the host
// page and the slot allow it, and the page then marked dirty when logging).
type Installer interface {
	Topup(base mem.IPA, pa mem.PA, size uint64, flags s2pt.MapFlags) error
	Install(base mem.IPA, pa mem.PA, size uint64, prot s2pt.Prot, flags s2pt.MapFlags) error
}

type exported struct{ in Installer }

func (e exported) topup(base mem.IPA, pa mem.PA, size uint64, flags s2pt.MapFlags) error {
	return e.in.Topup(base, pa, size, flags)
}

func (e exported) install(base mem.IPA, pa mem.PA, size uint64, prot s2pt.Prot, flags s2pt.MapFlags) error {
	return e.in.Install(base, pa, size, prot, flags)
}

// ErrNoMemory is returned by FaultFor when no memslot backs the address,
// or a write reaches a read-only slot: the access is MMIO.
var ErrNoMemory = errors.New("kvm: no memory at the guest-physical address")

// FaultFor runs the VM's stage-2 fault path (user_mem_abort) for gpa and
// hands the mapping to in instead of the canonical tables: a nested shadow
// fault resolved through the guest hypervisor's own memory. write is the
// access's direction as the caller found it (for a stage-1 table walk a
// read, unless it is the walk's hardware update of a descriptor): a write
// to a read-only slot is ErrNoMemory, a read there is mapped read-only.
// retry is true when the mapping was installed or the fault must be taken
// again (a memslot changed meanwhile).
func (v *VCPU) FaultFor(gpa mem.IPA, write bool, in Installer) (retry bool, err error) {
	vm := v.vm
	gen := vm.slotGen.Load()
	slot := vm.slots.Lookup(gpa)
	if slot == nil || (write && slot.Flags&memslot.ReadOnly != 0) {
		return false, fmt.Errorf("%w: GPA %#x", ErrNoMemory, uint64(gpa))
	}
	v.exported = exported{in} // held by the vCPU: no allocation per fault
	_, retry, err = v.userMemAbort(slot, gen, gpa, write, &v.exported)
	v.exported = exported{}
	return retry, err
}

// HandleStage2Abort is the hypervisor's handling of a stage-2 abort of the
// VM's own stage 2 (kvm_handle_guest_abort), for a caller that runs the
// PE itself: the PE is at EL2 with the abort's syndrome. It does not ERET.
func (v *VCPU) HandleStage2Abort(e cpu.Exception) (Exit, bool, error) { return v.stage2Abort(e) }

// MMIOAccess decodes the MMIO access of a data abort at gpa and emulates
// it on the VM's bus or returns the ExitMMIO (the PE is at EL2).
func (v *VCPU) MMIOAccess(e cpu.Exception, gpa mem.IPA) (Exit, bool, error) {
	return v.mmioAccess(e, gpa)
}

// MMIOAccessNested is MMIOAccess for an abort of a nested guest, which the
// PE runs on a shadow stage 2 (gpa is the VM's own IPA its stage 2 gave).
// When the instruction must be read (no syndrome) and the shadow does not
// map its page, stage 1's output at PC is an IPA of the nested guest: l1
// translates it to the VM's own (the guest hypervisor's stage 2) before the
// word is read from the VM's memory. refetch reports that it could not be
// read either way: the caller fetches it at the nested guest's PC
// (resolving the faults that takes) and executes it again.
func (v *VCPU) MMIOAccessNested(e cpu.Exception, gpa mem.IPA, l1 func(mem.IPA) (mem.IPA, bool)) (exit Exit, retry, refetch bool, err error) {
	v.fetchIPA = l1
	exit, retry, err = v.mmioAccess(e, gpa)
	v.fetchIPA = nil
	refetch, v.refetch = v.refetch, false
	return exit, retry, refetch, err
}

// Exec runs f, one instruction of the guest on the PE, with the physical
// CPU's lock held (so TLB maintenance on that CPU waits for it); with
// broadcast, with every CPU's lock and the PE's TLB maintenance reaching
// them all (HCR_EL2.FB).
func (v *VCPU) Exec(f func() cpu.Exception, broadcast bool) (cpu.Exception, error) {
	if v.cpu == nil {
		return cpu.Exception{}, ErrNotLoaded
	}
	if broadcast {
		h := v.vm.host
		h.lockAll()
		v.pe.Domain = h.domain
		e := f()
		v.pe.Domain = nil
		h.unlockAll()
		return e, nil
	}
	c := v.cpu
	c.mu.Lock()
	e := f()
	c.mu.Unlock()
	return e, nil
}

// EnterGuest is guest entry for the VM's own stage 2: the VM's current
// VMID (allocated again after a rollover) goes into VTTBR_EL2.
func (v *VCPU) EnterGuest() error { return v.updateVMID() }

// LoadVMID gives vm a VMID for guest entry on physical CPU cpu
// (kvm_arm_vmid_update): for stage-2 tables the hypervisor owns besides a
// VM's own, such as shadow stage 2.
func (h *Host) LoadVMID(cpu int, v *vmid.VM) (uint16, error) { return h.vmids.Load(cpu, v) }

// VMIDOf returns the VMID v last got (0 if none).
func (h *Host) VMIDOf(v *vmid.VM) uint16 { return v.VMID(h.vmids) }

// FreeVMID releases v's VMID.
func (h *Host) FreeVMID(v *vmid.VM) error { return h.vmids.Free(v) }

// TLBIIPA is TLBI IPAS2E1IS for each IPA (with the leaf level as TTL
// hint, s2pt.NoLevelHint when unknown) then TLBI VMALLE1IS, for vmid, on
// every CPU.
func (h *Host) TLBIIPA(v uint16, ipas []mem.IPA, level int) { h.tlbiIPA(v, ipas, level) }

// TLBIRanges is a batch of stage-2 range invalidations for vmid on every
// CPU, as the VM's own stage 2 gets them (s2pt.RangeInvalidator): TLBI
// RIPAS2E1IS / RIPAS2LE1IS per range (IPAS2E1IS for one granule; TLBI
// VMALLS12E1IS instead for a range too long), then TLBI VMALLE1IS.
func (h *Host) TLBIRanges(v uint16, rs []s2pt.Range) { h.tlbiRanges(v, rs) }

// LocalTLBIVMID is TLBI VMALLS12E1 (not broadcast) for vmid on physical
// CPU cpu: what KVM does on vcpu_load when another vCPU ran the same
// stage-2 MMU on that CPU last.
func (h *Host) LocalTLBIVMID(cpu int, v uint16) { h.localVMID(cpu, v) }

// TLBIVMID is TLBI VMALLS12E1IS for vmid on every CPU.
func (h *Host) TLBIVMID(v uint16) { h.tlbiVMID(v) }

// TLBI broadcasts op with operand xt, issued at EL2 with ctx (whose VMID
// selects the entries of the EL1 and stage-2 forms), to every CPU's TLB,
// each under its CPU's lock.
func (h *Host) TLBI(op tlb.Op, xt uint64, ctx tlb.Context) error {
	s, err := tlb.ScopeOf(op, xt, ctx)
	if err != nil {
		return fmt.Errorf("kvm: TLBI %v: %w", op, err)
	}
	for i := range h.cpus {
		c := &h.cpus[i]
		c.mu.Lock()
		c.tlb.InvalidateScope(&s)
		c.mu.Unlock()
	}
	return nil
}

// ID returns the ID registers of the host's PEs (MMFR0, MMFR1, MMFR2, ISAR2).
func (h *Host) ID() vmsa.Regs { return h.id }

// Insn is the instruction syndrome of the access (cpu.Insn), for a caller
// that runs it on the PE itself.
func (a *Access) Insn() cpu.Insn { return a.insn() }

// Value is the register value a load of the access puts in Xt from the
// raw item read (sign extension, a W register).
func (a *Access) Value(raw uint64) uint64 { return loadValue(raw, a.Size, a.SignExtend, !a.W) }

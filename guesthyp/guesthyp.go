// Package guesthyp is a model of a KVM-like guest hypervisor (L1): Go code
// that runs at virtual EL2 and acts only through the instructions of the
// EL2 interface (nested.EL2) — MSR/MRS, loads, stores and atomics on its
// own memory, TLBI, ERET — and through the exceptions delivered to it.
//
// It keeps its VMs' stage-2 tables in its own memory with host/s2pt over a
// TableMemory whose reads and writes are its loads, stores and
// compare-and-swaps (its stage 1 is off, so its addresses are its IPAs),
// and its TLB maintenance is TLBI IPAS2E1IS, VMALLE1IS and VMALLS12E1IS
// (RIPAS2E1IS for a batch of ranges) issued with VTTBR_EL2 (the VM's
// VMID) and VTCR_EL2 loaded with its stage 2. It gives each VM memslots in its own memory, maps them on demand
// when the VM faults (blocks where the slot allows and nothing is mapped
// yet), changes mappings with break-before-make and TLBIs, and emulates a
// VM's access outside its memory on its device model (Config.Bus).
// A VM can run a guest hypervisor of its own (EnableNested): the guest
// hypervisor then keeps shadow stage 2s for that VM's guests with
// host/nested's engine on its EL2 interface (nested.go).
package guesthyp

import (
	"errors"
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/mmio"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// Config describes the guest hypervisor.
type Config struct {
	// E2H: it runs in the EL2&0 regime (a VHE hypervisor); it must match
	// the VM's nested.Config.E2H.
	E2H bool
	// IPABits is its VMs' IPA size (zero: 40, at most its PARange).
	IPABits uint
	// Tables and TablesSize are the region of its own memory (L1 IPAs)
	// its stage-2 tables come from.
	Tables     mem.IPA
	TablesSize uint64
	// VBAR is its VBAR_EL2.
	VBAR mem.VA
	// HA and HD set VTCR_EL2.HA and HD for its VMs: the hardware (L0's
	// walk of its stage 2) sets the Access flag and dirty state.
	HA, HD bool
	// Bus is its VMM's device model: a VM's access outside its slots is
	// an MMIO access emulated there (nested.EmulateMMIO); nil: such an
	// access is an error matching nested.ErrNoDevice.
	Bus mmio.Bus
}

// Stats count what the guest hypervisor did.
type Stats struct {
	// Faults are stage-2 faults of its VMs it handled; Maps and BlockMaps
	// the mappings they installed; MMIO the accesses emulated on its bus.
	Faults, Maps, BlockMaps, MMIO uint64
	// TLBIs counts the TLBI instructions it issued.
	TLBIs uint64
	// WriteFaults are write Permission faults on pages it had
	// write-protected, resolved by giving write permission back.
	WriteFaults uint64
}

// Hypervisor is the guest hypervisor.
type Hypervisor struct {
	cpu    nested.EL2
	cfg    Config
	ids    [3]uint64 // ID_AA64MMFR0/1/2_EL1 as it reads them
	tables *tableMemory
	vms    []*VM
	cur    *VM         // the VM entered last
	vttbr  uint64      // what it last wrote to VTTBR_EL2
	vtcr   sysreg.VTCR // and to VTCR_EL2
	stats  Stats
}

// Boot starts the guest hypervisor on cpu (at vEL2, its MMU off): it reads
// the ID registers and sets HCR_EL2 (RW, E2H as configured) and VBAR_EL2.
func Boot(c nested.EL2, cfg Config) (*Hypervisor, error) {
	if cfg.IPABits == 0 {
		cfg.IPABits = 40
	}
	if cfg.TablesSize == 0 || cfg.Tables%4096 != 0 || cfg.TablesSize%4096 != 0 {
		return nil, fmt.Errorf("guesthyp: table region %#x+%#x is empty or not page aligned", uint64(cfg.Tables), cfg.TablesSize)
	}
	h := &Hypervisor{cpu: c, cfg: cfg, vttbr: ^uint64(0)}
	for i, r := range []cpu.SysReg{cpu.ID_AA64MMFR0_EL1, cpu.ID_AA64MMFR1_EL1, cpu.ID_AA64MMFR2_EL1} {
		v, err := c.MRS(r)
		if err != nil {
			return nil, err
		}
		h.ids[i] = v
	}
	h.tables = &tableMemory{cpu: c, next: cfg.Tables, end: cfg.Tables + mem.IPA(cfg.TablesSize), free: map[uint64][]mem.IPA{}}
	if err := c.MSR(cpu.HCR_EL2, uint64(h.hcr(false))); err != nil {
		return nil, err
	}
	if err := c.MSR(h.own(cpu.VBAR_EL2), uint64(cfg.VBAR)); err != nil {
		return nil, err
	}
	return h, nil
}

// own names one of its own EL2 registers as a VHE hypervisor does (the
// *_EL1 encoding, which reaches the EL2 register with E2H=1) or, with
// E2H=0, by its EL2 name.
func (h *Hypervisor) own(r cpu.SysReg) cpu.SysReg {
	if !h.cfg.E2H {
		return r
	}
	switch r {
	case cpu.VBAR_EL2:
		return cpu.VBAR_EL1
	case cpu.SCTLR_EL2:
		return cpu.SCTLR_EL1
	}
	return r
}

// guestReg names its guest's EL1 register r: the *_EL12 alias with E2H=1,
// the *_EL1 name with E2H=0.
func (h *Hypervisor) guestReg(r cpu.SysReg) cpu.SysReg {
	if a, ok := r.EL12(); ok && h.cfg.E2H {
		return a
	}
	return r
}

func (h *Hypervisor) hcr(vm bool) sysreg.HCR {
	v := sysreg.HCR_RW
	if h.cfg.E2H {
		v |= sysreg.HCR_E2H
	}
	if vm {
		v |= sysreg.HCR_VM
	}
	return v
}

// Stats returns its counters.
func (h *Hypervisor) Stats() Stats { return h.stats }

// Current returns the VM entered last.
func (h *Hypervisor) Current() *VM { return h.cur }

// Slot is a VM's memory: L2 IPAs [L2, L2+Size) backed by the guest
// hypervisor's own memory from L1.
type Slot struct {
	L2   nested.NestedIPA
	L1   mem.IPA
	Size uint64
}

// VM is one of the guest hypervisor's VMs.
type VM struct {
	h     *Hypervisor
	VMID  uint16
	s2    *s2pt.VM
	cache *s2pt.Cache
	slots []Slot
	// el1 is the VM's EL1 context while it does not run; pc, spsr its PC
	// and PSTATE (ELR_EL2, SPSR_EL2 when it left).
	el1  map[cpu.SysReg]uint64
	pc   mem.VA
	spsr uint64
	// traps are HCR_EL2 trap controls set while the VM runs.
	traps sysreg.HCR
	// nested runs the VM's vCPU as a guest hypervisor (nested.go).
	nested *nested.EL2VCPU
}

// NewVM creates a VM with VMID vmid: empty stage-2 tables in the guest
// hypervisor's memory (VTCR_EL2 from its IPA size, a 4K granule, the ID
// registers it read), its stage 1 off, entry at EL1h at PC 0.
func (h *Hypervisor) NewVM(vmid uint16) (*VM, error) {
	vm := &VM{h: h, VMID: vmid, el1: map[cpu.SysReg]uint64{}, spsr: 0b0101}
	s2, err := s2pt.New(s2pt.Config{IPABits: h.cfg.IPABits, Granule: sysreg.Granule4K,
		MMFR0: sysreg.MMFR0(h.ids[0]), MMFR1: sysreg.MMFR1(h.ids[1]), HA: h.cfg.HA, HD: h.cfg.HD}, h.tables,
		invalidator{h: h, s2: func() *s2pt.VM { return vm.s2 }, vmid: vmid})
	if err != nil {
		return nil, fmt.Errorf("guesthyp: VM %d: %w", vmid, err)
	}
	vm.s2, vm.cache = s2, s2.NewCache()
	h.vms = append(h.vms, vm)
	return vm, nil
}

// Stage2 returns the VM's stage-2 tables (in the guest hypervisor's memory).
func (vm *VM) Stage2() *s2pt.VM { return vm.s2 }

// VTTBR is the VM's VTTBR_EL2: its root and VMID.
func (vm *VM) VTTBR() uint64 { return uint64(vm.s2.VTTBR().WithVMID(vm.VMID)) }

// AddSlot gives the VM memory: L2 IPAs [l2, l2+size) backed by the guest
// hypervisor's [l1, l1+size). Nothing is mapped until the VM faults.
func (vm *VM) AddSlot(l2 nested.NestedIPA, l1 mem.IPA, size uint64) error {
	for _, s := range vm.slots {
		if l2 < s.L2+nested.NestedIPA(s.Size) && s.L2 < l2+nested.NestedIPA(size) {
			return fmt.Errorf("guesthyp: slot %#x+%#x overlaps %#x+%#x", uint64(l2), size, uint64(s.L2), s.Size)
		}
	}
	vm.slots = append(vm.slots, Slot{L2: l2, L1: l1, Size: size})
	return nil
}

// Slots returns the VM's memory.
func (vm *VM) Slots() []Slot { return append([]Slot(nil), vm.slots...) }

func (vm *VM) slotOf(ipa nested.NestedIPA) *Slot {
	for i := range vm.slots {
		s := &vm.slots[i]
		if ipa >= s.L2 && uint64(ipa-s.L2) < s.Size {
			return s
		}
	}
	return nil
}

// Run enters the VM (the vCPU at vEL2): its VTTBR_EL2 and VTCR_EL2,
// HCR_EL2 with VM set, its EL1 registers, ELR_EL2 and SPSR_EL2, then ERET.
func (h *Hypervisor) Run(vm *VM) error {
	if vm.nested != nil {
		h.cur = vm
		if vm.nested.Suspended() {
			return vm.nested.Resume()
		}
		return vm.nested.Enter(vm.pc)
	}
	c := h.cpu
	if err := h.setStage2(vm.VTTBR(), vm.s2.VTCR()); err != nil {
		return err
	}
	steps := []struct {
		r cpu.SysReg
		v uint64
	}{
		{cpu.HCR_EL2, uint64(h.hcr(true) | vm.traps)},
		{cpu.ELR_EL2, uint64(vm.pc)},
		{cpu.SPSR_EL2, vm.spsr},
	}
	for _, r := range []cpu.SysReg{cpu.SCTLR_EL1, cpu.TCR_EL1, cpu.TTBR0_EL1, cpu.TTBR1_EL1, cpu.MAIR_EL1, cpu.VBAR_EL1} {
		steps = append(steps, struct {
			r cpu.SysReg
			v uint64
		}{h.guestReg(r), vm.el1[r]})
	}
	for _, s := range steps {
		if err := c.MSR(s.r, s.v); err != nil {
			return err
		}
	}
	h.cur = vm
	return c.ERET()
}

// SetTraps sets HCR_EL2 trap controls (TVM, TRVM, TID3, TTLB, TTLBIS,
// TTLBOS, AT, NV, NV1, NV2) for the VM's next entry: its instructions that
// they trap come to the guest hypervisor's Exception.
func (vm *VM) SetTraps(h sysreg.HCR) { vm.traps = h }

// SetGuestReg sets the VM's EL1 register r (SCTLR_EL1, TCR_EL1, TTBR0_EL1,
// TTBR1_EL1, MAIR_EL1, VBAR_EL1) for its next entry.
func (vm *VM) SetGuestReg(r cpu.SysReg, v uint64) { vm.el1[r] = v }

// Interrupted is the guest hypervisor's entry after an interrupt took it
// out of the VM it ran: it saves the VM's PC, PSTATE and EL1 registers
// (for a VM that runs a guest hypervisor, the state of whichever of its
// worlds ran: nested.EL2VCPU.Suspend), which Run restores.
func (h *Hypervisor) Interrupted() error {
	vm := h.cur
	if vm == nil {
		return errors.New("guesthyp: no VM was running")
	}
	if vm.nested != nil {
		// A guest hypervisor or its guest: the engine saves whichever ran.
		return vm.nested.Suspend()
	}
	c := h.cpu
	var err error
	read := func(r cpu.SysReg) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = c.MRS(r)
		return v
	}
	vm.pc = mem.VA(read(cpu.ELR_EL2))
	vm.spsr = read(cpu.SPSR_EL2)
	for _, r := range []cpu.SysReg{cpu.SCTLR_EL1, cpu.TCR_EL1, cpu.TTBR0_EL1, cpu.TTBR1_EL1, cpu.MAIR_EL1, cpu.VBAR_EL1} {
		vm.el1[r] = read(h.guestReg(r))
	}
	return err
}

// setStage2 loads a stage 2 into VTTBR_EL2 and VTCR_EL2, writing what
// differs from what it last wrote. Its TLB maintenance loads the stage 2
// it invalidates, as KVM's __load_stage2 does: a range TLBI's BaseADDR is
// in 64KB units when the VTCR_EL2.DS in effect is 1 (TLBI RIPAS2E1), and
// a VM's and a shadow's DS may differ.
func (h *Hypervisor) setStage2(vttbr uint64, vtcr sysreg.VTCR) error {
	if h.vtcr != vtcr {
		if err := h.cpu.MSR(cpu.VTCR_EL2, uint64(vtcr)); err != nil {
			return err
		}
		h.vtcr = vtcr
	}
	if h.vttbr != vttbr {
		if err := h.cpu.MSR(cpu.VTTBR_EL2, vttbr); err != nil {
			return err
		}
		h.vttbr = vttbr
	}
	return nil
}

// Exception implements nested.GuestHypervisor: a stage-2 fault of the
// running VM is mapped on demand (the largest block the slot allows, else
// a page) and the VM resumed with ERET; anything else is an error (the
// model has no other exception handling).
func (h *Hypervisor) Exception(c nested.EL2) error {
	if h.cur != nil && h.cur.nested != nil {
		return h.cur.nested.Exception(c)
	}
	esr, err := c.MRS(cpu.ESR_EL2)
	if err != nil {
		return err
	}
	ec := esr >> 26 & 0x3f
	if ec != 0x24 && ec != 0x20 {
		return fmt.Errorf("guesthyp: exception class %#x (ESR_EL2 %#x) not handled", ec, esr)
	}
	far, err := c.MRS(cpu.FAR_EL2)
	if err != nil {
		return err
	}
	hpfar, err := c.MRS(cpu.HPFAR_EL2)
	if err != nil {
		return err
	}
	fsc := esr & 0x3f
	if fsc&0x3c == 0x0c && esr&(1<<6) != 0 { // a Permission fault on a write
		return h.writeFault(c, esr, far, hpfar)
	}
	if fsc&0x3c != 0x04 { // translation faults are the only others it expects
		return fmt.Errorf("guesthyp: stage-2 fault FSC %#x (ESR_EL2 %#x, FAR_EL2 %#x) not handled", fsc, esr, far)
	}
	vm := h.cur
	if vm == nil {
		return fmt.Errorf("guesthyp: stage-2 fault (ESR_EL2 %#x) while none of its VMs was entered", esr)
	}
	ipa := nested.NestedIPA(sysreg.HPFAR(hpfar).IPA()) | nested.NestedIPA(far&0xfff)
	h.stats.Faults++
	s := vm.slotOf(ipa)
	if s == nil {
		return h.mmio(c, esr, far, ipa)
	}
	if err := vm.mapFault(s, ipa); err != nil {
		return err
	}
	return c.ERET()
}

// mmio emulates the running VM's access outside its memory on the bus and
// returns past it.
func (h *Hypervisor) mmio(c nested.EL2, esr, far uint64, ipa nested.NestedIPA) error {
	spsr, err := c.MRS(cpu.SPSR_EL2)
	if err != nil {
		return err
	}
	sctlr, err := c.MRS(h.guestReg(cpu.SCTLR_EL1))
	if err != nil {
		return err
	}
	be := sctlr>>25&1 != 0 // SCTLR_EL1.EE, or E0E at EL0
	if spsr>>2&3 == 0 {
		be = sctlr>>24&1 != 0
	}
	if err := nested.EmulateMMIO(c, h.cfg.Bus, sysreg.ESR(esr), far, uint64(ipa), be); err != nil {
		return fmt.Errorf("guesthyp: VM %d: %w", h.cur.VMID, err)
	}
	h.stats.MMIO++
	return c.ERET()
}

// writeFault handles a write Permission fault of the running VM on a page
// it write-protected (WriteProtect): write permission is given back to
// that page (Relax: its output is unchanged, so no break-before-make and
// no TLBI), as a hypervisor logging its guest's dirty pages does. The IPA
// is in HPFAR_EL2 for a fault on a stage-1 walk; otherwise HPFAR_EL2 is
// UNKNOWN and, with the VM's stage 1 off, it is FAR_EL2 (with stage 1 on
// it would take an AT S1E1W, which this model does not issue).
func (h *Hypervisor) writeFault(c nested.EL2, esr, far, hpfar uint64) error {
	vm := h.cur
	if vm == nil {
		return fmt.Errorf("guesthyp: write fault (ESR_EL2 %#x) while none of its VMs was entered", esr)
	}
	var ipa nested.NestedIPA
	switch {
	case esr&(1<<7) != 0: // S1PTW
		ipa = nested.NestedIPA(sysreg.HPFAR(hpfar).IPA()) | nested.NestedIPA(far&0xfff)
	case vm.el1[cpu.SCTLR_EL1]&1 == 0:
		ipa = nested.NestedIPA(far)
	default:
		return fmt.Errorf("guesthyp: write fault at VA %#x of VM %d with its stage 1 on (needs AT)", far, vm.VMID)
	}
	if vm.slotOf(ipa) == nil {
		return fmt.Errorf("guesthyp: VM %d write fault at IPA %#x outside its memory", vm.VMID, uint64(ipa))
	}
	h.stats.WriteFaults++
	page := ipa &^ nested.NestedIPA(vm.s2.Layout().TableBytes-1)
	g := vm.s2.Layout().TableBytes
	if err := vm.cache.Topup(vm.s2.EdgePagesNeeded(stage2(page), g)); err != nil {
		return err
	}
	if err := vm.s2.Relax(vm.cache, stage2(page), g, s2pt.ProtR|s2pt.ProtW|s2pt.ProtX); err != nil {
		return err
	}
	return c.ERET()
}

// mapFault maps the largest block around ipa that the slot holds with a
// congruent L1 address and where nothing is mapped yet (a block would
// replace the pages a table there holds, which Map may have put
// elsewhere), else the page.
func (vm *VM) mapFault(s *Slot, ipa nested.NestedIPA) error {
	l := vm.s2.Layout()
	size := l.TableBytes
	for _, b := range l.BlockSizes() {
		base := ipa &^ nested.NestedIPA(b-1)
		if b > size && base >= s.L2 && uint64(base-s.L2)+b <= s.Size && uint64(s.L1)%b == uint64(s.L2)%b {
			if _, level, err := vm.s2.Lookup(stage2(base)); err != nil || uint64(1)<<l.Format.LeafBits(level) < b {
				break // a table below holds mappings
			}
			size = b
		}
	}
	base := ipa &^ nested.NestedIPA(size-1)
	l1 := s.L1 + mem.IPA(base-s.L2)
	if err := vm.mapRange(base, l1, size); err != nil {
		return err
	}
	vm.h.stats.Maps++
	if size > vm.s2.Layout().TableBytes {
		vm.h.stats.BlockMaps++
	}
	return nil
}

// stage2 is where an L2 IPA lives in s2pt's terms (its input space).
func stage2(ipa nested.NestedIPA) mem.IPA { return mem.IPA(ipa) }

// out is where an L1 IPA lives in s2pt's terms (the output of the tables
// the guest hypervisor manages is its own physical, i.e. IPA, space).
func out(ipa mem.IPA) mem.PA { return mem.PA(ipa) }

// Map maps [l2, l2+size) to the guest hypervisor's [l1, l1+size), read,
// write and execute, with blocks where they fit, replacing what is there
// (break-before-make with TLBIs).
func (vm *VM) Map(l2 nested.NestedIPA, l1 mem.IPA, size uint64) error {
	if err := vm.mapRange(l2, l1, size); err != nil {
		return err
	}
	return vm.changed(l2, size, false)
}

func (vm *VM) mapRange(l2 nested.NestedIPA, l1 mem.IPA, size uint64) error {
	if err := vm.cache.Topup(vm.s2.MapPagesNeeded(stage2(l2), out(l1), size, s2pt.MapBlocks) + vm.s2.EdgePagesNeeded(stage2(l2), size)); err != nil {
		return err
	}
	return vm.s2.Map(vm.cache, stage2(l2), out(l1), size, s2pt.ProtR|s2pt.ProtW|s2pt.ProtX, s2pt.MapBlocks)
}

// Unmap removes [l2, l2+size) from the VM's stage 2, with the TLBIs.
func (vm *VM) Unmap(l2 nested.NestedIPA, size uint64) error {
	if err := vm.s2.Unmap(stage2(l2), size); err != nil {
		return err
	}
	return vm.changed(l2, size, false)
}

// WriteProtect makes [l2, l2+size) read-only, with the TLBIs.
func (vm *VM) WriteProtect(l2 nested.NestedIPA, size uint64) error {
	if err := vm.s2.WriteProtect(stage2(l2), size); err != nil {
		return err
	}
	return vm.changed(l2, size, true)
}

// invalidator is the TLB maintenance of a stage 2 (a VM's, or a shadow's)
// as the guest hypervisor issues it: VTTBR_EL2 set to the stage 2's (its
// VMID), then TLBI IPAS2E1IS with the TTL hint, or RIPAS2E1IS for a batch
// of ranges (s2pt.RangeInvalidator), then VMALLE1IS; or VMALLS12E1IS.
type invalidator struct {
	h    *Hypervisor
	s2   func() *s2pt.VM // the tables (made after their invalidator)
	vmid uint16
}

// vttbr loads the stage 2 (VTTBR_EL2 with its VMID, VTCR_EL2).
func (i invalidator) vttbr() error {
	s2 := i.s2()
	return i.h.setStage2(uint64(s2.VTTBR().WithVMID(i.vmid)), s2.VTCR())
}

func (i invalidator) granuleBits() uint {
	b := i.s2().Layout().TableBytes
	n := uint(0)
	for b > 1 {
		b >>= 1
		n++
	}
	return n
}

// lpa2 reports whether the guest hypervisor's PE has FEAT_LPA2 (which
// changes the TTL encodings); ds whether the stage 2 uses VTCR_EL2.DS (the
// range operations' base address is then in 64KB units).
func (i invalidator) lpa2() bool {
	m := sysreg.MMFR0(i.h.ids[0])
	return m.TGran4() == 1 || m.TGran16() == 2
}

func (i invalidator) ds() bool { return i.s2().VTCR().DS() }

func (i invalidator) InvalidateIPA(ipa mem.IPA, level int) {
	h := i.h
	if i.vttbr() != nil {
		return
	}
	h.stats.TLBIs += 2
	_ = h.cpu.TLBI(tlb.OpIPAS2E1.IS(), tlb.IPAOperandOf(ipa, tlb.TTL(i.granuleBits(), level, i.lpa2())))
	_ = h.cpu.TLBI(tlb.OpVMALLE1.IS(), 0)
}

func (i invalidator) InvalidateRanges(rs []s2pt.Range) {
	h := i.h
	if i.vttbr() != nil {
		return
	}
	var buf [16]tlb.Invalidation
	gb := i.granuleBits()
	for _, r := range rs {
		ops, ok := tlb.AppendIPARange(buf[:0], r.Start, uint64(r.End-r.Start), gb, r.Level, r.LeafOnly, i.ds(), i.lpa2(), tlb.Op.IS)
		if !ok {
			h.stats.TLBIs++
			_ = h.cpu.TLBI(tlb.OpVMALLS12E1.IS(), 0)
			return
		}
		for _, o := range ops {
			h.stats.TLBIs++
			_ = h.cpu.TLBI(o.Op, o.Xt)
		}
	}
	h.stats.TLBIs++
	_ = h.cpu.TLBI(tlb.OpVMALLE1.IS(), 0)
}

func (i invalidator) InvalidateVMID() {
	h := i.h
	if i.vttbr() != nil {
		return
	}
	h.stats.TLBIs++
	_ = h.cpu.TLBI(tlb.OpVMALLS12E1.IS(), 0)
}

// tableMemory is s2pt's TableMemory over the guest hypervisor's own memory
// through its loads, stores and compare-and-swaps: a table's "PA" is an
// L1 IPA, which its stage 1 (off) gives as the VA.
type tableMemory struct {
	cpu       nested.EL2
	next, end mem.IPA
	free      map[uint64][]mem.IPA
}

func va(pa mem.PA) mem.VA { return mem.VA(pa) }

// Read64 implements mem.Memory.
func (t *tableMemory) Read64(pa mem.PA) (uint64, bool) {
	v, err := t.cpu.Load(va(pa), 8)
	return v, err == nil
}

// CompareAndSwap64 implements mem.Memory.
func (t *tableMemory) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	ok, err := t.cpu.CompareAndSwap64(va(pa), old, new)
	return ok, err == nil
}

// Write64 implements s2pt.TableMemory.
func (t *tableMemory) Write64(pa mem.PA, v uint64) error { return t.cpu.Store(va(pa), 8, v) }

// AllocTable implements s2pt.TableMemory: a bump allocator over the table
// region with per-size free lists; a reused block is zeroed with stores.
func (t *tableMemory) AllocTable(size uint64) (mem.PA, error) {
	if l := t.free[size]; len(l) > 0 {
		p := l[len(l)-1]
		t.free[size] = l[:len(l)-1]
		for off := uint64(0); off < size; off += 8 {
			if err := t.cpu.Store(mem.VA(p)+mem.VA(off), 8, 0); err != nil {
				return 0, err
			}
		}
		return out(p), nil
	}
	p := (t.next + mem.IPA(size) - 1) &^ mem.IPA(size-1)
	if p+mem.IPA(size) > t.end || p < t.next {
		return 0, fmt.Errorf("guesthyp: table memory exhausted allocating %#x bytes", size)
	}
	t.next = p + mem.IPA(size)
	return out(p), nil
}

// FreeTable implements s2pt.TableMemory.
func (t *tableMemory) FreeTable(pa mem.PA, size uint64) error {
	t.free[size] = append(t.free[size], mem.IPA(pa))
	return nil
}

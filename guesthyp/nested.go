package guesthyp

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// A VM of the guest hypervisor can run a guest hypervisor of its own (the
// model's L1 running L2, which runs L3): EnableNested gives its vCPU a
// virtual EL2 through host/nested's engine for that (nested.EL2VCPU),
// whose platform is the VM: its stage 2 in the guest hypervisor's memory,
// mapped on demand from its slots, and stage-2 tables for the shadows from
// the same table memory.

// EnableNested makes the VM's vCPU run a guest hypervisor (a VHE one) with
// cfg (its Mode, its VNCR page with NV2, the shadows' VMIDs; the device
// model for its MMIO, by default Config.Bus): Run then
// enters it at its virtual EL2 and Exception hands it every exception.
// Changes of the VM's stage 2 (Map, Unmap, WriteProtect) reach the shadow
// entries derived from the range (the engine's reverse map).
func (vm *VM) EnableNested(cfg nested.EL2Config) (*nested.EL2VCPU, error) {
	if vm.nested != nil {
		return nil, fmt.Errorf("guesthyp: VM %d already runs a guest hypervisor", vm.VMID)
	}
	cfg.OwnE2H = vm.h.cfg.E2H
	if cfg.Bus == nil {
		cfg.Bus = vm.h.cfg.Bus
	}
	e, err := nested.NewEL2VCPU(vm.h.cpu, platform{vm}, cfg)
	if err != nil {
		return nil, err
	}
	vm.nested = e
	return e, nil
}

// Nested returns the VM's guest-hypervisor engine (nil if none).
func (vm *VM) Nested() *nested.EL2VCPU { return vm.nested }

// changed tells the guest-hypervisor engine that the VM's stage 2 lost or
// changed the mappings of [l2, l2+size) (its IPAs are the engine's
// canonical IPAs), or only write permission there (protect).
func (vm *VM) changed(l2 nested.NestedIPA, size uint64, protect bool) error {
	switch {
	case vm.nested == nil:
		return nil
	case protect:
		return vm.nested.CanonicalWriteProtected(mem.IPA(l2), size)
	}
	return vm.nested.CanonicalUnmapped(mem.IPA(l2), size)
}

// platform is the VM as nested.Platform.
type platform struct{ vm *VM }

// leaf returns the VM's stage-2 leaf for ipa, if mapped.
func (p platform) leaf(ipa mem.IPA) (nested.Mapping, bool) {
	s2 := p.vm.s2
	d, level, err := s2.Lookup(ipa)
	if err != nil || d&1 == 0 || desc.KindAt(d, level) == desc.Table {
		return nested.Mapping{}, false
	}
	f := s2.Layout().Format
	size := uint64(1) << f.LeafBits(level)
	m := nested.Mapping{Base: ipa &^ mem.IPA(size-1), Out: mem.PA(f.LeafOA(d, level)), Size: size}
	sd := desc.S2(d)
	if sd.S2AP()&1 != 0 {
		m.Prot |= s2pt.ProtR
	}
	if sd.S2AP()&2 != 0 {
		m.Prot |= s2pt.ProtW
	}
	if sd.XN() == 0 {
		m.Prot |= s2pt.ProtX
	}
	return m, true
}

// Lookup implements nested.Platform.
func (p platform) Lookup(ipa mem.IPA) (nested.Mapping, bool) { return p.leaf(ipa) }

// Resolve implements nested.Platform: an unmapped IPA of a slot is mapped
// as a fault of the VM would map it; a write to a leaf it write-protected
// gets write permission back (as writeFault).
func (p platform) Resolve(ipa mem.IPA, write bool) (nested.Mapping, error) {
	m, ok := p.leaf(ipa)
	if ok && (!write || m.Prot&s2pt.ProtW != 0) {
		return m, nil
	}
	vm := p.vm
	if ok {
		if err := vm.cache.Topup(vm.s2.EdgePagesNeeded(m.Base, m.Size)); err != nil {
			return nested.Mapping{}, err
		}
		if err := vm.s2.Relax(vm.cache, m.Base, m.Size, s2pt.ProtR|s2pt.ProtW|s2pt.ProtX); err != nil {
			return nested.Mapping{}, err
		}
		vm.h.stats.WriteFaults++
		m.Prot |= s2pt.ProtW
		return m, nil
	}
	s := vm.slotOf(nested.NestedIPA(ipa))
	if s == nil {
		return nested.Mapping{}, fmt.Errorf("guesthyp: VM %d has no memory at IPA %#x: %w", vm.VMID, uint64(ipa), kvm.ErrNoMemory)
	}
	vm.h.stats.Faults++
	if err := vm.mapFault(s, nested.NestedIPA(ipa)); err != nil {
		return nested.Mapping{}, err
	}
	m, ok = p.leaf(ipa)
	if !ok {
		return nested.Mapping{}, fmt.Errorf("guesthyp: VM %d: IPA %#x is not mapped after mapping it", vm.VMID, uint64(ipa))
	}
	return m, nil
}

// NewStage2 implements nested.Platform: tables from the guest hypervisor's
// table memory, invalidated with VMID vmid.
func (p platform) NewStage2(cfg s2pt.Config, vmid uint16) (*s2pt.VM, *s2pt.Cache, error) {
	var s2 *s2pt.VM
	inv := invalidator{h: p.vm.h, s2: func() *s2pt.VM { return s2 }, vmid: vmid}
	s2, err := s2pt.New(cfg, p.vm.h.tables, inv)
	if err != nil {
		return nil, nil, err
	}
	return s2, s2.NewCache(), nil
}

// VTTBR implements nested.Platform.
func (p platform) VTTBR() uint64 { return p.vm.VTTBR() }

// VTCR implements nested.Platform.
func (p platform) VTCR() sysreg.VTCR { return p.vm.s2.VTCR() }

// SetStage2 implements nested.Platform.
func (p platform) SetStage2(vttbr uint64, vtcr sysreg.VTCR) error {
	return p.vm.h.setStage2(vttbr, vtcr)
}

var _ nested.Platform = platform{}

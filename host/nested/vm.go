package nested

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/host/kvm"
)

// Config describes how a VM runs a guest hypervisor.
type Config struct {
	// Mode: FEAT_NV (every EL2 register access traps) or FEAT_NV2.
	Mode Mode
	// E2H: the guest hypervisor runs in the EL2&0 regime (a VHE
	// hypervisor, HCR_EL2.E2H=1), otherwise in the EL2 regime (E2H=0,
	// run with HCR_EL2.NV1). Fixed for the VM, as KVM fixes it per vCPU.
	E2H bool
	// VCPUs is the most nested vCPUs the VM will have (zero: 1);
	// ShadowsPerVCPU sizes the shadow pool (zero: 2, as KVM).
	VCPUs, ShadowsPerVCPU int
	// NoReverseMap turns the reverse map off: every change of L0's stage
	// 2 for the guest hypervisor empties (unmap) or write-protects every
	// shadow in full and aging ignores the shadows, as mainline KVM does.
	NoReverseMap bool
	// ReverseMapExtents bounds the reverse map (zero: 4096 per shadow
	// MMU, at most 2^18; at most 2^24), 48 bytes each plus hash buckets,
	// allocated by New. See docs/NESTED.md.
	ReverseMapExtents int
}

// VM is a kvm.VM that runs a guest hypervisor: its shadow stage-2 pool and
// the ID registers the guest hypervisor sees.
type VM struct {
	k       *kvm.VM
	cfg     Config
	ids     IDRegs
	xnx     bool         // the host implements FEAT_XNX (shadow XN per EL)
	shadows []*shadowMMU // guarded by the VM's MMU lock
	next    int          // round-robin recycling cursor
	rmap    rmap         // guarded by the VM's MMU lock
	stats   vmCounters

	mu    sync.Mutex
	vcpus []*VCPU
	err   error
}

type vmCounters struct {
	flushes atomic.Uint64
}

// New prepares k to run a guest hypervisor: the shadow pool (ShadowsPerVCPU
// per vCPU) and the hooks by which k reports changes of its stage 2.
func New(k *kvm.VM, cfg Config) (*VM, error) {
	if cfg.Mode > ModeNV2 {
		return nil, fmt.Errorf("nested: unknown mode %d", cfg.Mode)
	}
	if cfg.VCPUs == 0 {
		cfg.VCPUs = 1
	}
	if cfg.ShadowsPerVCPU == 0 {
		cfg.ShadowsPerVCPU = 2
	}
	if cfg.VCPUs < 0 || cfg.VCPUs > 1024 || cfg.ShadowsPerVCPU < 1 || cfg.ShadowsPerVCPU > 64 {
		return nil, fmt.Errorf("nested: %d vCPUs with %d shadows each: want 1..1024 and 1..64", cfg.VCPUs, cfg.ShadowsPerVCPU)
	}
	if cfg.ReverseMapExtents < 0 || cfg.ReverseMapExtents > rmapMaxExtents {
		return nil, fmt.Errorf("nested: reverse map of %d extents: want 0..%d", cfg.ReverseMapExtents, rmapMaxExtents)
	}
	id := k.Host().ID()
	vm := &VM{k: k, cfg: cfg, ids: sanitizeIDs(&id, k.Layout().IPABits), xnx: id.MMFR1.XNX() >= 1}
	if cfg.Mode == ModeNV2 && id.MMFR2.NV() < 2 || id.MMFR2.NV() < 1 {
		return nil, fmt.Errorf("nested: the host's ID_AA64MMFR2_EL1.NV=%d does not offer %v", id.MMFR2.NV(), cfg.Mode)
	}
	vm.shadows = make([]*shadowMMU, cfg.VCPUs*cfg.ShadowsPerVCPU)
	for i := range vm.shadows {
		vm.shadows[i] = &shadowMMU{vm: vm, idx: i}
	}
	vm.rmap.init(!cfg.NoReverseMap, len(vm.shadows), cfg.ReverseMapExtents)
	k.SetNestedHooks(vm)
	return vm, nil
}

// KVM returns the underlying VM.
func (vm *VM) KVM() *kvm.VM { return vm.k }

// Config returns the configuration (defaults filled in).
func (vm *VM) Config() Config { return vm.cfg }

// IDRegs returns the ID registers the guest hypervisor reads.
func (vm *VM) IDRegs() IDRegs { return vm.ids }

// Flushes returns how many times a shadow was emptied or torn down.
func (vm *VM) Flushes() uint64 { return vm.stats.flushes.Load() }

// Err returns the first error a hook met (hooks cannot return one).
func (vm *VM) Err() error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.err
}

func (vm *VM) setErr(err error) {
	if err == nil {
		return
	}
	vm.mu.Lock()
	if vm.err == nil {
		vm.err = err
	}
	vm.mu.Unlock()
}

// Close tears the shadows down and frees their VMIDs and the vCPUs' VNCR
// pages. The nested vCPUs must no longer run; the kvm.VM is left to its
// owner.
func (vm *VM) Close() error {
	vm.k.SetNestedHooks(nil)
	var errs []error
	vm.k.LockMMU()
	for _, sh := range vm.shadows {
		errs = append(errs, sh.teardown())
		errs = append(errs, vm.k.Host().FreeVMID(&sh.vmid))
	}
	vm.k.UnlockMMU()
	vm.mu.Lock()
	for _, v := range vm.vcpus {
		errs = append(errs, v.close())
	}
	vm.vcpus = nil
	vm.mu.Unlock()
	return errors.Join(errs...)
}

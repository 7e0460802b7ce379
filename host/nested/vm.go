package nested

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/host/vmid"
	"github.com/nestmmu/nestmmu/mem"
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
	k    *kvm.VM
	cfg  Config
	ids  IDRegs
	xnx  bool                 // the host implements FEAT_XNX (shadow XN per EL)
	pool shadowPool[l0Shadow] // guarded by the VM's MMU lock

	mu    sync.Mutex
	vcpus []*VCPU
	err   error
	// onWrite observes L0's writes to L1's memory (onpe_memwrite.go).
	onWrite atomic.Pointer[func(pa mem.PA, size int)]
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
	vm.pool.init(l0Level{vm}, cfg.VCPUs*cfg.ShadowsPerVCPU, !cfg.NoReverseMap, cfg.ReverseMapExtents)
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
func (vm *VM) Flushes() uint64 { return vm.pool.flushes.Load() }

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
	for _, sh := range vm.pool.shadows {
		errs = append(errs, vm.pool.teardown(sh))
		errs = append(errs, vm.k.Host().FreeVMID(&sh.x.vmid))
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

// L0's shadows: tables in host frames, each with its own VMID from the
// host's allocator, filled through each nested vCPU's own table-page
// cache, and flushed per physical CPU when another vCPU ran there last.

// l0Shadow is what L0 keeps per shadow.
type l0Shadow struct {
	// caches are the table-page caches of the shadow, one per nested
	// vCPU (by VCPU.idx, made on its first fault there): each vCPU tops
	// its own up outside the MMU lock and installs from it under the
	// lock, as KVM's per-vCPU memory caches.
	caches []*s2pt.Cache
	vmid   vmid.VM
	// lastRan is, per physical CPU, the kvm vCPU ID of the nested vCPU
	// that ran on the shadow there last (-1: none since it was built).
	lastRan []int
}

// shadowMMU is one of L0's shadows.
type shadowMMU = shadow[l0Shadow]

// l0Level is the VM's shadowLevel.
type l0Level struct{ vm *VM }

func (l l0Level) layout(g *guestRegs) s2pt.Config { return l.vm.shadowLayout(g) }

func (l l0Level) build(sh *shadowMMU, cfg s2pt.Config) (*s2pt.VM, error) {
	vm := l.vm
	s2, err := s2pt.New(cfg, s2pt.ArenaTables{Arena: vm.k.Host().Arena()}, shadowInv{h: vm.k.Host(), sh: sh})
	if err != nil {
		return nil, err
	}
	if sh.x.caches == nil {
		sh.x.caches = make([]*s2pt.Cache, vm.cfg.VCPUs)
	}
	if sh.x.lastRan == nil {
		sh.x.lastRan = make([]int, vm.k.Host().CPUs())
	}
	for i := range sh.x.lastRan {
		sh.x.lastRan[i] = -1 // Destroy invalidated the old tables' VMID everywhere
	}
	return s2, nil
}

func (l l0Level) destroyed(sh *shadowMMU) error {
	var errs []error
	for i, c := range sh.x.caches {
		if c != nil {
			errs = append(errs, c.Release())
			sh.x.caches[i] = nil
		}
	}
	return errors.Join(errs...)
}

func (l l0Level) invalidate(sh *shadowMMU, lo NestedIPA, size uint64) {
	r := [1]s2pt.Range{{Start: in(lo), End: in(lo) + mem.IPA(size), Level: s2pt.NoLevelHint, LeafOnly: true,
		Stride: sh.s2.Layout().TableBytes}}
	shadowInv{h: l.vm.k.Host(), sh: sh}.InvalidateRanges(r[:])
}

// cacheFor returns vCPU i's table-page cache for the shadow. Only vCPU i
// calls it, holding a reference (so the shadow is not torn down meanwhile).
func cacheFor(sh *shadowMMU, i int) *s2pt.Cache {
	if sh.x.caches[i] == nil {
		sh.x.caches[i] = sh.s2.NewCache()
	}
	return sh.x.caches[i]
}

// shadowInv is a shadow's TLB maintenance, tagged with its current VMID:
// s2pt.RangeInvalidator, so that a change of many leaves is a few range
// TLBIs (RIPAS2E1IS), as the host's own stage 2 gets. The host encodes
// TTL and TG hints for its page size; a shadow of a smaller granule (a
// guest granule smaller than the host page) gets no TTL hint and, for a
// range, TLBI VMALLS12E1IS: an operation whose hint names another granule
// is not required to invalidate anything.
type shadowInv struct {
	h  *kvm.Host
	sh *shadowMMU
}

// hostGranule reports whether the shadow's granule is the host page.
func (s shadowInv) hostGranule() bool { return s.sh.s2.Layout().TableBytes == s.h.PageSize() }

func (s shadowInv) InvalidateIPA(ipa mem.IPA, level int) {
	var one [1]mem.IPA
	one[0] = ipa
	if !s.hostGranule() {
		level = s2pt.NoLevelHint
	}
	s.h.TLBIIPA(s.h.VMIDOf(&s.sh.x.vmid), one[:], level)
}

func (s shadowInv) InvalidateRanges(rs []s2pt.Range) {
	if !s.hostGranule() {
		s.InvalidateVMID()
		return
	}
	s.h.TLBIRanges(s.h.VMIDOf(&s.sh.x.vmid), rs)
}

func (s shadowInv) InvalidateVMID() { s.h.TLBIVMID(s.h.VMIDOf(&s.sh.x.vmid)) }

// shadowLayout chooses the shadow's layout: the guest's IPA size (at least
// 32 bits, at most what the host allows), and the smaller of the guest's
// granule and the host page, so that every guest leaf and every host page
// can be shadowed exactly (a guest granule smaller than the host's is
// shadowed with leaves inside host pages).
func (vm *VM) shadowLayout(g *guestRegs) s2pt.Config {
	id := vm.k.Host().ID()
	gran := vm.k.Layout().Format.Granule
	if stage2On(g.hcr) {
		if gg := granuleOf(g); gg.Bits() < gran.Bits() && id.MMFR0.GranuleSupported(gg, true) {
			gran = gg
		}
	}
	// A 52-bit IPA needs FEAT_LPA2 (VTCR_EL2.DS) with 4K and 16K, FEAT_LPA
	// with 64K (AArch64.S2MinTxSZ): a guest stage 2 of 52 bits is shadowed
	// at 52 bits where the host has them (mainline caps nested guests at 48).
	hostMax, _ := sysreg.PASizeBits(id.MMFR0.PARange())
	if hostMax == 52 && gran != sysreg.Granule64K && !id.MMFR0.GranuleLPA2(gran, true) {
		hostMax = 48
	}
	ipa := vm.k.Layout().IPABits
	if stage2On(g.hcr) {
		ipa = min(max(guestIPABits(g.vtcr), 32), hostMax)
	}
	return s2pt.Config{IPABits: ipa, Granule: gran, MMFR0: id.MMFR0, MMFR1: id.MMFR1}
}

// acquire returns the shadow for the guest state g (shadowPool.acquire)
// under the MMU lock.
func (vm *VM) acquire(g *guestRegs) (*shadowMMU, error) {
	vm.k.LockMMU()
	defer vm.k.UnlockMMU()
	sh, _, err := vm.pool.acquire(g)
	return sh, err
}

// release drops a vCPU's reference.
func (vm *VM) release(sh *shadowMMU) {
	vm.k.LockMMU()
	vm.pool.release(sh)
	vm.k.UnlockMMU()
}

// ShadowInfo describes a shadow MMU for tests and tools.
type ShadowInfo struct {
	GuestVM   bool
	GuestVMID uint16
	VTTBR     sysreg.VTTBR
	VTCR      sysreg.VTCR
	// VMID is the VMID L0 last gave the shadow; Refs the vCPUs on it.
	VMID uint16
	Refs int
	// Stage2 is the shadow's tables.
	Stage2 *s2pt.VM
}

// Shadows describes the VM's shadow MMUs that hold tables.
func (vm *VM) Shadows() []ShadowInfo {
	vm.k.LockMMU()
	defer vm.k.UnlockMMU()
	var out []ShadowInfo
	for _, sh := range vm.pool.shadows {
		if sh.s2 == nil {
			continue
		}
		out = append(out, ShadowInfo{GuestVM: sh.guestVM, GuestVMID: sh.gvmid, VTTBR: sh.vttbr, VTCR: sh.vtcr,
			VMID: vm.k.Host().VMIDOf(&sh.x.vmid), Refs: sh.refs, Stage2: sh.s2})
	}
	return out
}

var _ kvm.NestedHooks = (*VM)(nil)

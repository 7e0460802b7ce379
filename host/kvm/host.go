package kvm

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/hostmem"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/host/vmid"
	"github.com/nestmmu/nestmmu/mem"
)

// Config describes a Host.
type Config struct {
	// CPUs is the number of physical CPUs (zero: 2).
	CPUs int
	// MemBytes is the size of the host's physical memory (zero: 64 MiB),
	// a multiple of 2 MiB.
	MemBytes uint64
	// Base is the host PA of the first arena byte (zero: hostmem.DefaultBase).
	Base mem.PA
	// PageSize is the host page size, which is also the stage-2 granule of
	// every VM (zero: 4096), as KVM maps stage 2 with PAGE_SIZE.
	PageSize uint64
	// TLB sizes each physical CPU's TLB.
	TLB tlb.Config
	// ID supplies the ID registers (MMFR0, MMFR1, MMFR2, ISAR2) of the
	// implementation; nil means vmsa.DefaultRegs (QEMU's -cpu max).
	ID *vmsa.Regs
	// SwapPages bounds the host's swap (zero: unbounded).
	SwapPages int
	// PoisonFreed poisons freed host frames and counts every access to a
	// free frame (hostmem.Config.PoisonFreed; Arena().StaleAccesses()): a
	// guest access through a stale stage-2 or TLB entry becomes visible.
	PoisonFreed bool
}

// Host is the host hypervisor: physical memory, the host kernel, the VMID
// allocator and the physical CPUs with their TLBs.
type Host struct {
	arena    *hostmem.Arena
	kernel   *hostmm.Kernel
	vmids    *vmid.Allocator
	domain   *tlb.Domain
	cpus     []pcpu
	id       vmsa.Regs
	pageSize uint64
	granule  sysreg.Granule
	// ipaLimit is the largest IPA size a VM can have on this host (KVM's
	// IPA limit): PARange, or less where the granule cannot map that many
	// bits (52 needs FEAT_LPA2 or 64K with FEAT_LPA).
	ipaLimit uint
	closed   atomic.Bool
	vms      atomic.Int64 // live VMs
	stats    hostCounters
}

// pcpu is a physical CPU: its TLB and the vCPU loaded on it. mu is held
// around every use of the TLB: by the loaded vCPU for the duration of one
// guest access (translation and memory access), and by the hypervisor for
// each TLB invalidation it broadcasts. So an invalidation that returns has
// waited for the accesses that were using the old entries, as TLBI followed
// by DSB ISH does (D8.16: completion of TLB maintenance).
type pcpu struct {
	mu  cpuLock
	tlb *tlb.TLB
	cur atomic.Pointer[VCPU]
	_   [40]byte // keep the locks of neighbouring CPUs on separate cache lines
}

type hostCounters struct {
	ipas2, vmalle1, vmalls12, alle1, localIPA atomic.Uint64
}

// HostStats counts the TLB maintenance the hypervisor broadcast; each
// operation counts once however many TLBs it reached.
type HostStats struct {
	// IPAS2E1IS counts the stage-2 operations by IPA, single or range
	// (IPAS2E1IS, IPAS2LE1IS, RIPAS2E1IS, RIPAS2LE1IS).
	IPAS2E1IS, VMALLE1IS, VMALLS12E1IS, ALLE1IS uint64
	// LocalIPAS2E1 counts the non-shareable TLBI IPAS2E1 + VMALLE1 after
	// permission relaxations.
	LocalIPAS2E1 uint64
	// Rollovers is the VMID allocator's generation rollovers.
	Rollovers uint64
}

// NewHost builds a host from cfg.
func NewHost(cfg Config) (*Host, error) {
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if cfg.CPUs < 0 || cfg.CPUs > 256 {
		return nil, fmt.Errorf("kvm: %d physical CPUs: want 1 to 256", cfg.CPUs)
	}
	if cfg.MemBytes == 0 {
		cfg.MemBytes = 64 << 20
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = hostmem.DefaultPageSize
	}
	var g sysreg.Granule
	switch cfg.PageSize {
	case 4096:
		g = sysreg.Granule4K
	case 16384:
		g = sysreg.Granule16K
	case 65536:
		g = sysreg.Granule64K
	default:
		return nil, fmt.Errorf("kvm: host page size %d is not 4096, 16384 or 65536", cfg.PageSize)
	}
	id := vmsa.DefaultRegs()
	if cfg.ID != nil {
		id.MMFR0, id.MMFR1, id.MMFR2, id.ISAR2 = cfg.ID.MMFR0, cfg.ID.MMFR1, cfg.ID.MMFR2, cfg.ID.ISAR2
	}
	width, err := vmid.Bits(uint64(id.MMFR1))
	if err != nil {
		return nil, fmt.Errorf("kvm: %w", err)
	}
	paBits, ok := sysreg.PASizeBits(id.MMFR0.PARange())
	if !ok {
		return nil, fmt.Errorf("kvm: ID_AA64MMFR0_EL1.PARange %d is reserved", id.MMFR0.PARange())
	}
	base := cfg.Base
	if base == 0 {
		base = hostmem.DefaultBase
	}
	if end := uint64(base) + cfg.MemBytes; end < uint64(base) || (end-1)>>paBits != 0 {
		return nil, fmt.Errorf("kvm: host memory %#x+%#x (Base+MemBytes) is beyond the %d-bit physical address range (ID_AA64MMFR0_EL1.PARange %d)",
			uint64(base), cfg.MemBytes, paBits, id.MMFR0.PARange())
	}
	ipaLimit := paBits
	for ; ipaLimit > 32; ipaLimit-- {
		if _, err := s2pt.NewLayout(s2pt.Config{IPABits: ipaLimit, Granule: g, MMFR0: id.MMFR0, MMFR1: id.MMFR1}); err == nil {
			break
		}
	}
	arena, err := hostmem.New(hostmem.Config{Base: cfg.Base, Size: cfg.MemBytes, PageSize: cfg.PageSize, PoisonFreed: cfg.PoisonFreed})
	if err != nil {
		return nil, fmt.Errorf("kvm: %w", err)
	}
	k, err := hostmm.NewKernel(arena, hostmm.Config{SwapPages: cfg.SwapPages})
	if err != nil {
		arena.Close()
		return nil, fmt.Errorf("kvm: %w", err)
	}
	d, err := tlb.NewDomain(cfg.CPUs, cfg.TLB)
	if err != nil {
		arena.Close()
		return nil, fmt.Errorf("kvm: %w", err)
	}
	h := &Host{arena: arena, kernel: k, domain: d, cpus: make([]pcpu, cfg.CPUs), id: id,
		pageSize: cfg.PageSize, granule: g, ipaLimit: ipaLimit}
	for i := range h.cpus {
		h.cpus[i].tlb = d.TLBs[i]
	}
	h.vmids, err = vmid.New(width, cfg.CPUs, flusher{h})
	if err != nil {
		arena.Close()
		return nil, fmt.Errorf("kvm: %w", err)
	}
	return h, nil
}

// Close releases the host's memory. Every VM must have been destroyed.
func (h *Host) Close() error {
	if n := h.vms.Load(); n != 0 {
		return fmt.Errorf("kvm: %d VMs still exist", n)
	}
	if h.closed.Swap(true) {
		return errors.New("kvm: host already closed")
	}
	return h.arena.Close()
}

// Arena returns the host's physical memory.
func (h *Host) Arena() *hostmem.Arena { return h.arena }

// Kernel returns the host kernel (for memory-pressure events).
func (h *Host) Kernel() *hostmm.Kernel { return h.kernel }

// CPUs returns the number of physical CPUs.
func (h *Host) CPUs() int { return len(h.cpus) }

// PageSize returns the host page size (the stage-2 granule).
func (h *Host) PageSize() uint64 { return h.pageSize }

// VMIDBits returns the VMID width (8 or 16).
func (h *Host) VMIDBits() int { return h.vmids.Width() }

// Stats returns the host's TLB maintenance counters.
func (h *Host) Stats() HostStats {
	return HostStats{IPAS2E1IS: h.stats.ipas2.Load(), VMALLE1IS: h.stats.vmalle1.Load(),
		VMALLS12E1IS: h.stats.vmalls12.Load(), ALLE1IS: h.stats.alle1.Load(), LocalIPAS2E1: h.stats.localIPA.Load(),
		Rollovers: h.vmids.Rollovers()}
}

// TLBEntries returns a snapshot of physical CPU cpu's TLB entries (for
// tests and debugging).
func (h *Host) TLBEntries(cpu int) []tlb.Entry {
	c := &h.cpus[cpu]
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tlb.Entries(nil)
}

// TLBStats returns physical CPU cpu's TLB counters.
func (h *Host) TLBStats(cpu int) tlb.Stats {
	c := &h.cpus[cpu]
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tlb.Stats
}

// el2Context is the TLBI context of the hypervisor at EL2 with VTTBR_EL2.VMID
// set to vmid (HCR_EL2 = 0 here: the *E1 forms act on EL1&0).
func (h *Host) el2Context(v uint16) tlb.Context {
	return tlb.Context{EL: 2, VMID: v, LPA2: false}
}

// ttl returns the TTL hint (Xt[47:44]) for a stage-2 leaf at level:
// TTL[3:2] the granule, TTL[1:0] the level; 0 (no information) when the
// level is unknown or not encodable.
func (h *Host) ttl(level int) uint64 {
	if level < 0 || level > 3 {
		return 0
	}
	var g uint64
	switch h.granule {
	case sysreg.Granule4K:
		g = 1
	case sysreg.Granule16K:
		g = 2
	case sysreg.Granule64K:
		g = 3
	}
	return g<<2 | uint64(level)
}

// tlbiIPA is TLBI IPAS2E1IS, Xt then TLBI VMALLE1IS (and DSB ISH) for vmid:
// IPAS2E1 removes only the stage-2 entries for the IPA, and the combined
// stage-1+2 entries that used them must go too: the sequence of "TLB
// maintenance of stage 2 entries" in the Arm ARM, and KVM's
// __kvm_tlb_flush_vmid_ipa. Both go to every CPU's TLB under that CPU's
// lock.
func (h *Host) tlbiIPA(v uint16, ipas []mem.IPA, level int) {
	ctx := h.el2Context(v)
	ttl := h.ttl(level)
	for i := range h.cpus {
		c := &h.cpus[i]
		c.mu.Lock()
		for _, ipa := range ipas {
			xt := uint64(ipa)>>12&(1<<40-1) | ttl<<44
			_, _ = c.tlb.Invalidate(tlb.OpIPAS2E1, xt, ctx)
		}
		_, _ = c.tlb.Invalidate(tlb.OpVMALLE1, 0, ctx)
		c.mu.Unlock()
	}
	h.stats.ipas2.Add(uint64(len(ipas)))
	h.stats.vmalle1.Add(1)
}

// tlbiRanges invalidates a batch of stage-2 ranges of vmid on every CPU:
// range operations (tlb.AppendIPARange; TLBI VMALLS12E1IS instead when a
// range is too long for them), then one TLBI VMALLE1IS.
func (h *Host) tlbiRanges(v uint16, rs []s2pt.Range) {
	ctx := h.el2Context(v)
	gb := uint(log2(h.pageSize))
	var buf [64]tlb.Invalidation
	ops, all := buf[:0], false
	for _, r := range rs {
		var ok bool
		ops, ok = tlb.AppendIPARange(ops, r.Start, uint64(r.End-r.Start), gb, r.Level, r.LeafOnly, ctx.VDS, ctx.LPA2, tlb.Op.IS)
		if !ok {
			all = true
			break
		}
	}
	for i := range h.cpus {
		c := &h.cpus[i]
		c.mu.Lock()
		if all {
			_, _ = c.tlb.Invalidate(tlb.OpVMALLS12E1, 0, ctx)
		} else {
			for _, o := range ops {
				_, _ = c.tlb.Invalidate(o.Op.Base(), o.Xt, ctx)
			}
			_, _ = c.tlb.Invalidate(tlb.OpVMALLE1, 0, ctx)
		}
		c.mu.Unlock()
	}
	if all {
		h.stats.vmalls12.Add(1)
		return
	}
	h.stats.ipas2.Add(uint64(len(ops)))
	h.stats.vmalle1.Add(1)
}

// localIPA is TLBI IPAS2E1, DSB NSH, TLBI VMALLE1 on one CPU (KVM's
// __kvm_tlb_flush_vmid_ipa_nsh): after a permission relaxation, so that
// the faulting CPU does not keep faulting on the entry it cached with the
// old permissions (tlb.Config.HoldPermissions shows it).
func (h *Host) localIPA(cpu int, v uint16, ipa mem.IPA, level int) {
	if cpu < 0 || cpu >= len(h.cpus) {
		return
	}
	c := &h.cpus[cpu]
	ctx := h.el2Context(v)
	c.mu.Lock()
	_, _ = c.tlb.Invalidate(tlb.OpIPAS2E1, tlb.IPAOperandOf(ipa, h.ttl(level)), ctx)
	_, _ = c.tlb.Invalidate(tlb.OpVMALLE1, 0, ctx)
	c.mu.Unlock()
	h.stats.localIPA.Add(1)
}

// tlbiVMID is TLBI VMALLS12E1IS for vmid: every stage-1 and stage-2 entry
// tagged with it.
func (h *Host) tlbiVMID(v uint16) {
	ctx := h.el2Context(v)
	for i := range h.cpus {
		c := &h.cpus[i]
		c.mu.Lock()
		_, _ = c.tlb.Invalidate(tlb.OpVMALLS12E1, 0, ctx)
		c.mu.Unlock()
	}
	h.stats.vmalls12.Add(1)
}

// localVMID is TLBI VMALLS12E1 (non-shareable) on one CPU: KVM's
// __kvm_flush_cpu_context when another vCPU of the same VM ran there last.
func (h *Host) localVMID(cpu int, v uint16) {
	c := &h.cpus[cpu]
	c.mu.Lock()
	_, _ = c.tlb.Invalidate(tlb.OpVMALLS12E1, 0, h.el2Context(v))
	c.mu.Unlock()
}

// flusher implements vmid.Flusher with broadcast TLB maintenance.
type flusher struct{ h *Host }

// FlushAll is TLBI ALLE1IS: every EL1&0 and stage-2 entry of every VMID.
func (f flusher) FlushAll() {
	h := f.h
	for i := range h.cpus {
		c := &h.cpus[i]
		c.mu.Lock()
		_, _ = c.tlb.Invalidate(tlb.OpALLE1, 0, h.el2Context(0))
		c.mu.Unlock()
	}
	h.stats.alle1.Add(1)
}

// FlushVMID is TLBI VMALLS12E1IS for a freed VMID.
func (f flusher) FlushVMID(v uint16) { f.h.tlbiVMID(v) }

// lockAll takes every CPU's lock in index order (the one order used
// everywhere, so two broadcasters cannot deadlock).
func (h *Host) lockAll() {
	for i := range h.cpus {
		h.cpus[i].mu.Lock()
	}
}

func (h *Host) unlockAll() {
	for i := len(h.cpus) - 1; i >= 0; i-- {
		h.cpus[i].mu.Unlock()
	}
}

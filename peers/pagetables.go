//go:build amd64

package peers

import (
	"sync"

	"gvisor.dev/gvisor/pkg/cpuid"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/ring0/pagetables"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/hostmem"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// PageTables is what both sides provide: map a page-aligned range to a
// physical range, unmap a range, and look one address up.
type PageTables interface {
	Map(addr, pa, size uint64) error
	Unmap(addr, size uint64) error
	Lookup(addr uint64) (pa uint64, ok bool)
}

// Nestmmu is host/s2pt with a 48-bit IPA space and the 4K granule: four
// levels from level 0, as x86's four-level tables. Its tables live in a
// host/hostmem arena, as in the hypervisor. Like gVisor's PageTables,
// whose callers synchronize them, it is used by one goroutine that holds
// its MMU lock (s2pt.Config.MMULock) throughout: s2pt checks that the
// lock is held and takes none of its own.
type Nestmmu struct {
	VM    *s2pt.VM
	cache *s2pt.Cache
	arena *hostmem.Arena
	mu    sync.Mutex
	oa    uint64 // a leaf's output-address bits (48-bit layout)
	// edgeMax is the most table pages an UnmapExact can take.
	edgeMax int
	pageMax int // the tables one page's map can take
}

// NewNestmmu returns s2pt tables in an arena of tableMem bytes.
func NewNestmmu(tableMem uint64) (*Nestmmu, error) {
	regs := vmsa.DefaultRegs()
	a, err := hostmem.New(hostmem.Config{Size: tableMem})
	if err != nil {
		return nil, err
	}
	n := &Nestmmu{arena: a, oa: 1<<48 - 1}
	n.mu.Lock()
	vm, err := s2pt.New(s2pt.Config{IPABits: 48, Granule: sysreg.Granule4K, MMFR0: regs.MMFR0, MMFR1: regs.MMFR1, MMULock: &n.mu}, s2pt.ArenaTables{Arena: a}, nil)
	if err != nil {
		_ = a.Close()
		return nil, err
	}
	n.VM, n.cache = vm, vm.NewCache()
	n.edgeMax = vm.EdgePagesNeeded(4096, 4096) // a page straddled by a block of every size at both ends
	n.pageMax = vm.MapPagesNeeded(0, 0, 4096, s2pt.MapBlocks)
	return n, nil
}

// Close frees the tables and the arena.
func (n *Nestmmu) Close() error {
	err := n.cache.Release()
	if e := n.VM.Destroy(); err == nil {
		err = e
	}
	if e := n.arena.Close(); err == nil {
		err = e
	}
	return err
}

// Map tops up the cache (outside the MMU lock, in a hypervisor), then maps
// with blocks where the alignment allows. A naturally aligned range of a
// power-of-two size up to 1 GiB lies in one table of the level that maps
// it, so it needs no more tables than one page does: that constant, as
// KVM's top-up before a fault; any other range what MapPagesNeeded counts.
func (n *Nestmmu) Map(addr, pa, size uint64) error {
	need := n.pageMax
	if size == 0 || size&(size-1) != 0 || size > 1<<30 || (addr|pa)&(size-1) != 0 {
		need = n.VM.MapPagesNeeded(mem.IPA(addr), mem.PA(pa), size, s2pt.MapBlocks)
	}
	if err := n.cache.Topup(need); err != nil {
		return err
	}
	return n.VM.Map(n.cache, mem.IPA(addr), mem.PA(pa), size, s2pt.ProtR|s2pt.ProtW, s2pt.MapBlocks)
}

// Unmap removes exactly [addr, addr+size), as gVisor's Unmap does: with
// s2pt's UnmapExact, which splits a block straddling an end (from the
// cache, topped up first) where Unmap, as Linux's stage-2 unmap, would
// remove it whole.
func (n *Nestmmu) Unmap(addr, size uint64) error {
	// A constant top-up, as KVM's before a fault: the most any range can
	// need (two tables per block size).
	if err := n.cache.Topup(n.edgeMax); err != nil {
		return err
	}
	return n.VM.UnmapExact(n.cache, mem.IPA(addr), size)
}

// leafMask is the offset mask of a leaf at level 0..3 (4K granule).
var leafMask = [4]uint64{1<<39 - 1, 1<<30 - 1, 1<<21 - 1, 1<<12 - 1}

// Lookup returns the output address of addr.
func (n *Nestmmu) Lookup(addr uint64) (uint64, bool) {
	d, level, err := n.VM.Lookup(mem.IPA(addr))
	if err != nil || d&1 == 0 {
		return 0, false
	}
	m := leafMask[level&3]
	return d&n.oa&^m | addr&m, true
}

// Gvisor is gVisor's page tables (the x86 format on amd64) with its
// runtime allocator.
type Gvisor struct{ pt *pagetables.PageTables }

var cpuidOnce sync.Once

// NewGvisor returns empty gVisor page tables.
func NewGvisor() *Gvisor {
	cpuidOnce.Do(cpuid.Initialize) // required on amd64 before pagetables.New
	return &Gvisor{pt: pagetables.New(pagetables.NewRuntimeAllocator())}
}

var rw = pagetables.MapOpts{AccessType: hostarch.ReadWrite}

// Map maps [addr, addr+size) to pa.
func (g *Gvisor) Map(addr, pa, size uint64) error {
	g.pt.Map(hostarch.Addr(addr), uintptr(size), rw, uintptr(pa))
	return nil
}

// Unmap unmaps [addr, addr+size).
func (g *Gvisor) Unmap(addr, size uint64) error {
	g.pt.Unmap(hostarch.Addr(addr), uintptr(size))
	return nil
}

// Lookup returns the output address of addr.
func (g *Gvisor) Lookup(addr uint64) (uint64, bool) {
	v, p, size, _ := g.pt.Lookup(hostarch.Addr(addr), false)
	if size == 0 {
		return 0, false
	}
	return uint64(p) + (addr - uint64(v)), true
}

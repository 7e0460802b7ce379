package s2pt

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// NoLevelHint is the level passed to Invalidator.InvalidateIPA when the
// leaf level is not known (a table descriptor was removed): TTL = 0.
const NoLevelHint = -2

// Invalidator is the TLB maintenance stage-2 changes need, for one VM; the
// hypervisor implements it with the VM's current VMID (which it owns: a
// VMID can change across an allocator rollover, the tables do not). Both
// are broadcast (inner shareable) operations that have completed when the
// call returns (TLBI; DSB ISH).
type Invalidator interface {
	// InvalidateIPA is TLBI IPAS2E1IS for ipa, with the level of the leaf
	// as a TTL hint (NoLevelHint when unknown): it removes the stage-2
	// entries and the walk-cache entries used to translate ipa, and the
	// combined stage-1+2 entries that depend on them.
	InvalidateIPA(ipa mem.IPA, level int)
	// InvalidateVMID is TLBI VMALLS12E1IS: every entry of the VM's VMID.
	InvalidateVMID()
}

type noInvalidator struct{}

func (noInvalidator) InvalidateIPA(mem.IPA, int) {}
func (noInvalidator) InvalidateVMID()            {}

// tableInfo is the manager's record of one non-root table page.
type tableInfo struct {
	parent mem.PA // the descriptor that points at the table
	level  int8
	live   int32 // valid descriptors in the table
}

// maxPending is how many IPA invalidations an operation batches before it
// falls back to invalidating the whole VMID.
const maxPending = 64

type pendingTLBI struct {
	ipa   mem.IPA
	level int
}

// Stats are a VM's page-table accounting.
type Stats struct {
	// Tables is the number of non-root table pages in use.
	Tables int
	// TableBytes is the memory of the root and every table in use.
	TableBytes uint64
	// RootBytes is the root's share of TableBytes.
	RootBytes uint64
	// BBM counts break-before-make sequences, TLBIs the invalidations issued.
	BBM, TLBIs uint64
}

// VM is one VM's stage-2 address space. Its methods are safe for concurrent
// use (they take the VM's MMU lock); the modelled hardware may walk the
// tables at any time.
type VM struct {
	mu        sync.Mutex
	layout    Layout
	tm        TableMemory
	inv       Invalidator
	root      mem.PA
	destroyed bool
	tables    map[mem.PA]*tableInfo
	// known caches, per level, the last table descriptor checkChild
	// verified: repeated walks through the same tables then need no map
	// lookup. Cleared whenever a table is released.
	known [5]knownChild
	stats Stats

	ctx [5]Ctx // one per level -1..3, reused by every walk

	pend     [maxPending]pendingTLBI
	npend    int
	pendAll  bool
	freeq    []mem.PA
	accErr   error
	visitors visitors
}

// New creates a VM's stage-2 tables: it allocates the (concatenated) root
// from tm. inv may be nil when no TLB is modelled.
func New(cfg Config, tm TableMemory, inv Invalidator) (*VM, error) {
	l, err := NewLayout(cfg)
	if err != nil {
		return nil, err
	}
	if inv == nil {
		inv = noInvalidator{}
	}
	root, err := tm.AllocTable(l.RootBytes)
	if err != nil {
		return nil, fmt.Errorf("s2pt: allocating the %d-byte stage-2 root: %w", l.RootBytes, err)
	}
	vm := &VM{layout: l, tm: tm, inv: inv, root: root, tables: map[mem.PA]*tableInfo{}}
	if uint64(root)%l.RootBytes != 0 || uint64(root)>>l.PABits != 0 || (uint64(root)>>48 != 0 && !l.Format.DS && !l.Format.OA52) {
		_ = tm.FreeTable(root, l.RootBytes)
		return nil, fmt.Errorf("s2pt: root %#x is not aligned to %#x or not expressible in VTTBR_EL2 with %d-bit PA", uint64(root), l.RootBytes, l.PABits)
	}
	vm.stats.RootBytes = l.RootBytes
	vm.stats.TableBytes = l.RootBytes
	vm.visitors.init(vm)
	return vm, nil
}

// Layout returns the VM's layout.
func (vm *VM) Layout() Layout { return vm.layout }

// Root returns the root table's host physical address.
func (vm *VM) Root() mem.PA { return vm.root }

// VTCR returns VTCR_EL2 for the VM.
func (vm *VM) VTCR() sysreg.VTCR { return vm.layout.VTCR }

// VTTBR returns VTTBR_EL2 for the VM with VMID field 0: the root (BADDR,
// with bits [51:48] in [5:2] for the 52-bit formats). The hypervisor sets
// the VMID it currently holds for the VM (sysreg.VTTBR.WithVMID) on guest
// entry.
func (vm *VM) VTTBR() sysreg.VTTBR {
	b := uint64(vm.root)
	v := b & 0x0000_ffff_ffff_fffe
	if vm.layout.Format.DS || vm.layout.Format.OA52 {
		v = b&0x0000_ffff_ffff_ffc0 | (b>>48&0xf)<<2
	}
	return sysreg.VTTBR(v)
}

// ApplyRegs loads the VM's stage-2 registers (and the ID registers the
// layout was derived from) into r for the hardware walker.
func (vm *VM) ApplyRegs(r *vmsa.Regs) {
	r.VTCR_EL2 = vm.VTCR()
	r.VTTBR_EL2 = vm.VTTBR()
}

// Stats returns the VM's page-table accounting.
func (vm *VM) Stats() Stats {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	s := vm.stats
	s.Tables = len(vm.tables)
	return s
}

// Destroy frees every table and the root after invalidating the VMID. The
// VM must not be used afterwards.
func (vm *VM) Destroy() error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.destroyed {
		return errors.New("s2pt: VM destroyed twice")
	}
	vm.destroyed = true
	vm.inv.InvalidateVMID()
	vm.stats.TLBIs++
	pas := make([]mem.PA, 0, len(vm.tables))
	for pa := range vm.tables {
		pas = append(pas, pa)
	}
	sort.Slice(pas, func(i, j int) bool { return pas[i] < pas[j] })
	var errs []error
	for _, pa := range pas {
		errs = append(errs, vm.tm.FreeTable(pa, vm.layout.TableBytes))
	}
	errs = append(errs, vm.tm.FreeTable(vm.root, vm.layout.RootBytes))
	clear(vm.tables)
	vm.root = 0
	vm.stats.TableBytes = 0
	return errors.Join(errs...)
}

// knownChild is a table descriptor (at pte, value d) verified to point at
// child, whose record is info.
type knownChild struct {
	pte   mem.PA
	d     uint64
	child mem.PA
	info  *tableInfo
}

// account keeps the valid-entry count of the table at t (record info, nil
// for the root) when one of its descriptors changes from old to new.
func (vm *VM) account(info *tableInfo, t mem.PA, old, new uint64) {
	if old&1 == new&1 || info == nil {
		return
	}
	if new&1 != 0 {
		info.live++
	} else {
		info.live--
		if info.live < 0 {
			info.live = 0
			if vm.accErr == nil {
				vm.accErr = fmt.Errorf("s2pt: valid-entry count of table %#x went negative: the table was changed behind the manager", uint64(t))
			}
		}
	}
}

// newTable takes a page from the cache and records it as the table for the
// descriptor at pte (level is the new table's level).
func (vm *VM) newTable(cache *Cache, pte mem.PA, level int) (mem.PA, error) {
	if cache == nil || len(cache.pages) == 0 {
		return 0, fmt.Errorf("s2pt: memory cache empty mapping at level %d: top it up first", level)
	}
	if cache.vm != vm {
		return 0, fmt.Errorf("s2pt: memory cache belongs to another VM")
	}
	p := cache.pages[len(cache.pages)-1]
	cache.pages = cache.pages[:len(cache.pages)-1]
	pa := p.pa
	*p.info = tableInfo{parent: pte, level: int8(level)}
	vm.tables[pa] = p.info
	vm.stats.TableBytes += vm.layout.TableBytes
	return pa, nil
}

// queueTLBI records an invalidation to issue before the operation returns.
func (vm *VM) queueTLBI(ipa mem.IPA, level int) {
	if vm.pendAll {
		return
	}
	if vm.npend == maxPending {
		vm.pendAll = true
		return
	}
	vm.pend[vm.npend] = pendingTLBI{ipa, level}
	vm.npend++
}

// tlbiIPA invalidates one IPA now.
func (vm *VM) tlbiIPA(ipa mem.IPA, level int) {
	vm.inv.InvalidateIPA(ipa, level)
	vm.stats.TLBIs++
}

// tlbiAll invalidates the VMID now (and satisfies anything queued).
func (vm *VM) tlbiAll() {
	vm.inv.InvalidateVMID()
	vm.stats.TLBIs++
	vm.npend, vm.pendAll = 0, false
}

// finish issues the queued invalidations, then frees the tables queued for
// freeing (only once no TLB can hold a walk through them), and returns err
// joined with any accounting error.
func (vm *VM) finish(err error) error {
	if vm.pendAll {
		vm.tlbiAll()
	}
	for i := 0; i < vm.npend; i++ {
		vm.tlbiIPA(vm.pend[i].ipa, vm.pend[i].level)
	}
	vm.npend = 0
	for _, pa := range vm.freeq {
		if ferr := vm.tm.FreeTable(pa, vm.layout.TableBytes); ferr != nil && err == nil {
			err = ferr
		}
	}
	vm.freeq = vm.freeq[:0]
	if vm.accErr != nil {
		err = errors.Join(err, vm.accErr)
		vm.accErr = nil
	}
	return err
}

// releaseTable forgets a detached table and queues it for freeing.
func (vm *VM) releaseTable(pa mem.PA) {
	if _, ok := vm.tables[pa]; !ok {
		return
	}
	delete(vm.tables, pa)
	vm.known = [5]knownChild{}
	vm.stats.TableBytes -= vm.layout.TableBytes
	vm.freeq = append(vm.freeq, pa)
}

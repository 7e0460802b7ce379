// Package vmid allocates the VMIDs that tag a VM's stage-2 translations in
// the TLBs (VTTBR_EL2.VMID), after KVM/arm64's generation scheme.
//
// Each VM holds a (generation, VMID) pair. Loading a vCPU on a CPU checks,
// lock-free, that the VM's generation is the current one; if so its VMID is
// valid and the load costs two atomic loads and a compare-and-swap. Otherwise
// a VMID is allocated under a lock. When every VMID is taken the generation
// is bumped, all VMIDs are released except those active (or reserved) on a
// CPU, and the whole TLB is invalidated once (TLBI ALLE1IS). A VM that is
// running during a rollover keeps its VMID in the new generation, so its
// hardware VTTBR stays valid. VMID 0 is the host's and never handed out.
// Freeing a VM's VMID (VM destruction) invalidates that VMID's TLB entries
// and makes it reusable at once.
package vmid

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Flusher invalidates TLB entries on behalf of the allocator. Both
// operations must complete on every CPU (broadcast, with the DSB that
// follows) before they return. They are called with the allocator's lock
// held and must not call back into it.
type Flusher interface {
	// FlushAll invalidates all stage-1 and stage-2 EL1&0 entries of every
	// VMID (TLBI ALLE1IS) and the instruction caches tagged by VMID.
	FlushAll()
	// FlushVMID invalidates every entry tagged with vmid (TLBI VMALLS12E1IS
	// with VTTBR_EL2.VMID = vmid).
	FlushVMID(vmid uint16)
}

// Bits returns the VMID width in bits from ID_AA64MMFR1_EL1.VMIDBits
// (bits 7:4): 0b0000 is 8 bits and 0b0010 is 16 bits (FEAT_VMID16; the
// hypervisor must then set VTCR_EL2.VS). Other values are reserved.
func Bits(mmfr1 uint64) (int, error) {
	switch f := mmfr1 >> 4 & 0xf; f {
	case 0b0000:
		return 8, nil
	case 0b0010:
		return 16, nil
	default:
		return 0, fmt.Errorf("vmid: ID_AA64MMFR1_EL1.VMIDBits 0b%04b (ID_AA64MMFR1_EL1 = %#x) is reserved", f, mmfr1)
	}
}

// VM is a VM's VMID state. The zero value has no VMID yet. A VM must not be
// copied after first use.
type VM struct {
	// id is generation | VMID; 0 means never allocated. Written only
	// with the allocator's lock held, read lock-free by Load.
	id atomic.Uint64
}

// VMID returns the VMID last allocated to the VM, which may be of an old
// generation; Load returns the VMID to program into VTTBR_EL2.
func (v *VM) VMID(a *Allocator) uint16 { return uint16(v.id.Load() & a.mask) }

// Allocator hands out VMIDs to VMs running on a fixed set of CPUs. It is
// safe for concurrent use; each CPU index must be used by one goroutine at a
// time (as a physical CPU runs one vCPU at a time).
type Allocator struct {
	bits       uint
	mask       uint64 // VMID bits of an id
	generation atomic.Uint64
	active     []paddedID // per CPU: id last loaded, 0 after a rollover, activeInvalid after Put

	flusher Flusher

	mu       sync.Mutex // protects the fields below and every VM.id write
	reserved []uint64   // per CPU: id kept across the last rollover
	used     []uint64   // bitmap of VMIDs allocated in the current generation
	curIdx   uint64     // where the next search starts
	flushes  uint64     // rollovers so far (each did one FlushAll)
}

// paddedID keeps each CPU's active id on its own cache line.
type paddedID struct {
	atomic.Uint64
	_ [56]byte
}

// New returns an allocator for VMIDs of width bits (8 or 16) used by ncpu
// CPUs. flusher performs the TLB invalidations the allocator needs.
func New(width, ncpu int, flusher Flusher) (*Allocator, error) {
	if width != 8 && width != 16 {
		return nil, fmt.Errorf("vmid: VMID width %d bits, want 8 or 16", width)
	}
	n := 1 << width
	// Every CPU may pin one VMID across a rollover; at least one more must
	// be free for the allocation that caused it, besides the host's VMID 0.
	if ncpu < 1 || ncpu > n-2 {
		return nil, fmt.Errorf("vmid: %d CPUs for %d-bit VMIDs, want 1..%d", ncpu, width, n-2)
	}
	if flusher == nil {
		return nil, fmt.Errorf("vmid: nil Flusher")
	}
	a := &Allocator{
		bits:     uint(width),
		mask:     uint64(n - 1),
		active:   make([]paddedID, ncpu),
		flusher:  flusher,
		reserved: make([]uint64, ncpu),
		used:     make([]uint64, n/64),
		curIdx:   1,
	}
	a.generation.Store(a.firstVersion())
	a.used[0] = 1 // VMID 0 is the host's
	return a, nil
}

// firstVersion is the generation step: the generation lives above the VMID
// bits of an id.
func (a *Allocator) firstVersion() uint64 { return 1 << a.bits }

// activeInvalid marks a CPU with no loaded VM after Put. It is non-zero so
// the fast path still applies on the next Load, and its VMID part is the
// host's 0, so it never equals a VM's id.
func (a *Allocator) activeInvalid() uint64 { return a.firstVersion() }

func (a *Allocator) genMatch(id uint64) bool {
	return id != 0 && (id^a.generation.Load())>>a.bits == 0
}

// Width returns the VMID width in bits.
func (a *Allocator) Width() int { return int(a.bits) }

// Rollovers returns the number of generation rollovers so far, each of which
// called FlushAll once.
func (a *Allocator) Rollovers() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.flushes
}

func (a *Allocator) checkCPU(cpu int) error {
	if cpu < 0 || cpu >= len(a.active) {
		return fmt.Errorf("vmid: CPU %d out of range [0,%d)", cpu, len(a.active))
	}
	return nil
}

// Load is called when a vCPU of vm is loaded on cpu (before entering the
// guest) and returns the VMID to program into VTTBR_EL2. While the VM's
// generation is current it takes no lock and does not allocate.
func (a *Allocator) Load(cpu int, vm *VM) (uint16, error) {
	if err := a.checkCPU(cpu); err != nil {
		return 0, err
	}
	if vm == nil {
		return 0, fmt.Errorf("vmid: Load on CPU %d with a nil VM", cpu)
	}
	act := &a.active[cpu].Uint64
	old := act.Load()
	id := vm.id.Load()
	// Fast path. A rollover swaps every CPU's active entry to 0: if one
	// ran after old was read, the compare-and-swap fails and the slow path
	// takes the lock; if it runs after the swap, it finds id active here
	// and keeps it.
	if old != 0 && a.genMatch(id) && (old == id || claim(act, old, id)) {
		// With old == id no store is needed: a rollover after the
		// load of old finds id active here and pins it.
		return uint16(id & a.mask), nil
	}
	a.mu.Lock()
	id = vm.id.Load()
	if !a.genMatch(id) {
		id = a.newVMID(vm)
	}
	act.Store(id)
	a.mu.Unlock()
	return uint16(id & a.mask), nil
}

// claim makes id the CPU's active id unless a rollover has swapped the
// entry since old was read: a plain store here would let a VM run with a
// VMID the rollover did not pin and may have handed to another VM.
func claim(act *atomic.Uint64, old, id uint64) bool { return act.CompareAndSwap(old, id) }

// Put is called when the vCPU is put (descheduled) on cpu. It is optional:
// it lets a rollover release the VM's VMID instead of pinning it for a CPU
// that no longer runs it.
func (a *Allocator) Put(cpu int) error {
	if err := a.checkCPU(cpu); err != nil {
		return err
	}
	a.active[cpu].Store(a.activeInvalid())
	return nil
}

func (a *Allocator) testBit(i uint64) bool { return a.used[i/64]>>(i%64)&1 != 0 }
func (a *Allocator) setBit(i uint64)       { a.used[i/64] |= 1 << (i % 64) }
func (a *Allocator) clearBit(i uint64)     { a.used[i/64] &^= 1 << (i % 64) }

// findFree returns the first free VMID at or after from, or 0 if there is
// none before the end of the space.
func (a *Allocator) findFree(from uint64) uint64 {
	for w := from / 64; w < uint64(len(a.used)); w++ {
		free := ^a.used[w]
		if w == from/64 {
			free &^= 1<<(from%64) - 1
		}
		if free != 0 {
			return w*64 + uint64(bits.TrailingZeros64(free))
		}
	}
	return 0
}

// newVMID gives vm a VMID of the current generation. Called with the lock
// held.
func (a *Allocator) newVMID(vm *VM) uint64 {
	old := vm.id.Load()
	gen := a.generation.Load()
	if old != 0 {
		// Keep the VMID if it was pinned for this VM across the rollover
		// or is still free: no TLB entry with it has been created since
		// the rollover's full flush except by this VM.
		nid := gen | old&a.mask
		if a.updateReserved(old, nid) {
			vm.id.Store(nid)
			return nid
		}
		if i := old & a.mask; !a.testBit(i) {
			a.setBit(i)
			vm.id.Store(nid)
			return nid
		}
	}
	i := a.findFree(a.curIdx)
	if i == 0 {
		// Freed VMIDs below the cursor before a rollover.
		i = a.findFree(1)
	}
	if i == 0 {
		gen = a.rollover()
		// At most one VMID per CPU is pinned, and New ensured more
		// VMIDs than CPUs, so this succeeds.
		i = a.findFree(1)
	}
	a.setBit(i)
	a.curIdx = i
	nid := gen | i
	vm.id.Store(nid)
	return nid
}

// updateReserved moves every CPU's reserved entry for old to nid and reports
// whether there was one. All entries are updated: the VM may have run on
// several CPUs before the rollover.
func (a *Allocator) updateReserved(old, nid uint64) bool {
	hit := false
	for cpu := range a.reserved {
		if a.reserved[cpu] == old {
			a.reserved[cpu] = nid
			hit = true
		}
	}
	return hit
}

// rollover starts a new generation: only the VMIDs active or reserved on a
// CPU stay allocated, and the whole TLB is invalidated because every other
// VMID may now be handed to a different VM.
func (a *Allocator) rollover() uint64 {
	gen := a.generation.Add(a.firstVersion())
	clear(a.used)
	a.used[0] = 1
	for cpu := range a.active {
		id := a.active[cpu].Swap(0)
		if id == 0 {
			// The CPU has not loaded anything since the previous
			// rollover: it may still run the VM it reserved then.
			id = a.reserved[cpu]
		}
		a.setBit(id & a.mask)
		a.reserved[cpu] = id
	}
	a.flushes++
	a.flusher.FlushAll()
	return gen
}

// Free releases vm's VMID when the VM is destroyed. No vCPU of the VM may be
// loaded, or be loaded again. The VMID's TLB entries are invalidated before
// it becomes reusable.
func (a *Allocator) Free(vm *VM) error {
	if vm == nil {
		return fmt.Errorf("vmid: Free of a nil VM")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	id := vm.id.Load()
	if id == 0 {
		return nil
	}
	i := id & a.mask
	pinned := false
	for cpu := range a.active {
		// A CPU's own fast path may race with this; either side failing
		// its compare-and-swap is fine.
		a.active[cpu].CompareAndSwap(id, a.activeInvalid())
		if a.reserved[cpu] == id {
			a.reserved[cpu] = 0
			pinned = true
		}
	}
	if a.genMatch(id) || pinned {
		// The VMID is this VM's in the current generation: allocated in
		// it, or pinned for it by a rollover. A pinned VM was running
		// when the rollover flushed and may have kept running after it,
		// so its entries must go too before the VMID is reused.
		a.flusher.FlushVMID(uint16(i))
		a.clearBit(i)
	}
	vm.id.Store(0)
	return nil
}

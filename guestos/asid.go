package guestos

// asidAllocator is Linux/arm64's ASID allocator (arch/arm64/mm/context.c):
// a context ID is generation | ASID; an mm whose ID is from an older
// generation gets a new ASID on its next switch-in, keeping its old number
// when that is free in the new generation. When every ASID of a
// generation is taken the generation rolls over: the bitmap is cleared
// except for the ASIDs running on each CPU (which stay reserved), and
// every CPU must flush its TLB (TLBI VMALLE1) before it next switches, as
// entries of the old generation's ASIDs may remain. ASID 0 is never given
// to a process (TTBR1 uses it while the reserved TTBR0 table is active).
// Guarded by OS.mu.
type asidAllocator struct {
	bits       uint
	generation uint64   // a multiple of 1<<bits, from 1<<bits
	used       []uint64 // bitmap of ASIDs taken in this generation
	curIdx     uint64
	active     []uint64 // per CPU: context ID running there (0: none since the rollover)
	reserved   []uint64 // per CPU: context ID kept across the last rollover
	flush      []bool   // per CPU: flush the TLB before the next switch
	rollovers  uint64
}

func (a *asidAllocator) init(bits uint) {
	a.bits = bits
	a.generation = 1 << bits
	a.used = make([]uint64, (1<<bits+63)/64)
	a.curIdx = 1
}

func (a *asidAllocator) addCPU() int {
	a.active = append(a.active, 0)
	a.reserved = append(a.reserved, 0)
	a.flush = append(a.flush, false)
	return len(a.active) - 1
}

func (a *asidAllocator) asidOf(id uint64) uint64      { return id & (1<<a.bits - 1) }
func (a *asidAllocator) current(id uint64) bool       { return id&^(1<<a.bits-1) == a.generation }
func (a *asidAllocator) test(n uint64) bool           { return a.used[n/64]>>(n%64)&1 != 0 }
func (a *asidAllocator) set(n uint64)                 { a.used[n/64] |= 1 << (n % 64) }
func (a *asidAllocator) withGen(n uint64) (id uint64) { return a.generation | n }

// switchTo is check_and_switch_context's allocation part for CPU cpu and
// an mm with context ID *id: it returns the ASID to use and whether the
// CPU must flush its TLB first.
func (a *asidAllocator) switchTo(cpu int, id *uint64) (asid uint64, flush bool) {
	if !a.current(*id) {
		*id = a.newContext(*id)
	}
	flush = a.flush[cpu]
	a.flush[cpu] = false
	a.active[cpu] = *id
	return a.asidOf(*id), flush
}

func (a *asidAllocator) newContext(old uint64) uint64 {
	n := uint64(1) << a.bits
	if old != 0 {
		asid := a.asidOf(old)
		// check_update_reserved_asid: an ASID kept across the rollover
		// stays this mm's.
		hit := false
		for i, r := range a.reserved {
			if r == old {
				a.reserved[i] = a.withGen(asid)
				hit = true
			}
		}
		if hit {
			return a.withGen(asid)
		}
		if !a.test(asid) {
			a.set(asid)
			return a.withGen(asid)
		}
	}
	asid := a.findFree(a.curIdx)
	if asid == n {
		a.generation += n
		a.rollovers++
		a.flushContext()
		asid = a.findFree(1)
	}
	a.set(asid)
	a.curIdx = asid
	return a.withGen(asid)
}

func (a *asidAllocator) findFree(from uint64) uint64 {
	n := uint64(1) << a.bits
	for i := max(from, 1); i < n; i++ {
		if !a.test(i) {
			return i
		}
	}
	return n
}

// flushContext starts a generation: only the ASIDs running (or reserved)
// on each CPU stay taken, and every CPU flushes before its next switch.
func (a *asidAllocator) flushContext() {
	clear(a.used)
	for i := range a.active {
		id := a.active[i]
		a.active[i] = 0
		if id == 0 {
			id = a.reserved[i]
		}
		if id != 0 {
			a.set(a.asidOf(id))
		}
		a.reserved[i] = id
		a.flush[i] = true
	}
}

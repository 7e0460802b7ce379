package te

import (
	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/gva"
	"github.com/nestmmu/nestmmu/mips/hosttlb"
)

// emulatedMMIO reports whether KVM can complete op as MMIO: only data
// loads and stores; an instruction fetch, KVM's own read of an instruction
// and a CACHE operation on a non-RAM address cannot be emulated.
func emulatedMMIO(op cp0.Op) bool { return op.Kind == cp0.OpLoad || op.Kind == cp0.OpStore }

// slowFault is KVM's slow path for a host TLB exception at va (TLB invalid
// after the fast refill loaded an empty PTE; in Legacy mode every refill):
// kvm_trap_emul_handle_tlb_miss. It also serves KVM's own accesses after
// get_user failed (kvm_trap_emul_gva_fault). done reports that the access
// ended here (exception injected, MMIO or internal error); otherwise the
// GVA table (or, in Legacy mode, the host TLB) was filled and the access is
// retried.
func (e *Engine) slowFault(op cp0.Op, va uint32, st bool) (r cp0.Result, done bool) {
	tlbCode, adCode := loadStoreCodes(st)
	kernel := e.cp.KernelMode()
	// kvm_mips_check_privilege: a guest user access to a guest kernel
	// segment is an address error for the guest.
	if !kernel && va >= cp0.GuestKSeg0 {
		e.Stats.Slow[SlowAddrErr]++
		return e.inject(op, adCode, false, cp0.FaultAddr, va), true
	}
	if kernel && va&^(e.pageSize-1) == e.commpage {
		e.Stats.Slow[SlowCommpage]++
		e.mapCommpage()
		return r, false
	}
	if va >= cp0.GuestKSeg0 && va < cp0.GuestKSeg0End {
		gpa := va - cp0.GuestKSeg0
		if gpa >= e.cfg.RAMSize {
			return e.notRAM(op, uint64(gpa), st)
		}
		e.Stats.Slow[SlowKSeg0]++
		e.mapKSeg0(va, st)
		return r, false
	}
	// Guest useg or KSeg2/3: the guest TLB decides (linear scan).
	i := e.guestLookup(va)
	if i < 0 {
		e.Stats.Slow[SlowGuestRefill]++
		return e.inject(op, tlbCode, true, cp0.FaultTLB, va), true
	}
	ent := &e.cp.TLB.E[i]
	lo := ent.Half(va)
	if lo&cp0.EntryLoV == 0 {
		e.Stats.Slow[SlowGuestInvalid]++
		return e.inject(op, tlbCode, false, cp0.FaultTLB, va), true
	}
	if cp0.EvenOddBit(ent.Mask) < e.pageShift {
		// A guest page smaller than a host page cannot be mapped.
		e.Stats.Slow[SlowInternal]++
		return cp0.Result{Outcome: cp0.Internal}, true
	}
	gpa := cp0.PA(lo, ent.Mask, va)
	if gpa >= uint64(e.cfg.RAMSize) {
		if st && lo&cp0.EntryLoD == 0 {
			e.Stats.Slow[SlowTLBModInject]++
			return e.inject(op, cp0.ExcMod, false, cp0.FaultTLB, va), true
		}
		return e.notRAM(op, gpa, st)
	}
	// A store to a guest D=0 page is mapped clean; the retry takes the
	// TLB Modified path, which forwards it to the guest.
	e.Stats.Slow[SlowMapped]++
	e.mapMapped(va, ent, st && lo&cp0.EntryLoD != 0)
	return r, false
}

// guestLookup is the slow path's linear scan of the guest TLB.
func (e *Engine) guestLookup(va uint32) int {
	e.Stats.GuestScans++
	i := e.cp.TLB.Lookup(va, e.cp.ASID())
	if i < 0 {
		e.Stats.GuestCompared += cp0.Entries
	} else {
		e.Stats.GuestCompared += uint64(i + 1)
	}
	return i
}

// notRAM handles an access whose guest physical address is not RAM: MMIO
// for data loads and stores, otherwise not emulatable.
func (e *Engine) notRAM(op cp0.Op, gpa uint64, st bool) (cp0.Result, bool) {
	if !emulatedMMIO(op) {
		e.Stats.Slow[SlowInternal]++
		return cp0.Result{Outcome: cp0.Internal}, true
	}
	return e.doMMIO(gpa, st, op.Size, op.Value), true
}

// tlbMod is kvm_trap_emul_handle_tlb_mod: a store hit a host entry with
// D=0. A guest page that is not dirty in the guest TLB gets the guest's TLB
// Modified exception; otherwise the page was clean for dirty logging: log
// it and remap it writable.
func (e *Engine) tlbMod(op cp0.Op, va uint32) (r cp0.Result, done bool) {
	kernel := e.cp.KernelMode()
	if kernel && va&^(e.pageSize-1) == e.commpage {
		e.Stats.Slow[SlowCommpage]++
		e.mapCommpage()
		return r, false
	}
	if !kernel && va >= cp0.GuestKSeg0 {
		return e.slowFault(op, va, true)
	}
	if va >= cp0.GuestKSeg0 && va < cp0.GuestKSeg0End {
		gpa := va - cp0.GuestKSeg0
		if gpa >= e.cfg.RAMSize {
			return e.notRAM(op, uint64(gpa), true)
		}
		e.Stats.Slow[SlowKSeg0]++
		e.mapKSeg0(va, true)
		return r, false
	}
	i := e.guestLookup(va)
	if i < 0 || e.cp.TLB.E[i].Half(va)&cp0.EntryLoV == 0 {
		// The mapping went away: refault as a TLB miss.
		return e.slowFault(op, va, true)
	}
	ent := &e.cp.TLB.E[i]
	if ent.Half(va)&cp0.EntryLoD == 0 {
		e.Stats.Slow[SlowTLBModInject]++
		return e.inject(op, cp0.ExcMod, false, cp0.FaultTLB, va), true
	}
	return e.slowFault(op, va, true)
}

// ptePage returns the PTE mapping guest physical address gpa, giving the
// guest page a host frame if it has none. Dirty logging: the PTE is
// writable (D) only when the guest allows writes and the page is already
// logged dirty; writeNow logs it dirty.
func (e *Engine) ptePage(gpa uint64, allowWrite, writeNow bool) (gva.PTE, bool) {
	if gpa >= uint64(e.cfg.RAMSize) {
		return 0, false
	}
	gp := uint32(gpa >> e.pageShift)
	p := gva.Make(e.hpaOfFrame(e.frameFor(gp)))
	if allowWrite {
		p |= gva.Write
		if writeNow && !e.dirty[gp] {
			e.dirty[gp] = true
			e.Stats.Slow[SlowDirty]++
		}
		if e.dirty[gp] {
			p |= gva.D | gva.Modified
		}
	}
	return p, true
}

func (e *Engine) commpagePTE() gva.PTE {
	return gva.Make(e.hpaOfFrame(e.commFrame)) | gva.Write | gva.D | gva.Modified | gva.Commpage
}

// mapMapped writes the pair containing va from guest TLB entry ent into the
// active GVA table (kvm_mips_handle_mapped_seg_tlb_fault). A guest D=0 half
// is mapped clean. In the kernel table the commpage slot keeps the commpage.
func (e *Engine) mapMapped(va uint32, ent *cp0.Entry, write bool) {
	pair := va &^ (2*e.pageSize - 1)
	kernel := e.cp.KernelMode()
	var ptes [2]gva.PTE
	for h := uint32(0); h < 2; h++ {
		hva := pair + h*e.pageSize
		if kernel && hva == e.commpage {
			ptes[h] = e.commpagePTE()
			continue
		}
		lo := ent.Half(hva)
		if lo&cp0.EntryLoV == 0 {
			continue
		}
		p, ok := e.ptePage(cp0.PA(lo, ent.Mask, hva), lo&cp0.EntryLoD != 0, write && hva == va&^(e.pageSize-1))
		if ok {
			ptes[h] = p
		}
	}
	e.install(pair, ptes, false)
}

// mapKSeg0 maps the guest KSeg0 page of va and its buddy
// (kvm_mips_handle_kseg0_tlb_fault): GPA = va - KSeg0 base.
func (e *Engine) mapKSeg0(va uint32, write bool) {
	pair := va &^ (2*e.pageSize - 1)
	var ptes [2]gva.PTE
	for h := uint32(0); h < 2; h++ {
		hva := pair + h*e.pageSize
		if p, ok := e.ptePage(uint64(hva-cp0.GuestKSeg0), true, write && hva == va&^(e.pageSize-1)); ok {
			ptes[h] = p
		}
	}
	e.install(pair, ptes, false)
}

// mapCommpage maps the commpage in the kernel table
// (kvm_mips_handle_commpage_tlb_fault).
func (e *Engine) mapCommpage() {
	pair := e.commpage &^ (2*e.pageSize - 1)
	var ptes [2]gva.PTE
	h := (e.commpage >> e.pageShift) & 1
	ptes[h] = e.commpagePTE()
	e.install(pair, ptes, true)
}

// install puts a PTE pair into the active GVA table and invalidates the
// host TLB entry for the pair so that the retry refills it
// (kvm_mips_host_tlb_inv). In Legacy mode the pair goes straight into the
// host TLB. only1 writes just the slot of the commpage.
func (e *Engine) install(pair uint32, ptes [2]gva.PTE, commOnly bool) {
	if e.cfg.Legacy {
		e.host.InvalidateVA(pair, e.hostASID)
		e.host.WriteRandom(hosttlb.Entry{Hi: pair | uint32(e.hostASID), Lo0: ptes[0].EntryLo(), Lo1: ptes[1].EntryLo()})
		return
	}
	t := e.active.table
	for h := uint32(0); h < 2; h++ {
		if commOnly && ptes[h] == 0 {
			continue
		}
		*t.Slot(pair + h*e.pageSize) = ptes[h]
	}
	e.host.InvalidateVA(pair, e.hostASID)
}

// kvmAccess is KVM's own access to guest memory: reading the instruction
// to emulate (OpKVMRead) or a CACHE operation (OpCache). It uses user
// access primitives through the active GVA table, so a missing mapping is
// refilled by the fast handler and a fault returns EFAULT instead of
// crashing; the fault is then classified (kvm_trap_emul_gva_fault) into a
// fill-and-retry or an exception to inject.
func (e *Engine) kvmAccess(op cp0.Op) cp0.Result {
	e.Stats.KVMAccesses++
	va := op.VA
	kernel := e.cp.KernelMode()
	if op.Kind == cp0.OpCache {
		if !kernel {
			return e.inject(op, cp0.ExcCpU, false, cp0.FaultNone, 0)
		}
		if va >= cp0.HostKSeg0 {
			if va < cp0.HostKSeg2 {
				return cp0.Result{} // host cache op on the KSeg0 alias
			}
			e.Stats.Slow[SlowInternal]++
			return cp0.Result{Outcome: cp0.Internal}
		}
	} else {
		if va&3 != 0 || !kernel && va >= cp0.GuestKSeg0 {
			e.Stats.Slow[SlowAddrErr]++
			return e.inject(op, cp0.ExcAdEL, false, cp0.FaultAddr, va)
		}
		if va >= cp0.HostKSeg0 {
			e.Stats.Slow[SlowInternal]++
			return cp0.Result{Outcome: cp0.Internal}
		}
	}
	for try := 0; try < maxRetries; try++ {
		lo, hit := e.host.Lookup(va, e.hostASID)
		if !hit {
			if r, done := e.refill(op, va, false); done {
				return r
			}
			continue
		}
		if lo&hosttlb.LoV == 0 {
			e.Stats.KVMFaults++
			if r, done := e.slowFault(op, va, false); done {
				return r
			}
			continue
		}
		if op.Kind == cp0.OpCache {
			return cp0.Result{}
		}
		b := e.frameOfHPA(uint64(lo&hosttlb.LoPFN) << 6)[va&(e.pageSize-1):]
		return cp0.Result{Value: load(b, 4)}
	}
	e.Stats.Livelocks++
	e.Stats.Slow[SlowInternal]++
	return cp0.Result{Outcome: cp0.Internal}
}

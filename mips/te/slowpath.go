package te

import (
	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/gva"
	"github.com/nestmmu/nestmmu/mips/hosttlb"
)

// emulatedMMIO reports whether KVM can complete op as MMIO: only data
// loads and stores; an instruction fetch, KVM's own read of an instruction
// and a CACHE operation cannot be emulated.
func emulatedMMIO(op *cp0.Op) bool { return op.Kind == cp0.OpLoad || op.Kind == cp0.OpStore }

// internal ends an access KVM cannot handle (KVM_EXIT_INTERNAL_ERROR).
func (e *Engine) internal() (cp0.Result, bool) {
	e.Stats.Slow[SlowInternal]++
	return cp0.Result{Outcome: cp0.Internal}, true
}

// kseg0InRAM reports whether the guest KSeg0 fault at va can be mapped: the
// series maps the page and its buddy, and refuses the pair unless both are
// RAM ("(gfn | 1) >= guest_pmap_npages" in kvm_mips_handle_kseg0_tlb_fault).
func (e *Engine) kseg0InRAM(va uint32) bool {
	return ((va-cp0.GuestKSeg0)>>e.pageShift)|1 < e.cfg.RAMSize>>e.pageShift
}

// slowFault is KVM's slow path for a host TLB exception at va (TLB invalid
// after the fast refill loaded an empty PTE; in Legacy mode every refill):
// kvm_trap_emul_handle_tlb_miss. It also serves KVM's own accesses after
// get_user failed (kvm_trap_emul_gva_fault). done reports that the access
// ended here (exception injected or internal error); otherwise the GVA
// table (or, in Legacy mode, the host TLB) was filled and the access is
// retried.
//
// A guest physical address that is not RAM, reached through guest KSeg0 or
// the guest TLB, is an internal error as in the series: the fault handler
// returns -1 when the guest frame is beyond guest_pmap_npages, and
// kvm_trap_emul_handle_tlb_miss turns that into KVM_EXIT_INTERNAL_ERROR.
// Only host KSeg0/1 addresses are MMIO (hostAddrErr).
func (e *Engine) slowFault(op *cp0.Op, va uint32, st bool) (r cp0.Result, done bool) {
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
		if !e.kseg0InRAM(va) {
			return e.internal()
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
		return e.internal()
	}
	if cp0.PA(lo, ent.Mask, va) >= uint64(e.cfg.RAMSize) {
		// Checked before the guest's D bit: the series fails the fill
		// before any host TLB Modified exception could occur.
		return e.internal()
	}
	// A store to a guest D=0 page is mapped clean; the retry takes the
	// TLB Modified path, which forwards it to the guest.
	e.Stats.Slow[SlowMapped]++
	e.mapMapped(va, ent, st && lo&cp0.EntryLoD != 0)
	return r, false
}

// guestLookup is the slow path's linear scan of the guest TLB. The
// statistics count what KVM's scan compares; the model finds the same
// entry through the State's index.
func (e *Engine) guestLookup(va uint32) int {
	e.Stats.GuestScans++
	i := e.cp.Lookup(va, e.cp.ASID())
	if i < 0 {
		e.Stats.GuestCompared += cp0.Entries
	} else {
		e.Stats.GuestCompared += uint64(i + 1)
	}
	return i
}

// tlbMod is kvm_trap_emul_handle_tlb_mod: a store hit a host entry with
// D=0. As the series left it, a mapped-segment (useg, KSeg2/3) exception is
// always forwarded to the guest as its TLB Modified (kvm_mips_handle_tlbmod)
// and a KSeg0 one is not handled; host D=0 comes only from a guest D=0
// page then. With DirtyLog (Linux 4.11), a guest page that is not dirty in
// the guest TLB gets the guest's exception; otherwise the page was clean
// for dirty logging: log it and remap it writable.
func (e *Engine) tlbMod(op *cp0.Op, va uint32) (r cp0.Result, done bool) {
	kernel := e.cp.KernelMode()
	if kernel && va&^(e.pageSize-1) == e.commpage {
		e.Stats.Slow[SlowCommpage]++
		e.mapCommpage()
		return r, false
	}
	if !kernel && va >= cp0.GuestKSeg0 {
		return e.slowFault(op, va, true)
	}
	kseg0 := va >= cp0.GuestKSeg0 && va < cp0.GuestKSeg0End
	if !e.cfg.DirtyLog {
		if kseg0 {
			return e.internal() // "TLB MOD fault not handled"
		}
		e.Stats.Slow[SlowTLBModInject]++
		return e.inject(op, cp0.ExcMod, false, cp0.FaultTLB, va), true
	}
	if kseg0 {
		if !e.kseg0InRAM(va) {
			return e.internal()
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

// ptePage returns the PTE mapping guest RAM address gpa, giving the guest
// page a host frame if it has none. Without DirtyLog the PTE is writable
// and dirty (D) whenever writes are allowed, as the series maps pages
// (pte_mkdirty). With DirtyLog it is D only once the page is logged dirty;
// writeNow logs it dirty.
func (e *Engine) ptePage(gpa uint64, allowWrite, writeNow bool) gva.PTE {
	gp := uint32(gpa >> e.pageShift)
	p := gva.Make(e.hpaOfFrame(e.frameFor(gp)))
	if !allowWrite {
		return p
	}
	p |= gva.Write
	if !e.cfg.DirtyLog {
		return p | gva.D | gva.Modified
	}
	if writeNow && !e.dirty[gp] {
		e.dirty[gp] = true
		e.Stats.Slow[SlowDirty]++
	}
	if e.dirty[gp] {
		p |= gva.D | gva.Modified
	}
	return p
}

func (e *Engine) commpagePTE() gva.PTE {
	return gva.Make(e.hpaOfFrame(e.commFrame)) | gva.Write | gva.D | gva.Modified | gva.Commpage
}

// Halves of a pair install writes.
const (
	halfEven = 1 << iota
	halfOdd
	halfBoth = halfEven | halfOdd
)

// mapMapped maps va from guest TLB entry ent into the active GVA table
// (kvm_mips_handle_mapped_seg_tlb_fault). The series fills only the
// faulting page; with DirtyLog (Linux 4.11) the buddy is filled too, and
// the pre-series scheme always wrote the pair into the host TLB. A guest
// D=0 page is mapped read-only; a valid half whose frame is not RAM is left
// empty (a later access to it is an internal error in slowFault). In the
// kernel table the commpage slot keeps the commpage.
func (e *Engine) mapMapped(va uint32, ent *cp0.Entry, write bool) {
	pair := va &^ (2*e.pageSize - 1)
	kernel := e.cp.KernelMode()
	halves := uint8(halfBoth)
	if !e.cfg.DirtyLog && !e.cfg.Legacy {
		halves = halfEven << ((va >> e.pageShift) & 1)
	}
	var ptes [2]gva.PTE
	for h := uint32(0); h < 2; h++ {
		hva := pair + h*e.pageSize
		if halves&(halfEven<<h) == 0 {
			continue
		}
		if kernel && hva == e.commpage {
			ptes[h] = e.commpagePTE()
			continue
		}
		lo := ent.Half(hva)
		gpa := cp0.PA(lo, ent.Mask, hva)
		if lo&cp0.EntryLoV == 0 || gpa >= uint64(e.cfg.RAMSize) {
			continue
		}
		ptes[h] = e.ptePage(gpa, lo&cp0.EntryLoD != 0, write && hva == va&^(e.pageSize-1))
	}
	e.install(pair, ptes, halves)
}

// mapKSeg0 maps the guest KSeg0 page of va and its buddy, both RAM
// (kvm_mips_handle_kseg0_tlb_fault): GPA = va - KSeg0 base.
func (e *Engine) mapKSeg0(va uint32, write bool) {
	pair := va &^ (2*e.pageSize - 1)
	var ptes [2]gva.PTE
	for h := uint32(0); h < 2; h++ {
		hva := pair + h*e.pageSize
		ptes[h] = e.ptePage(uint64(hva-cp0.GuestKSeg0), true, write && hva == va&^(e.pageSize-1))
	}
	e.install(pair, ptes, halfBoth)
}

// mapCommpage maps the commpage in the kernel table
// (kvm_mips_handle_commpage_tlb_fault).
func (e *Engine) mapCommpage() {
	pair := e.commpage &^ (2*e.pageSize - 1)
	var ptes [2]gva.PTE
	h := (e.commpage >> e.pageShift) & 1
	ptes[h] = e.commpagePTE()
	e.install(pair, ptes, halfEven<<h)
}

// install writes the given halves of a PTE pair into the active GVA table
// and invalidates the host TLB entry for the pair so that the retry
// refills it (kvm_mips_host_tlb_inv). In Legacy mode the whole pair goes
// straight into the host TLB.
func (e *Engine) install(pair uint32, ptes [2]gva.PTE, halves uint8) {
	if e.cfg.Legacy {
		if !e.faults.NoInstallInvalidate {
			e.host.InvalidateVA(pair, e.hostASID)
		}
		e.host.WriteRandom(hosttlb.Entry{Hi: pair | uint32(e.hostASID), Lo0: ptes[0].EntryLo(), Lo1: ptes[1].EntryLo()})
		return
	}
	t := e.active.table
	for h := uint32(0); h < 2; h++ {
		if halves&(halfEven<<h) != 0 {
			*t.Slot(pair + h*e.pageSize) = ptes[h]
		}
	}
	if !e.faults.NoInstallInvalidate {
		e.host.InvalidateVA(pair, e.hostASID)
	}
}

// kvmAccess is KVM's own access to guest memory: reading the instruction
// to emulate (OpKVMRead) or a CACHE operation (OpCache). It uses user
// access primitives through the active GVA table, so a missing mapping is
// refilled by the fast handler and a fault returns EFAULT instead of
// crashing; the fault is then classified (kvm_trap_emul_gva_fault) into a
// fill-and-retry or an exception to inject. It stores its result in *r.
func (e *Engine) kvmAccess(op *cp0.Op, r *cp0.Result) {
	e.Stats.KVMAccesses++
	va := op.VA
	kernel := e.cp.KernelMode()
	if op.Kind == cp0.OpCache {
		if !kernel {
			*r = e.inject(op, cp0.ExcCpU, false, cp0.FaultNone, 0)
			return
		}
		if va >= cp0.HostKSeg0 {
			if va < cp0.HostKSeg2 {
				*r = cp0.Result{} // host cache op on the KSeg0 alias
				return
			}
			e.Stats.Slow[SlowInternal]++
			*r = cp0.Result{Outcome: cp0.Internal}
			return
		}
	} else {
		if va&3 != 0 || !kernel && va >= cp0.GuestKSeg0 {
			e.Stats.Slow[SlowAddrErr]++
			*r = e.inject(op, cp0.ExcAdEL, false, cp0.FaultAddr, va)
			return
		}
		if va >= cp0.HostKSeg0 {
			e.Stats.Slow[SlowInternal]++
			*r = cp0.Result{Outcome: cp0.Internal}
			return
		}
	}
	for try := 0; try < maxRetries; try++ {
		lo, hit := e.host.Lookup(va, e.hostASID)
		if !hit {
			if done := e.refill(op, va, false, r); done {
				return
			}
			continue
		}
		if lo&hosttlb.LoV == 0 {
			e.Stats.KVMFaults++
			if res, done := e.slowFault(op, va, false); done {
				*r = res
				return
			}
			continue
		}
		if op.Kind == cp0.OpCache {
			*r = cp0.Result{}
			return
		}
		b := e.hostBytes(lo, va)
		*r = cp0.Result{Value: load(b, 4)}
		return
	}
	e.Stats.Livelocks++
	e.Stats.Slow[SlowInternal]++
	*r = cp0.Result{Outcome: cp0.Internal}
}

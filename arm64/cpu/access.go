package cpu

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// granuleFloor is the smallest translation granule: an access that stays
// within one 4KB page needs a single translation.
const granuleFloor = 4096

// Read loads size bytes (1, 2, 4 or 8) from va at the current EL.
func (pe *PE) Read(va mem.VA, size int, in Insn) (uint64, Exception) {
	pe.Stats.Loads++
	return pe.data(va, size, 0, false, in)
}

// Write stores the low size bytes of v to va at the current EL.
func (pe *PE) Write(va mem.VA, size int, v uint64, in Insn) Exception {
	pe.Stats.Stores++
	_, e := pe.data(va, size, v, true, in)
	return e
}

// CompareAndSwap64 is an atomic compare-and-swap of the aligned 64-bit
// word at va at the current EL (CASAL Xs, Xt, [Xn]): translated as a write,
// since an atomic needs write permission, then one single-copy atomic
// compare-and-swap in memory. It reports whether the word held old. An
// unaligned address takes an Alignment fault (the LSE atomics require
// alignment, AArch64.CheckAlignment with the atomic access type).
func (pe *PE) CompareAndSwap64(va mem.VA, old, new uint64, in Insn) (bool, Exception) {
	pe.Stats.Stores++
	if va&7 != 0 {
		return false, pe.alignment(va, true)
	}
	pa, e := pe.translate(va, pe.access(vmsa.Write), 8, in, true)
	if e.Taken() {
		return false, e
	}
	swapped, ok := pe.Mem.CompareAndSwap64(pa, old, new)
	if !ok {
		return false, pe.external(va, vmsa.Write, true)
	}
	return swapped, Exception{}
}

// TranslateData translates va for a data access of size bytes (1, 2, 4
// or 8, not crossing a page) at the current EL as Read and Write do —
// alignment, VA checks, TLB, walk, hardware updates — without accessing
// memory; on a fault the PE takes the exception. An interpreter uses it
// where the architecture translates before deciding to access (a store
// exclusive's monitor check, a CAS whose comparison fails, cache
// maintenance by VA).
func (pe *PE) TranslateData(va mem.VA, size int, write bool, in Insn) (mem.PA, Exception) {
	acc, aligned, e := pe.dataAccess(va, size, write, in)
	if e.Taken() {
		return 0, e
	}
	pa, e := pe.translate(va, acc, size, in, aligned)
	if !e.Taken() {
		pe.LastPA = pa
	}
	return pa, e
}

// AlignmentFault takes a stage-1 Alignment fault for a data access at va
// (AArch64.AlignmentFault): for accesses wider than Read and Write make,
// such as a 16-byte exclusive pair, whose alignment the caller checks.
func (pe *PE) AlignmentFault(va mem.VA, write bool) Exception { return pe.alignment(va, write) }

// Fetch reads the 32-bit instruction at va at the current EL.
func (pe *PE) Fetch(va mem.VA) (uint32, Exception) {
	v, _, e := pe.FetchPA(va)
	return v, e
}

// FetchPA is Fetch also returning the physical address the instruction
// was read from (an interpreter's decoded-instruction cache is keyed by it).
func (pe *PE) FetchPA(va mem.VA) (uint32, mem.PA, Exception) {
	if w, pa, e, done := pe.fetchHit(va); done {
		return w, pa, e
	}
	return pe.fetchFull(va)
}

// fetchFull is FetchPA through translate: everything fetchHit does not
// complete.
func (pe *PE) fetchFull(va mem.VA) (uint32, mem.PA, Exception) {
	pe.Stats.Fetches++
	if va&3 != 0 {
		// PC alignment fault: ESR EC 0x22, FAR = the PC.
		e := Exception{Kind: InstructionAbort, FromEL: pe.EL, TargetEL: pe.targetEL(), FAR: va,
			ESR: sysreg.ESR(0x22<<26 | 1<<25)}
		pe.TakeException(&e)
		return 0, 0, e
	}
	pa, e := pe.translate(va, pe.access(vmsa.Fetch), 4, Insn{}, true)
	if e.Taken() {
		return 0, 0, e
	}
	v, ok := pe.Mem.Read(pa, 4)
	if !ok {
		return 0, 0, pe.external(va, vmsa.Fetch, false)
	}
	pe.LastPA = pa
	return uint32(v), pa, Exception{}
}

// targetEL is where a stage-1 exception from the current EL goes.
func (pe *PE) targetEL() uint8 {
	if pe.EL == 2 || pe.Regs.HCR_EL2.TGE() {
		return 2
	}
	return 1
}

func (pe *PE) data(va mem.VA, size int, v uint64, write bool, in Insn) (uint64, Exception) {
	if size != 1 && size != 2 && size != 4 && size != 8 {
		// No load or store has another size: a caller bug, not guest input.
		panic(fmt.Sprintf("cpu: access size %d is not 1, 2, 4 or 8", size))
	}
	kind := vmsa.Read
	if write {
		kind = vmsa.Write
	}
	acc, aligned, e := pe.dataAccess(va, size, write, in)
	if e.Taken() {
		return 0, e
	}
	if uint64(va)%granuleFloor+uint64(size) > granuleFloor {
		// Crosses a page: each byte is its own access, in address order
		// (Mem[]: an unaligned access is made of single-byte accesses, each
		// unaligned as far as the Device-memory check goes), so that a fault
		// reports the address of the byte that faulted. Bytes stored before
		// a fault may have been written: the architecture permits it.
		var out uint64
		for i := 0; i < size; i++ {
			bva := va + mem.VA(i)
			pa, e := pe.translate(bva, acc, size, in, false)
			if e.Taken() {
				return 0, e
			}
			pe.LastPA = pa
			if write {
				if !pe.Mem.Write(pa, 1, v>>(8*i)&0xff) {
					return 0, pe.external(bva, kind, write)
				}
				continue
			}
			b, ok := pe.Mem.Read(pa, 1)
			if !ok {
				return 0, pe.external(bva, kind, write)
			}
			out |= b << (8 * i)
		}
		return out, Exception{}
	}
	pa, e := pe.translate(va, acc, size, in, aligned)
	if e.Taken() {
		return 0, e
	}
	pe.LastPA = pa
	if write {
		if !pe.Mem.Write(pa, size, v) {
			return 0, pe.external(va, kind, write)
		}
		return 0, Exception{}
	}
	r, ok := pe.Mem.Read(pa, size)
	if !ok {
		return 0, pe.external(va, kind, write)
	}
	return r, Exception{}
}

// dataAccess is the access descriptor of a data access and whether it is
// aligned, or the Alignment fault it takes: AArch64.CheckAlignment
// precedes translation, so the fault reports the access's VA and is a
// stage-1 fault (never to EL2 as a stage-2 one).
func (pe *PE) dataAccess(va mem.VA, size int, write bool, in Insn) (vmsa.Access, bool, Exception) {
	kind := vmsa.Read
	if write {
		kind = vmsa.Write
	}
	acc := pe.access(kind)
	if in.Unprivileged {
		acc.EL, acc.PAN = 0, false
	}
	aligned := uint64(va)&uint64(size-1) == 0
	if !aligned && pe.alignmentChecked(va, size, in) {
		return acc, false, pe.alignment(va, write)
	}
	return acc, aligned, Exception{}
}

// sctlrNAA is SCTLR_ELx.nAA (FEAT_LSE2).
const sctlrNAA = 1 << 6

// alignmentChecked is the decision of AArch64.CheckAlignment for an
// unaligned data access of size bytes at va, with the SCTLR of the current
// translation regime (SCTLR_EL1 for EL1&0, SCTLR_EL2 for EL2 and EL2&0):
// SCTLR_ELx.A=1 checks every access. Load-acquire/store-release
// instructions (in.Valid && in.AcqRel) are checked regardless of A; with
// FEAT_LSE2 (ID_AA64MMFR2_EL1.AT >= 1) only when the access is not within
// one aligned 16-byte quantity and SCTLR_ELx.nAA is 0. Exclusives and
// atomics are not distinguished by Insn and follow the ordinary rule.
func (pe *PE) alignmentChecked(va mem.VA, size int, in Insn) bool {
	sctlr := pe.Regs.SCTLR_EL1
	if pe.ctx().regime != vmsa.RegimeEL10 {
		sctlr = pe.Regs.SCTLR_EL2
	}
	if sctlr.A() {
		return true
	}
	lse2 := uint64(pe.Regs.MMFR2)>>32&0xf >= 1
	if in.Exclusive {
		return !lse2 || uint64(va)&15+uint64(size) > 16
	}
	if !in.Valid || !in.AcqRel {
		return false
	}
	if lse2 {
		return uint64(va)&15+uint64(size) > 16 && uint64(sctlr)&sctlrNAA == 0
	}
	return true
}

// fscAlignment is the Alignment fault status code (DFSC 0b100001).
const fscAlignment = 0b100001

// alignment takes a stage-1 Alignment fault (AArch64.AlignmentFault): a
// Data Abort with DFSC 0b100001, WnR, FAR = va, routed as any stage-1
// Data Abort (to EL2 from EL2 or with HCR_EL2.TGE=1, otherwise EL1).
func (pe *PE) alignment(va mem.VA, write bool) Exception {
	kind := vmsa.Read
	if write {
		kind = vmsa.Write
	}
	return pe.takeAbort(vmsa.Fault{Write: write}, fscAlignment, va, vmsa.Access{Kind: kind, EL: pe.EL}, 0, Insn{})
}

// translateUnaligned translates a data access that is not aligned to its
// size. Device memory does not support unaligned accesses: the walk
// reports an Alignment fault at the stage whose memory type is Device
// (AArch64.S1HasAlignmentFault, checked after the stage-1 walk and before
// the stage-1 permissions; AArch64.S2HasAlignmentFault likewise at stage
// 2). With stage 1 disabled data accesses are Device-nGnRnE unless
// HCR_EL2.DC is 1 (AArch64.S1DisabledOutput), so an unaligned access
// with the MMU off faults. The TLB is not consulted (a walk is always
// permitted): its entries keep only the combined attributes, and with
// HCR_EL2.FWB a Normal result may hide a Device stage 1.
//
// The memory type behind a permission fault is found by a second walk
// without permission checks; with TCR.HA that walk may set the Access
// flag of a location whose access then takes a Permission fault, which
// AArch64.SettingAccessFlagPermitted leaves CONSTRAINED UNPREDICTABLE.
func (pe *PE) translateUnaligned(va mem.VA, acc vmsa.Access, size int, in Insn) (mem.PA, Exception) {
	c := pe.ctx()
	w := &pe.Walker
	r := &pe.Regs
	pe.Stats.Walks++
	write := acc.Kind == vmsa.Write
	probe := vmsa.Access{Kind: vmsa.Read, EL: acc.EL, NoPerm: true}
	s1only := vmsa.TranslateOptions{Stage1Only: true}
	s1 := w.Translate(r, c.regime, va, acc, s1only)
	if f := s1.Fault; f.IsFault() {
		if f.Kind == vmsa.FaultPermission && !f.Stage2 {
			if p := w.Translate(r, c.regime, va, probe, s1only); !p.Fault.IsFault() && p.Attrs.Type == vmsa.Device {
				return 0, pe.alignment(va, write)
			}
		}
		return 0, pe.abort(f, va, acc, size, in)
	}
	if s1.Attrs.Type == vmsa.Device {
		return 0, pe.alignment(va, write)
	}
	if c.regime != vmsa.RegimeEL10 || !vmsa.S2Enabled(r) {
		if pe.TLB != nil {
			pe.TLB.Fill(c.regime, c.vmid, va, &s1)
		}
		return s1.OA, Exception{}
	}
	// Stage 1 is Normal: a Device result comes from stage 2.
	tr := w.Translate(r, c.regime, va, acc, vmsa.TranslateOptions{})
	f := tr.Fault
	if !f.IsFault() {
		if tr.Attrs.Type == vmsa.Device {
			return 0, pe.s2Alignment(va, tr.IPA, acc, size, in)
		}
		if pe.TLB != nil {
			pe.TLB.Fill(c.regime, c.vmid, va, &tr)
		}
		return tr.OA, Exception{}
	}
	if f.Kind == vmsa.FaultPermission && f.Stage2 && !f.S1PTW {
		if p := w.Translate(r, c.regime, va, probe, vmsa.TranslateOptions{}); !p.Fault.IsFault() && p.Attrs.Type == vmsa.Device {
			return 0, pe.s2Alignment(va, p.IPA, acc, size, in)
		}
	}
	return 0, pe.abort(f, va, acc, size, in)
}

// s2Alignment takes a stage-2 Alignment fault: to EL2 with HPFAR and,
// for an instruction with a syndrome, ISV=1 (AArch64.FaultSyndrome gives
// the instruction syndrome for every stage-2 fault not on a stage-1 walk).
func (pe *PE) s2Alignment(va mem.VA, ipa mem.IPA, acc vmsa.Access, size int, in Insn) Exception {
	f := vmsa.Fault{Stage2: true, IPA: ipa, Write: acc.Kind == vmsa.Write}
	return pe.takeAbort(f, fscAlignment, va, acc, size, in)
}

// external takes a synchronous External abort, not on a walk (FSC
// 0b010000): the PA the access translated to has no memory. It is routed
// as a stage-1 abort (External aborts are not stage-2 faults), and to EL2
// by HCR_EL2.TEA. ISS.EA is IMPLEMENTATION DEFINED: the model reports 0.
func (pe *PE) external(va mem.VA, kind vmsa.AccessKind, write bool) Exception {
	target := pe.targetEL()
	if pe.Regs.HCR_EL2.Has(hcrTEA) {
		target = 2
	}
	fetch := kind == vmsa.Fetch
	ec := uint64(sysreg.ECDataAbortSame)
	if fetch {
		ec = uint64(sysreg.ECInstrAbortSame)
	}
	if target > pe.EL {
		ec--
	}
	iss := uint64(0b010000)
	if write {
		iss |= 1 << 6
	}
	e := Exception{Kind: DataAbort, FromEL: pe.EL, TargetEL: target, FAR: va, External: true,
		ESR: sysreg.ESR(ec<<26 | 1<<25 | iss)}
	if fetch {
		e.Kind = InstructionAbort
	}
	pe.TakeException(&e)
	return e
}

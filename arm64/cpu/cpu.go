// Package cpu models one AArch64 processing element as the memory system
// sees it: the current exception level and PSTATE.PAN, the translation
// registers, a TLB, and the operations that use them — loads, stores and
// instruction fetches at an EL, MSR/MRS of the memory-system registers,
// TLBI and AT — with exception entry that reports ESR, FAR and HPFAR
// exactly as the architecture does (DDI 0487, D1.10 and the ESR_ELx ISS
// encodings for Data and Instruction Aborts and trapped System
// instructions).
//
// Accesses follow the hardware: the VA checks of AArch64.S1Translate, then
// the TLB, then on a miss the translation walk of package vmsa, whose
// result fills the TLB. A fault is an exception: the PE takes it (EL,
// syndrome registers and PSTATE change) and the access returns it, so that
// a hypervisor model handles it at EL2, executes ERET and retries.
package cpu

import (
	"fmt"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// DataMemory is physical memory with data accesses of 1, 2, 4 or 8 bytes
// (hostmem.Arena and mem.Flat provide it).
type DataMemory interface {
	mem.Memory
	Read(pa mem.PA, size int) (uint64, bool)
	Write(pa mem.PA, size int, v uint64) bool
}

// WordMemory is a DataMemory that can give the PE its words, from base
// (little-endian: byte i of a word is its bits 8i+7:8i): the PE's hit path
// (ReadHit, WriteHit) then loads and stores aligned data with atomic
// accesses of them instead of a call per access. ok is false when every
// access must go through Read and Write (a view that checks them).
type WordMemory interface {
	Words() (base mem.PA, words []uint64, ok bool)
}

// FrameCheckedMemory is a WordMemory whose every access must be checked
// against its frames (hostmem.Checked with PoisonFreed: an access to a
// free frame is counted). Its hit path keeps the words and the check:
// before each aligned load or store it loads the reference count of the
// frame (2^shift bytes) holding the word, refs[(pa-base)>>shift], and
// calls StaleAccess(pa, size) when it is not positive, as the view's Read
// and Write do. ok is false when the words are not given.
type FrameCheckedMemory interface {
	CheckedWords() (base mem.PA, words []uint64, refs []atomic.Int32, shift uint, ok bool)
	StaleAccess(pa mem.PA, size uint64)
}

// Insn is the instruction syndrome a load or store can report in
// ESR_EL2.ISS when a stage-2 fault is taken to EL2 (ISV=1): the transfer
// register, sign extension, register width and acquire/release. Valid is
// false for instructions whose syndrome the architecture does not report
// (pairs, writeback forms, SIMD, ...).
type Insn struct {
	Valid      bool
	Reg        uint8 // SRT
	SignExtend bool  // SSE
	SixtyFour  bool  // SF
	AcqRel     bool  // AR
	// Exclusive marks a load/store exclusive or an LSE atomic: its
	// alignment is always checked (AArch64.UnalignedAccessFaults: with
	// FEAT_LSE2 only when it leaves its aligned 16-byte quantity).
	Exclusive bool
	// Unprivileged marks LDTR/STTR and friends executed where they act as
	// EL0 accesses (the caller decides: EL1, or EL2 with {E2H,TGE}={1,1},
	// with PSTATE.UAO 0): EL0 permissions, PSTATE.PAN ignored.
	Unprivileged bool
}

// ExceptionKind classifies an exception.
type ExceptionKind uint8

// Exception kinds.
const (
	NoException ExceptionKind = iota
	DataAbort
	InstructionAbort
	SysTrap        // a trapped MSR/MRS/SYS instruction (EC 0x18)
	Undefined      // EC 0x00
	ERETTrap       // a trapped ERET (EC 0x1A)
	IRQ            // an interrupt: no syndrome, the vector's IRQ entry (+0x80)
	SupervisorCall // SVC (EC 0x15)
	// Exceptions an instruction interpreter generates (their ESR says
	// which): HVC and SMC (EC 0x16, 0x17), BRK (EC 0x3C), a trapped
	// WFI/WFE (EC 0x01), the Illegal Execution state exception (EC 0x0E),
	// an SP alignment fault (EC 0x26), an FP/SIMD access trap (EC 0x07).
	HypervisorCall
	SecureMonitorCall
	Breakpoint
	WFxTrap
	IllegalState
	SPAlignment
	FPAccess
	SVEAccess // an SVE access trap (EC 0x19)
)

func (k ExceptionKind) String() string {
	names := [...]string{"none", "data abort", "instruction abort", "system instruction trap", "undefined", "ERET trap", "IRQ",
		"supervisor call", "hypervisor call", "secure monitor call", "breakpoint", "WFx trap", "illegal execution state",
		"SP alignment", "FP access trap", "SVE access trap"}
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("ExceptionKind(%d)", uint8(k))
}

// Exception is an exception the PE took.
type Exception struct {
	Kind     ExceptionKind
	FromEL   uint8
	TargetEL uint8
	ESR      sysreg.ESR
	// FAR is the faulting virtual address of an abort (FAR_ELx).
	FAR mem.VA
	// HPFAR is what HPFAR_EL2 holds after an exception taken to EL2: the
	// faulting IPA where the architecture writes it (IPAValid), else the
	// PE's UnknownHPFAR. Zero for exceptions taken to EL1.
	HPFAR sysreg.HPFAR
	// Fault is the translation fault behind an abort.
	Fault vmsa.Fault
	// External marks a synchronous External abort on a data access (no
	// memory at the PA).
	External bool
}

// Taken reports whether an exception was taken.
func (e Exception) Taken() bool { return e.Kind != NoException }

func (e Exception) String() string {
	if !e.Taken() {
		return "no exception"
	}
	s := fmt.Sprintf("%s EL%d->EL%d ESR %#x FAR %#x", e.Kind, e.FromEL, e.TargetEL, uint64(e.ESR), e.FAR)
	if e.Fault.Stage2 {
		s += fmt.Sprintf(" HPFAR %#x", uint64(e.HPFAR))
	}
	return s
}

// Stats counts what the PE did.
type Stats struct {
	Loads, Stores, Fetches uint64
	TLBHits, Walks         uint64
	Exceptions             uint64
	TLBIs, ATs             uint64
	// WalkReads is a histogram of the walks made on TLB misses by the
	// number of descriptors each read (both stages; the last bucket
	// counts that many or more).
	WalkReads [WalkReadsBuckets]uint64
}

// WalkReadsBuckets is the size of the Stats.WalkReads histogram: room for
// the 124 reads of a software three-stage walk of four levels each.
const WalkReadsBuckets = 128

// PE is one processing element. It is not safe for concurrent use; run
// each PE on its own goroutine over a shared DataMemory.
//
// Its architectural state is PSTATE (EL, SP, PAN, DAIF, NZCV, IL), the PC,
// the translation registers the walker reads (Regs), and the exception
// and nested-virtualization registers below; the system instructions
// reach them through one encoding table (sysinsn.go).
type PE struct {
	ID   int
	Regs vmsa.Regs
	// PSTATE: the current EL, SP (SP_ELx selected rather than SP_EL0),
	// PAN, the D, A, I, F masks (bits 3..0), the N, Z, C, V flags (bits
	// 3..0) and IL (an illegal exception return was made).
	EL   uint8
	SP   bool
	PAN  bool
	DAIF uint8
	NZCV uint8
	IL   bool
	// LastPA is the physical address of the last data access that
	// completed (of its last byte for one that crossed a page) and of the
	// last fetch: what an interpreter's exclusive monitor records.
	LastPA mem.PA
	// PC is the address of the instruction being executed: exception
	// entry saves it in ELR_ELx (the preferred return address of a
	// synchronous exception) and ERET restores it. The PE does not
	// advance it; whoever executes instructions does.
	PC  mem.VA
	PAR sysreg.PAR
	// ESR, FAR, ELR, SPSR and VBAR of EL1 and EL2 at [1] and [2].
	ESR   [3]sysreg.ESR
	FAR   [3]uint64
	ELR   [3]mem.VA
	SPSR  [3]uint64
	VBAR  [3]mem.VA
	HPFAR sysreg.HPFAR
	// VNCR is VNCR_EL2 (FEAT_NV2): the base of the memory that EL1
	// accesses to some registers are redirected to with HCR_EL2.NV2.
	VNCR uint64
	// Mem is the PE's memory. After replacing it call RegsChanged: the
	// hit path keeps the words of a WordMemory.
	Mem    DataMemory
	Walker vmsa.Walker
	// TLB caches translations; nil walks on every access.
	TLB *tlb.TLB
	// Domain, when set, receives the Inner/Outer Shareable TLBIs (and
	// holds TLB as Domain.TLBs[ID]).
	Domain *tlb.Domain
	Stats  Stats

	// Deviations reproduces behaviours of QEMU 10.0 that the architecture
	// does not allow, for differential testing against it (docs/A64.md).
	// Zero (the architecture) unless a comparison asks for them.
	Deviations Deviation

	// UnknownHPFAR is the value HPFAR_EL2[43:4] takes where the
	// architecture makes it UNKNOWN: on every exception taken to EL2 that
	// is not a stage-2 fault IPAValid lists, and on a return to EL1 or EL0
	// ("execution at EL1 or EL0 makes HPFAR_EL2 become UNKNOWN"). New sets
	// DefaultUnknownHPFAR.
	UnknownHPFAR sysreg.HPFAR

	// Last is the last exception TakeException took (for software that
	// stands in for a higher EL's handler, such as a host hypervisor under
	// an interpreter).
	Last Exception

	c translationContext
	// hitAbort is the External abort ReadHit or WriteHit took last.
	hitAbort Exception
}

// translationContext is derived from the registers and EL; it is
// recomputed when either changes (MSR, exception entry and return,
// RegsChanged).
type translationContext struct {
	valid   bool
	regime  vmsa.Regime
	vmid    uint16
	asid    uint16
	check   vmsa.VACheck
	dataPAN bool
	// s2only: EL1&0 with stage 1 disabled and stage 2 enabled, so that
	// translations are cached as stage-2-only entries (IPA = VA).
	s2only bool

	// The hit path's (ReadHit, WriteHit): hit says it applies (not
	// stage-2-only); a data access's VA passes check when va&vaMask[h] ==
	// vaWant[h], h being VA[55]&vaSel; hitR, hitW and hitX are the TLB
	// keys of a load, a store and an instruction fetch; words (from
	// wbase) are the memory's, when it gives them (WordMemory).
	hit              bool
	vaSel            uint64
	vaMask, vaWant   [2]uint64
	hitR, hitW, hitX tlb.HitKey
	wbase            mem.PA
	words            []uint64
	// refs, fshift and stale: the frame check of a FrameCheckedMemory
	// (none: unchecked, shift 63).
	refs   []atomic.Int32
	fshift uint
	stale  FrameCheckedMemory
}

// Deviation is a set of QEMU behaviours a PE can reproduce.
type Deviation uint8

const (
	// DeviationDeviceUnaligned: an unaligned data access to Device memory
	// completes instead of taking an Alignment fault (QEMU 10.0.2; the
	// architecture: AArch64.S1HasAlignmentFault, AArch64.S2HasAlignmentFault).
	DeviationDeviceUnaligned Deviation = 1 << iota
	// DeviationATSetsDirty: AT S1E1W and S1E0W executed at EL1 update the
	// stage-1 dirty state as a store would (QEMU 10.0.2; the architecture
	// excludes AccessType_AT from dirty-state updates in AArch64.S1Translate).
	DeviationATSetsDirty
	// DeviationS1PTWWnR: a stage-2 fault on a stage-1 walk reports WnR of
	// the access, not 1 for the walk's hardware update of a descriptor
	// (QEMU 10.0.2; the architecture: the update is a write, so
	// AArch64.S2Translate's fault has write set).
	DeviationS1PTWWnR
)

// DefaultUnknownHPFAR is the deterministic stand-in for an UNKNOWN
// HPFAR_EL2: FIPA 0xbad_bad_bad, the IPA 0xbad_bad_bad_000, obviously not
// the faulting one, so a hypervisor that trusts HPFAR_EL2 where the
// architecture does not write it handles the wrong address.
const DefaultUnknownHPFAR sysreg.HPFAR = 0xbad_bad_bad << 4

// hpfarFIPA is the part of HPFAR_EL2 exception entry writes, bits [43:4].
const hpfarFIPA = sysreg.HPFAR(1<<44 - 1<<4)

// New returns a PE at el over memory m with the given registers and TLB
// (which may be nil).
func New(id int, regs vmsa.Regs, el uint8, m DataMemory, t *tlb.TLB) *PE {
	pe := &PE{ID: id, Regs: regs, EL: el, Mem: m, TLB: t, UnknownHPFAR: DefaultUnknownHPFAR}
	pe.Walker.Mem = m
	return pe
}

// RegsChanged must be called after Regs, EL, PAN or Mem are modified
// directly (MSR, exception entry and ERET do it themselves).
func (pe *PE) RegsChanged() { pe.c.valid = false }

// Regime returns the stage-1 regime of accesses at the current EL.
func (pe *PE) Regime() vmsa.Regime {
	h := pe.Regs.HCR_EL2
	switch {
	case pe.EL == 2 && h.E2H():
		return vmsa.RegimeEL20
	case pe.EL == 2:
		return vmsa.RegimeEL2
	case pe.EL == 0 && h.E2H() && h.TGE():
		return vmsa.RegimeEL20
	}
	return vmsa.RegimeEL10
}

func (pe *PE) ctx() *translationContext {
	if pe.c.valid {
		return &pe.c
	}
	r := &pe.Regs
	c := &pe.c
	c.regime = pe.Regime()
	c.vmid = r.VTTBR_EL2.VMID(r.VTCR_EL2.VS() && r.MMFR1.VMIDBits() == 2)
	tcr, t0, t1 := r.TCR_EL1, r.TTBR0_EL1, r.TTBR1_EL1
	if c.regime == vmsa.RegimeEL20 {
		tcr, t0, t1 = sysreg.TCR(r.TCR_EL2), r.TTBR0_EL2, r.TTBR1_EL2
	}
	asidTTBR := t0
	if tcr.A1() {
		asidTTBR = t1
	}
	c.asid = asidTTBR.ASID()
	if !tcr.AS() || r.MMFR0.ASIDBits() != 2 {
		c.asid &= 0xff
	}
	c.check = vmsa.NewVACheck(r, c.regime)
	c.s2only = c.regime == vmsa.RegimeEL10 && !vmsa.S1Enabled(r, c.regime) && vmsa.S2Enabled(r)
	// PSTATE.PAN restricts privileged data accesses in regimes with EL0.
	c.dataPAN = pe.PAN && pe.EL != 0 && c.regime != vmsa.RegimeEL2 && r.MMFR1.PAN() >= 1
	if _, nv1, _ := pe.nvState(); nv1 && c.regime == vmsa.RegimeEL10 {
		c.dataPAN = false // HCR_EL2.{NV,NV1}={1,1}: PSTATE.PAN has no effect
	}
	c.hit = !c.s2only
	two, mask, want := c.check.DataPass(pe.EL == 0)
	c.vaSel, c.vaMask, c.vaWant = 0, mask, want
	if two {
		c.vaSel = 1
	}
	c.hitR = tlb.NewHitKey(c.regime, c.vmid, c.asid, vmsa.Access{Kind: vmsa.Read, EL: pe.EL, PAN: c.dataPAN})
	c.hitW = tlb.NewHitKey(c.regime, c.vmid, c.asid, vmsa.Access{Kind: vmsa.Write, EL: pe.EL, PAN: c.dataPAN})
	c.hitX = tlb.NewHitKey(c.regime, c.vmid, c.asid, vmsa.Access{Kind: vmsa.Fetch, EL: pe.EL})
	c.wbase, c.words, c.refs, c.fshift, c.stale = 0, nil, unchecked[:], 63, nil
	if m, ok := pe.Mem.(WordMemory); ok {
		if base, words, ok := m.Words(); ok {
			c.wbase, c.words = base, words
		} else if m, ok := pe.Mem.(FrameCheckedMemory); ok {
			if base, words, refs, shift, ok := m.CheckedWords(); ok {
				c.wbase, c.words, c.refs, c.fshift, c.stale = base, words, refs, shift, m
			}
		}
	}
	c.valid = true
	return c
}

// access returns the access descriptor of a data access or fetch at the current EL.
func (pe *PE) access(k vmsa.AccessKind) vmsa.Access {
	c := pe.ctx()
	a := vmsa.Access{Kind: k, EL: pe.EL}
	if k != vmsa.Fetch {
		a.PAN = c.dataPAN
	}
	return a
}

// Translate translates va for an access at the current EL through the TLB
// and, on a miss, the walk. On a fault the PE takes the exception.
func (pe *PE) Translate(va mem.VA, acc vmsa.Access) (mem.PA, Exception) {
	return pe.translate(va, acc, 0, Insn{}, true)
}

// translate translates va for acc; size and in give the syndrome of a
// stage-2 abort, aligned says whether a data access is aligned to its size.
func (pe *PE) translate(va mem.VA, acc vmsa.Access, size int, in Insn, aligned bool) (mem.PA, Exception) {
	c := pe.ctx()
	if c.check.FaultKind(va, acc) != vmsa.FaultNone {
		// The Fault only when there is one: a Fault kept in the common
		// case was stored byte by byte and copied whole (a
		// store-forwarding stall on every translation).
		return 0, pe.abort(c.check.Check(va, acc), va, acc, size, in)
	}
	if !aligned && acc.Kind != vmsa.Fetch && pe.Deviations&DeviationDeviceUnaligned == 0 {
		return pe.translateUnaligned(va, acc, size, in)
	}
	if pe.TLB != nil {
		var e tlb.Entry
		var res tlb.Result
		if c.s2only {
			// AArch64.S1DisabledOutput: the IPA is the VA (its top byte
			// dropped), cached as a stage-2-only entry.
			e, res = pe.TLB.LookupS2(c.vmid, mem.IPA(va&(1<<52-1)), acc)
		} else if pe.TLB.RepeatMiss(c.regime, c.vmid, c.asid, va, acc) {
			// The hit path (ReadHit, WriteHit) has just missed this
			// lookup: the miss is counted, the walk follows.
			res = tlb.Miss
		} else {
			e, res = pe.TLB.Lookup(c.regime, c.vmid, c.asid, va, acc)
		}
		if res == tlb.Hit {
			pe.Stats.TLBHits++
			return e.OA | mem.PA(va)&(1<<e.SizeBits-1), Exception{}
		}
		if res == tlb.PermissionFault {
			// The TLB's cached permissions deny the access
			// (tlb.Config.HoldPermissions): the fault is the entry's.
			addr := uint64(va)
			if c.s2only {
				addr &= 1<<52 - 1
			}
			return 0, pe.abort(e.PermissionFault(addr, acc), va, acc, size, in)
		}
	}
	pe.Stats.Walks++
	reads := pe.Walker.Stats.DescReads
	var tr vmsa.Translation
	pe.Walker.TranslateInto(&tr, &pe.Regs, c.regime, va, acc, vmsa.TranslateOptions{})
	pe.Stats.WalkReads[min(pe.Walker.Stats.DescReads-reads, WalkReadsBuckets-1)]++
	if tr.Fault.Kind != vmsa.FaultNone {
		return 0, pe.abort(tr.Fault, va, acc, size, in)
	}
	if pe.TLB != nil {
		if i := uint64(tr.OA-c.wbase) >> 3; i < uint64(len(c.words)) {
			// The access follows the fill: start bringing its word in.
			mem.Prefetch(&c.words[i])
		}
		pe.TLB.Fill(c.regime, c.vmid, va, &tr)
	}
	return tr.OA, Exception{}
}

// abort builds and takes the Data or Instruction Abort for fault f.
func (pe *PE) abort(f vmsa.Fault, va mem.VA, acc vmsa.Access, size int, in Insn) Exception {
	return pe.takeAbort(f, f.FSC(), va, acc, size, in)
}

// takeAbort takes a Data or Instruction Abort with fault status code fsc
// (AArch64.DataAbort, AArch64.InstructionAbort): routed to EL2 from EL2,
// for a stage-2 fault, with HCR_EL2.TGE=1, or for a synchronous External
// abort on a walk with HCR_EL2.TEA=1; otherwise to EL1. The ISS is that of
// AArch64.FaultSyndrome: FSC, S1PTW, WnR (data only; EA, CM, FnV and SET
// are 0) and the instruction syndrome when ISV is 1.
func (pe *PE) takeAbort(f vmsa.Fault, fsc uint8, va mem.VA, acc vmsa.Access, size int, in Insn) Exception {
	h := pe.Regs.HCR_EL2
	target := uint8(1)
	switch {
	case f.Stage2, pe.EL == 2, h.TGE():
		target = 2
	case f.Kind == vmsa.FaultSyncExternalOnWalk && h.Has(hcrTEA):
		target = 2 // HCR_EL2.TEA routes synchronous External aborts to EL2
	}
	fetch := acc.Kind == vmsa.Fetch
	ec := sysreg.ECDataAbortSame
	if fetch {
		ec = sysreg.ECInstrAbortSame
	}
	if target > pe.EL {
		ec-- // the "from a lower Exception level" class is one below
	}
	iss := uint64(fsc)
	if f.S1PTW {
		iss |= 1 << 7
	}
	if !fetch {
		w := f.Write
		if f.S1PTW && pe.Deviations&DeviationS1PTWWnR != 0 {
			w = acc.Kind == vmsa.Write
		}
		if w {
			iss |= 1 << 6
		}
		// ISV: only for stage-2 faults taken to EL2 from a lower EL that
		// are not on a stage-1 walk, for instructions with a syndrome.
		if in.Valid && f.Stage2 && !f.S1PTW && pe.EL < 2 {
			iss |= 1 << 24
			iss |= uint64(sizeLog2(size)) << 22
			if in.SignExtend {
				iss |= 1 << 21
			}
			iss |= uint64(in.Reg&31) << 16
			if in.SixtyFour {
				iss |= 1 << 15
			}
			if in.AcqRel {
				iss |= 1 << 14
			}
		}
	}
	e := Exception{Kind: DataAbort, FromEL: pe.EL, TargetEL: target, FAR: va, Fault: f,
		ESR: sysreg.ESR(uint64(ec)<<26 | 1<<25 | iss)}
	if fetch {
		e.Kind = InstructionAbort
	}
	pe.TakeException(&e)
	return e
}

// ipaValid is the pseudocode's IPAValid: HPFAR_EL2 reports the IPA of a
// stage-2 Translation, Access flag or Address size fault, and also of a
// Permission fault when it is on a stage-1 table walk (S1PTW). Not for a
// synchronous External abort, a stage-2 Alignment fault or a stage-2
// Permission fault of the access itself.
func ipaValid(e *Exception) bool {
	f := e.Fault
	if (e.Kind != DataAbort && e.Kind != InstructionAbort) || e.External {
		return false
	}
	return at.IPAValid(f)
}

const hcrTEA sysreg.HCR = 1 << 37

func sizeLog2(n int) uint {
	switch n {
	case 2:
		return 1
	case 4:
		return 2
	case 8:
		return 3
	}
	return 0
}

// TakeException performs exception entry for e (AArch64.TakeException),
// as the PE does for the exceptions its own operations generate and as a
// hypervisor injecting an exception into its guest wants: ESR (and FAR for
// aborts) of the target EL; for an exception to EL2, HPFAR_EL2[43:4]
// (AArch64.ReportException: the faulting IPA when IPAValid, else UNKNOWN,
// here UnknownHPFAR; e.HPFAR gets the new value); SPSR_ELx from PSTATE,
// ELR_ELx = PC, PC = VBAR_ELx plus the offset of a synchronous exception
// (0x000 or 0x200 from the same EL with SP_EL0 or SP_ELx, 0x400 from a lower
// EL using AArch64; 0x80 more for an IRQ, which writes no ESR), then PSTATE: the new EL, SP_ELx, D, A, I and F masked,
// IL cleared, and PAN set on entry to EL1 (and to EL2 with {E2H,TGE}={1,1})
// when SCTLR_ELx.SPAN is 0. e.FromEL is set to the current EL.
func (pe *PE) TakeException(e *Exception) {
	e.FromEL = pe.EL
	pe.Stats.Exceptions++
	t := e.TargetEL
	h := pe.Regs.HCR_EL2
	spsr := pe.spsrOfPSTATE()
	if pe.EL == 1 && t == 1 && h.NV() && (h.NV2() || !h.NV1()) && pe.Regs.MMFR2.NV() >= 1 {
		// I_ZJRNN, I_DBTLM: with HCR_EL2.NV (and NV1=0 unless NV2), an
		// exception from EL1 to EL1 reports EL2 in SPSR_EL1.M[3:2].
		spsr = spsr&^(3<<2) | 2<<2
	}
	pe.SPSR[t] = spsr
	pe.ELR[t] = pe.PC
	if e.Kind != IRQ {
		pe.ESR[t] = e.ESR
	}
	if e.Kind == DataAbort || e.Kind == InstructionAbort {
		pe.FAR[t] = uint64(e.FAR)
	}
	if t == 2 {
		if ipaValid(e) {
			pe.HPFAR = pe.HPFAR&^hpfarFIPA | sysreg.HPFARFor(uint64(e.Fault.IPA))
		} else {
			pe.HPFAR = pe.HPFAR&^hpfarFIPA | pe.UnknownHPFAR&hpfarFIPA
		}
		e.HPFAR = pe.HPFAR
	}
	pe.PC = pe.VBAR[t]&^0x7ff + VectorOffset(pe.EL, pe.SP, t)
	if e.Kind == IRQ {
		pe.PC += 0x80
	}
	pe.EL, pe.SP, pe.DAIF, pe.IL = t, true, 0xf, false
	switch {
	case t == 1 && !pe.Regs.SCTLR_EL1.SPAN() && pe.Regs.MMFR1.PAN() >= 1:
		pe.PAN = true
	case t == 2 && h.E2H() && h.TGE() && !pe.Regs.SCTLR_EL2.SPAN() && pe.Regs.MMFR1.PAN() >= 1:
		pe.PAN = true
	}
	pe.c.valid = false
	pe.Last = *e
}

// VectorOffset is the offset in the vector table of ELt of a synchronous
// exception taken from fromEL with PSTATE.SP = sp (sp is ignored from a
// lower EL): 0x000 from the same EL using SP_EL0, 0x200 using SP_ELx, 0x400
// from a lower EL using AArch64 (AArch64.TakeException).
func VectorOffset(fromEL uint8, sp bool, t uint8) mem.VA {
	switch {
	case fromEL < t:
		return 0x400
	case sp:
		return 0x200
	}
	return 0
}

// SPSR fields (SPSR_ELx for exceptions taken from AArch64).
const (
	spsrM    = 0xf     // M[3:0]: EL in [3:2], SP in [0]
	spsrM4   = 1 << 4  // M[4]: AArch32
	spsrDAIF = 6       // D, A, I, F at [9:6]
	spsrIL   = 1 << 20 // IL
	spsrPAN  = 1 << 22 // PAN
	spsrNZCV = 28      // N, Z, C, V at [31:28]
)

// spsrOfPSTATE is the SPSR value exception entry saves (GetPSRFromPSTATE).
func (pe *PE) spsrOfPSTATE() uint64 {
	v := uint64(pe.EL)<<2 | uint64(pe.NZCV&0xf)<<spsrNZCV | uint64(pe.DAIF&0xf)<<spsrDAIF
	if pe.SP {
		v |= 1
	}
	if pe.PAN {
		v |= spsrPAN
	}
	if pe.IL {
		v |= spsrIL
	}
	return v
}

// ERET returns from the current EL to the state in SPSR_ELx and ELR_ELx
// (AArch64.ExceptionReturn). It is UNDEFINED at EL0 and trapped to EL2 from
// EL1 with HCR_EL2.NV=1 (EC 0x1A, ISS 0 for ERET). An illegal return
// (IllegalExceptionReturn: AArch32 state, a higher EL than the current one,
// EL3, EL0 with SP_ELx, EL1 from EL2 with HCR_EL2.TGE=1) keeps the EL and
// SP, sets PSTATE.IL and restores the rest. It returns the exception taken
// instead of returning, if any.
func (pe *PE) ERET() Exception {
	if pe.EL == 0 {
		return pe.undefined()
	}
	h := pe.Regs.HCR_EL2
	if pe.EL == 1 && h.NV() && pe.Regs.MMFR2.NV() >= 1 {
		e := Exception{Kind: ERETTrap, TargetEL: 2, ESR: sysreg.ESR(uint64(ecERETTrap)<<26 | 1<<25)}
		pe.TakeException(&e)
		return e
	}
	spsr := pe.SPSR[pe.EL]
	pe.PC = pe.ELR[pe.EL]
	el, sp := uint8(spsr>>2&3), spsr&1 == 1
	illegal := spsr&spsrM4 != 0 || el > pe.EL || el == 3 || (el == 0 && sp) ||
		(pe.EL == 2 && el == 1 && h.TGE())
	if illegal {
		pe.IL = true
	} else {
		pe.EL, pe.SP, pe.IL = el, sp, spsr&spsrIL != 0
	}
	if pe.EL < 2 {
		// Execution at EL1 or EL0 makes HPFAR_EL2 become UNKNOWN.
		pe.HPFAR = pe.HPFAR&^hpfarFIPA | pe.UnknownHPFAR&hpfarFIPA
	}
	pe.PAN = spsr&spsrPAN != 0
	pe.DAIF = uint8(spsr>>spsrDAIF) & 0xf
	pe.NZCV = uint8(spsr>>spsrNZCV) & 0xf
	pe.c.valid = false
	return Exception{}
}

// ecERETTrap is the exception class of a trapped ERET, ERETAA or ERETAB.
const ecERETTrap = 0x1a

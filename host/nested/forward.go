package nested

import (
	"fmt"
	"math/bits"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// Trap forwarding. While the guest hypervisor's guest (L2) runs, the PE's
// HCR_EL2 is L0's own controls for it OR the trap controls of the guest
// hypervisor's virtual HCR_EL2 that the modelled PE implements, so the PE
// traps to L0 everything either asked for. L0 then triages the exit: its
// own business first (shadow stage-2 faults, the VNCR page it keeps for
// L2), then what the guest hypervisor's HCR_EL2 traps is injected into
// vEL2 exactly as the hardware would have taken it there (the syndrome of
// the trap, ELR_EL2 and SPSR_EL2 of L2, the vector for a lower EL), and
// what only L0's own controls trap L0 emulates.

// HCR_EL2 trap controls.
const (
	// forwardControls are the trap controls of the guest hypervisor's
	// HCR_EL2 that L0 mirrors while its guest runs: every one the PE
	// implements for instructions and register accesses at EL1 (docs/PE.md):
	// FEAT_NV's NV, NV1, NV2 and AT, the TLB maintenance traps TTLB,
	// TTLBIS and TTLBOS, the virtual memory controls TVM and TRVM, the
	// ID group 3 trap TID3 and TACR (ACTLR_EL1).
	forwardControls = sysreg.HCR_NV | sysreg.HCR_NV1 | sysreg.HCR_NV2 | sysreg.HCR_AT |
		sysreg.HCR_TTLB | sysreg.HCR_TTLBIS | sysreg.HCR_TTLBOS | sysreg.HCR_TVM | hcrTRVM | hcrTID3 | hcrTACR
	// l2OwnTraps are L0's own trap controls while the guest's guest runs:
	// its ID register reads return the guest hypervisor's sanitized values
	// (the PE it believes it has) unless the guest hypervisor traps them.
	l2OwnTraps = hcrTID3
)

// effectiveControls returns the trap controls of a guest hypervisor's
// HCR_EL2 h that have an effect on the PE it believes it has (its ID
// registers ids): FEAT_NV's controls (NV, NV1, NV2, AT) only as far as
// ID_AA64MMFR2_EL1.NV offers them, and NV1, NV2 only with NV
// (EffectiveHCR_EL2_NVx); a control the PE lacks is RES0.
func effectiveControls(h sysreg.HCR, ids *IDRegs) sysreg.HCR {
	c := h & forwardControls
	lvl := ids.MMFR2.NV()
	if lvl < 1 {
		c &^= sysreg.HCR_NV | sysreg.HCR_NV1 | sysreg.HCR_NV2 | sysreg.HCR_AT
	}
	if lvl < 2 {
		c &^= sysreg.HCR_NV2
	}
	if !c.NV() {
		c &^= sysreg.HCR_NV1 | sysreg.HCR_NV2
	}
	return c
}

// l2HCR is the PE's HCR_EL2 while the guest hypervisor's guest runs
// (nestedHCR on L0's controls for any guest).
func (v *VCPU) l2HCR(vhcr sysreg.HCR) sysreg.HCR { return nestedHCR(kvm.GuestHCR, vhcr, &v.vm.ids) }

// trapOracle answers whether an HCR_EL2 value makes an instruction trap to
// EL2, by executing it on a scratch PE at the trapping world's EL with that
// HCR_EL2 and ID registers: the one routing table of package cpu decides,
// so the triage and the PE never disagree. (Whether one of these
// instructions traps at EL1 depends on nothing else.)
type trapOracle struct {
	pe  *cpu.PE
	ram *mem.Flat
}

// decodedTrap is an instruction trapped with EC 0x18 or 0x1A.
type decodedTrap struct {
	eret                    bool
	op0, op1, crn, crm, op2 uint8
	rt                      uint8
	read                    bool
}

// decodeTrap decodes the syndrome of a trapped System instruction (the ISS
// for EC 0x18: Op0 [21:20], Op2 [19:17], Op1 [16:14], CRn [13:10], Rt
// [9:5], CRm [4:1], Direction [0]) or a trapped ERET (EC 0x1A).
func decodeTrap(esr sysreg.ESR) (decodedTrap, bool) {
	switch esr.EC() {
	case 0x1a:
		return decodedTrap{eret: true}, true
	case sysreg.ECSysRegTrap:
		iss := uint64(esr.ISS())
		return decodedTrap{op0: uint8(iss >> 20 & 3), op2: uint8(iss >> 17 & 7), op1: uint8(iss >> 14 & 7),
			crn: uint8(iss >> 10 & 0xf), rt: uint8(iss >> 5 & 0x1f), crm: uint8(iss >> 1 & 0xf), read: iss&1 == 1}, true
	}
	return decodedTrap{}, false
}

// atOpFromSys returns the AT operation with a System instruction encoding.
func atOpFromSys(op0, op1, crn, crm, op2 uint8) (at.Op, bool) {
	for _, o := range at.Ops() {
		a, b, c, d, e := o.Encoding()
		if a == op0 && b == op1 && c == crn && d == crm && e == op2 {
			return o, true
		}
	}
	return 0, false
}

// traps reports whether the instruction of the trap t, executed at EL el,
// traps to EL2 with HCR_EL2 = h and the ID registers ids.
func (o *trapOracle) traps(el uint8, t decodedTrap, h sysreg.HCR, ids *IDRegs) bool {
	if o.pe == nil {
		o.ram, _ = mem.NewFlat(0, 4096)
		o.pe = cpu.New(0, vmsa.Regs{}, 1, o.ram, nil)
	}
	pe := o.pe
	// A redirected FEAT_NV2 access lands in the scratch RAM (EL2 MMU off,
	// VNCR_EL2 0); a walk of AT over it reads zeros.
	pe.Regs = vmsa.Regs{HCR_EL2: h | sysreg.HCR_RW, MMFR0: ids.MMFR0, MMFR1: ids.MMFR1, MMFR2: ids.MMFR2, ISAR2: sysreg.DefaultISAR2}
	pe.EL, pe.SP, pe.PAN, pe.VNCR, pe.PC = el, true, false, 0, 0
	pe.RegsChanged()
	var e cpu.Exception
	switch {
	case t.eret:
		pe.SPSR[pe.EL], pe.ELR[pe.EL] = uint64(pe.EL)<<2|1, 0
		e = pe.ERET()
	case t.op0 == 1 && t.crn == 8:
		op, ok := tlb.OpFromSys(t.op0, t.op1, t.crn, t.crm, t.op2)
		if !ok {
			return false
		}
		e = pe.TLBI(op, t.rt, 0)
	case t.op0 == 1 && t.crn == 7:
		op, ok := atOpFromSys(t.op0, t.op1, t.crn, t.crm, t.op2)
		if !ok {
			return false
		}
		e = pe.AT(op, t.rt, 0)
	default:
		r, ok := cpu.SysRegByEncoding(t.op0, t.op1, t.crn, t.crm, t.op2)
		if !ok {
			return false
		}
		if t.read {
			_, e = pe.MRS(r, t.rt)
		} else {
			e = pe.MSR(r, t.rt, 0)
		}
	}
	return e.TargetEL == 2 && (e.Kind == cpu.SysTrap || e.Kind == cpu.ERETTrap)
}

// l2Trap triages a trapped instruction of the guest's guest (EC 0x18 or
// 0x1A taken to L0): forwarded to vEL2 when the guest hypervisor's HCR_EL2
// traps it, emulated by L0 when only L0's own controls do.
func (v *VCPU) l2Trap(e cpu.Exception) (Exit, bool, error) {
	t, ok := decodeTrap(e.ESR)
	if !ok {
		return Exit{}, false, fmt.Errorf("%w: L2 took %v", ErrUnhandled, e)
	}
	v.stats.L2Traps++
	ids := v.vm.ids
	if !t.eret && cpu.IDGroup3(t.op0, t.op1, t.crn, t.crm) {
		// HCR_EL2.TID3 traps all of ID group 3, also the registers the
		// oracle's PE model does not have.
		if effectiveControls(v.vHCR(), &ids).Has(hcrTID3) {
			v.stats.ForwardedTraps++
			return v.forwardTrap(e)
		}
		return Exit{}, true, v.idAccess(t.op0, t.op1, t.crn, t.crm, t.op2, t.rt, t.read)
	}
	if v.fwd.oracle.traps(e.FromEL, t, effectiveControls(v.vHCR(), &ids), &ids) || v.keptEL2Trap(t, &ids) ||
		v.keptTrapL1(t, e.FromEL) || tacrTrap(t, e.FromEL, effectiveControls(v.vHCR(), &ids)) {
		v.stats.ForwardedTraps++
		return v.forwardTrap(e)
	}
	host := v.vm.k.Host().ID()
	hostIDs := IDRegs{MMFR0: host.MMFR0, MMFR1: host.MMFR1, MMFR2: host.MMFR2}
	if v.fwd.oracle.traps(e.FromEL, t, l2OwnTraps, &hostIDs) && !t.eret && t.op0 == 3 && t.read {
		if r, ok := cpu.SysRegByEncoding(t.op0, t.op1, t.crn, t.crm, t.op2); ok {
			if x, ok := v.vm.ids.value(r); ok {
				v.setXreg(t.rt, x)
				v.skip()
				return Exit{}, true, v.eret()
			}
		}
	}
	if v.onPE && !t.eret && v.keptByPE(t) {
		// A register the PE keeps outside its model that only L0's own
		// controls trap (keptOnPE): L0 performs the access on it.
		return Exit{}, true, v.keptAccess(t)
	}
	return Exit{}, false, fmt.Errorf("%w: L2's trap %v is neither L0's nor the guest hypervisor's", ErrUnhandled, e)
}

// tacrTrap reports whether t is an access at EL1 to ACTLR_EL1, a register
// the oracle's PE does not model, trapped by HCR_EL2.TACR in h.
func tacrTrap(t decodedTrap, el uint8, h sysreg.HCR) bool {
	return !t.eret && el == 1 && h.Has(hcrTACR) && t.op0 == 3 && t.op1 == 0 && t.crn == 1 && t.crm == 0 && t.op2 == 1
}

// keptEL2Trap reports whether t is an access at EL1 to an EL2 register
// (op0 3, op1 4, or 5 for the *_EL12 and *_EL02 names) that the PE keeps
// outside its register model (an interpreter's: SP_EL1, TPIDR_EL2, ...),
// which the oracle's PE cannot execute, with the guest hypervisor's
// effective HCR_EL2.NV: at EL1 such an access is UNDEFINED without NV and
// trapped to EL2 with it (EC 0x18), so the trap is the guest hypervisor's.
func (v *VCPU) keptEL2Trap(t decodedTrap, ids *IDRegs) bool {
	if t.eret || t.op0 != 3 || (t.op1 != 4 && t.op1 != 5) || !effectiveControls(v.vHCR(), ids).NV() {
		return false
	}
	_, modelled := cpu.SysRegByEncoding(t.op0, t.op1, t.crn, t.crm, t.op2)
	return !modelled
}

// value returns the ID register r as the guest hypervisor reads it.
func (ids *IDRegs) value(r cpu.SysReg) (uint64, bool) {
	switch r {
	case cpu.ID_AA64MMFR0_EL1:
		return uint64(ids.MMFR0), true
	case cpu.ID_AA64MMFR1_EL1:
		return uint64(ids.MMFR1), true
	case cpu.ID_AA64MMFR2_EL1:
		return uint64(ids.MMFR2), true
	}
	return 0, false
}

// forwardTrap injects a trap of the guest's guest into vEL2 as the PE would
// have taken it to the guest hypervisor's EL2 (AArch64.TakeException): ESR_EL2
// the trap's syndrome (EC 0x18 with its ISS, or EC 0x1A), ELR_EL2 the
// trapped instruction, SPSR_EL2 the guest's PSTATE, HPFAR_EL2 UNKNOWN (no
// abort), FAR_EL2 unchanged (UNKNOWN for a trap), and the synchronous
// vector for a lower EL (+0x400). Then the guest hypervisor's code runs.
func (v *VCPU) forwardTrap(e cpu.Exception) (Exit, bool, error) {
	far := mem.VA(v.other.r[farIndex])
	if err := v.toVEL2(e.ESR, far, HPFARUnknown, 0x400, true); err != nil {
		return Exit{}, false, err
	}
	return v.runGuestHypervisor()
}

// farIndex is FAR_EL1's place in el1Regs (FAR_EL2 of the guest hypervisor
// while its guest runs).
var farIndex = func() int {
	for i, r := range el1Regs {
		if r == cpu.FAR_EL1 {
			return i
		}
	}
	panic("nested: FAR_EL1 is not a world-switched register")
}()

// forwardState is a nested vCPU's state for its guest's traps: the trap
// oracle, and the FEAT_NV2 page L0 keeps while the guest is itself a guest
// hypervisor run with the guest hypervisor's HCR_EL2.NV2.
type forwardState struct {
	oracle trapOracle
	vncr   vncrMirror
}

// vncrMirror is how L0 gives the guest's guest FEAT_NV2 when the guest
// hypervisor runs it with HCR_EL2.{NV,NV2}={1,1} (a guest hypervisor L2):
// the hardware must then redirect L2's register accesses to the guest
// hypervisor's page at its VNCR_EL2.BADDR, a VA of its own EL2 regime. L0
// translates that VA through the guest hypervisor's stage 1 (in software,
// over its memory) and copies the page's registers into a frame of its own
// that the PE's VNCR_EL2 points to while L2 runs, and back into the guest
// hypervisor's memory when it runs again (it cannot run meanwhile on this
// vCPU, so it observes every register L2 wrote). A translation that faults
// leaves VNCR_EL2 pointing nowhere: L2's first redirected access aborts to
// L0 with ISS.VNCR, and L0 forwards the fault of the guest hypervisor's
// stage 1 as the Data Abort the guest hypervisor would take (ISS.VNCR set,
// FAR_EL2 the address accessed). Mainline maps the guest hypervisor's page
// at L0's EL2 instead (a per-CPU fixmap with a software TLB invalidated by
// MMU notifiers and by the guest hypervisor's EL2 TLBIs).
type vncrMirror struct {
	frame  mem.PA  // L0's frame (allocated on first use)
	va     mem.VA  // the guest hypervisor's VNCR_EL2.BADDR
	l1     mem.IPA // where the translation of va found the page
	active bool    // the frame holds the page's registers
}

// vncrPoison is a VNCR_EL2 value that makes every redirected access abort:
// a VA beyond the PA size, untranslated in L0's EL2 regime (MMU off).
const vncrPoison = 1<<52 - 1<<12

// vncrMirrored are the offsets in a VNCR page of the registers the PE
// places there: the PE model's, and SP_EL1 (0x240), TPIDR_EL2 (0x090),
// CPACR_EL1 (0x100), nv2EL1Kept and the kept EL2 registers with an offset
// (keptEL2Regs), which a PE that keeps them outside its model (an
// interpreter's) redirects there too (code on the PE, onpe.go).
var vncrMirrored = func() []uint16 {
	offs := []uint16{offSPEL1, offTPIDREL2, offCPACREL1}
	for _, k := range nv2EL1Kept {
		offs = append(offs, k.off)
	}
	for _, k := range keptEL2Regs {
		if k.slot < 0 {
			offs = append(offs, k.off) // VPIDR_EL2, VMPIDR_EL2, CNTVOFF_EL2, HSTR_EL2
		}
	}
	for _, r := range append([]cpu.SysReg{cpu.HCR_EL2, cpu.VTTBR_EL2, cpu.VTCR_EL2, cpu.VNCR_EL2}, el1Regs[:]...) {
		off, _ := r.VNCROffset()
		offs = append(offs, off)
	}
	return offs
}()

// l1OwnRegs returns the registers of the guest hypervisor's own EL2 regime
// as the PE runs it (on EL1&0, with NV1 for E2H=0), with stage 2 off: its
// stage 1 translated in software over its memory outputs its IPAs.
func (v *VCPU) l1OwnRegs() vmsa.Regs {
	r := v.pe.Regs
	if v.inL2 {
		for i, reg := range el1Regs {
			switch reg {
			case cpu.SCTLR_EL1:
				r.SCTLR_EL1 = sysreg.SCTLR(v.other.r[i])
			case cpu.TCR_EL1:
				r.TCR_EL1 = sysreg.TCR(v.other.r[i])
			case cpu.TTBR0_EL1:
				r.TTBR0_EL1 = sysreg.TTBR(v.other.r[i])
			case cpu.TTBR1_EL1:
				r.TTBR1_EL1 = sysreg.TTBR(v.other.r[i])
			case cpu.MAIR_EL1:
				r.MAIR_EL1 = sysreg.MAIR(v.other.r[i])
			}
		}
	}
	r.HCR_EL2 = sysreg.HCR_RW
	if !v.vm.cfg.E2H {
		r.HCR_EL2 |= sysreg.HCR_NV | sysreg.HCR_NV1
	}
	return r
}

// translateVNCR translates the guest hypervisor's VNCR_EL2.BADDR for an
// access (write or read) through its own stage 1 over its memory.
func (v *VCPU) translateVNCR(write bool) (mem.IPA, vmsa.Fault) {
	r := v.l1OwnRegs()
	acc := vmsa.Access{Kind: vmsa.Read, EL: 1}
	if write {
		acc.Kind = vmsa.Write
	}
	tr := v.walker.Translate(&r, vmsa.RegimeEL10, v.fwd.vncr.va, acc, vmsa.TranslateOptions{})
	if tr.Fault.IsFault() {
		return 0, tr.Fault
	}
	return l1IPA(tr.OA), vmsa.Fault{}
}

// vncrEnter prepares FEAT_NV2 for the guest's guest on entry (h: the PE's
// HCR_EL2 for it). The guest hypervisor's own regime is still on the PE.
func (v *VCPU) vncrEnter(h sysreg.HCR) error {
	m := &v.fwd.vncr
	m.active = false
	if !h.NV2() {
		return nil
	}
	if m.frame == 0 {
		pa, err := v.allocFrame()
		if err != nil {
			return err
		}
		m.frame = pa
	}
	m.va = mem.VA(v.vncrGet(offVNCR) &^ 0xfff)
	v.pe.VNCR = vncrPoison
	// A fault, or no memory behind the page, is taken lazily: on L2's
	// first redirected access, as the hardware would.
	if ipa, f := v.translateVNCR(true); !f.IsFault() {
		_ = v.vncrLoad(ipa)
	}
	return nil
}

// vncrLoad copies the guest hypervisor's page at L1 IPA ipa into L0's frame
// and points the PE's VNCR_EL2 at it.
func (v *VCPU) vncrLoad(ipa mem.IPA) error {
	m := &v.fwd.vncr
	h := v.vm.k.Host()
	ee := sysreg.SCTLR(v.ownReg(cpu.SCTLR_EL2)).EE()
	g := guestMemory{v.vm.k, v.vm}
	for _, off := range vncrMirrored {
		x, ok := g.Read64(mem.PA(ipa) + mem.PA(off))
		if !ok {
			return fmt.Errorf("nested: the guest hypervisor's VNCR page at L1 IPA %#x has no memory", uint64(ipa))
		}
		h.Arena().Write64(m.frame+mem.PA(off), swapIf(ee, x))
	}
	m.l1, m.active = ipa, true
	v.pe.VNCR = uint64(m.frame)
	v.stats.VNCRSyncs++
	return nil
}

// vncrExit writes L2's registers back into the guest hypervisor's page.
func (v *VCPU) vncrExit() error {
	m := &v.fwd.vncr
	if !m.active {
		return nil
	}
	m.active = false
	ee := sysreg.SCTLR(v.ownReg(cpu.SCTLR_EL2)).EE()
	a := v.vm.k.Host().Arena()
	for _, off := range vncrMirrored {
		x, _ := a.Read64(m.frame + mem.PA(off))
		if err := v.writeL1(m.l1+mem.IPA(off), swapIf(ee, x)); err != nil {
			return err
		}
	}
	v.stats.VNCRSyncs++
	return nil
}

func swapIf(ee bool, x uint64) uint64 {
	if ee {
		return bits.ReverseBytes64(x)
	}
	return x
}

// writeL1 stores a word of the guest hypervisor's memory at L1 IPA ipa (as
// KVM writes guest memory: through the memslot's HVA, marking it dirty).
func (v *VCPU) writeL1(ipa mem.IPA, x uint64) error {
	k := v.vm.k
	s := k.Lookup(ipa)
	if s == nil {
		return fmt.Errorf("nested: L1 IPA %#x has no memory", uint64(ipa))
	}
	if err := k.AddressSpace().Write(s.HVAOf(ipa), 8, x); err != nil {
		return err
	}
	k.MarkDirty(ipa)
	v.vm.guestWritten(ipa, 8)
	return nil
}

// vncrAbort handles an abort of a FEAT_NV2 access of the guest's guest
// (ISS.VNCR): L0's frame was not ready. The guest hypervisor's stage 1 is
// walked again; its fault is the guest hypervisor's to handle, taken as
// the hardware would: a Data Abort from a lower EL with ISS.VNCR, WnR and
// the fault's status code, FAR_EL2 the address accessed (UNKNOWN HPFAR_EL2).
func (v *VCPU) vncrAbort(e cpu.Exception) (Exit, bool, error) {
	m := &v.fwd.vncr
	if m.active {
		return Exit{}, false, fmt.Errorf("%w: FEAT_NV2 access of L2 aborted on L0's frame: %v", ErrUnhandled, e)
	}
	v.stats.VNCRFaults++
	write := e.ESR.WnR()
	ipa, f := v.translateVNCR(write)
	fsc := f.FSC()
	if !f.IsFault() {
		if err := v.vncrLoad(ipa); err == nil {
			return Exit{}, true, v.eret()
		}
		fsc = 0b010000 // no memory behind the page: a synchronous External abort
	}
	v.stats.Forwarded++
	esr := uint64(sysreg.ECDataAbortLower)<<26 | 1<<25 | 1<<13 | uint64(fsc)
	if write {
		esr |= 1 << 6
	}
	far := m.va | e.FAR&0xfff
	if err := v.toVEL2(sysreg.ESR(esr), far, HPFARUnknown, 0x400, true); err != nil {
		return Exit{}, false, err
	}
	return v.runGuestHypervisor()
}

// allocFrame takes a zeroed host frame for L0's own use.
func (v *VCPU) allocFrame() (mem.PA, error) {
	h := v.vm.k.Host()
	pa, err := s2pt.ArenaTables{Arena: h.Arena()}.AllocTable(h.PageSize())
	if err != nil {
		return 0, fmt.Errorf("nested: VNCR frame: %w", err)
	}
	return pa, nil
}

func (m *vncrMirror) close(v *VCPU) error {
	if m.frame == 0 {
		return nil
	}
	h := v.vm.k.Host()
	err := s2pt.ArenaTables{Arena: h.Arena()}.FreeTable(m.frame, h.PageSize())
	m.frame = 0
	return err
}

// execL2 runs one instruction of the guest's guest (f, on the PE) until it
// completes: exits to L0 are handled (shadow faults, L0's own traps, traps
// and faults forwarded to the guest hypervisor, whose code runs). The
// instruction is retried while the PC stays on it, completed when a
// hypervisor moved the PC past it (it emulated it) and abandoned when the
// guest hypervisor entered a world of another stage 2 (its VTTBR_EL2
// changed: ExitSwitched). advance: the PC moves on by 4 when it executes
// without an exception (every instruction but ERET, which completes once
// it trapped and was handled).
func (v *VCPU) execL2(f func() cpu.Exception, advance bool) (Exit, error) {
	for n := 0; n < maxRetries; n++ {
		pc := v.pe.PC
		e, err := v.k.Exec(f, false)
		if err != nil {
			return Exit{}, err
		}
		if v.observer != nil {
			v.observer.Executed(e)
		}
		if !e.Taken() {
			if advance {
				v.pe.PC += 4
			}
			return Exit{}, nil
		}
		if e.TargetEL != 2 {
			return Exit{Reason: ExitL2Exception, Exception: e}, nil
		}
		world := v.vncrGet(offVTTBR) // the guest hypervisor's stage 2 for L2
		exit, retry, err := v.l2Exit(e)
		if err != nil || !retry {
			return exit, err
		}
		if !v.inL2 {
			return Exit{Reason: ExitVEL2}, nil
		}
		if !advance {
			return Exit{}, nil
		}
		if v.vncrGet(offVTTBR) != world {
			// The guest hypervisor entered a world of another stage 2.
			return Exit{Reason: ExitSwitched}, nil
		}
		if v.pe.PC != pc {
			return Exit{}, nil
		}
	}
	return Exit{}, fmt.Errorf("nested: the L2 instruction at %#x makes no progress", uint64(v.pe.PC))
}

// GPRFrame is implemented by an EL2 that gives a guest hypervisor's code
// the general-purpose registers of the world that took the exception it
// handles, as its vector code would have saved them (a hypervisor's
// vcpu_gp_regs): what it reads and writes there is what that world finds
// in its registers when the guest hypervisor returns to it.
type GPRFrame interface {
	GuestGPRs() *[31]uint64
}

// GuestGPRs implements GPRFrame: at vEL2, after an exception from the
// guest's guest, its registers (nil while the guest runs).
func (v *VCPU) GuestGPRs() *[31]uint64 {
	if v.inL2 {
		return nil
	}
	return &v.other.x
}

// L2CPU executes instructions of the guest's guest on the PE, with every
// trap and fault the architecture gives it: the EL2 interface of a guest
// hypervisor (L2) that the guest hypervisor (L1) runs at its virtual EL2
// (L1's HCR_EL2.NV set for it), whose instructions trap to L0 and are
// forwarded to L1, or (FEAT_NV2) reach the VNCR page. Each instruction
// names X0 as its transfer register and completes when the PC moves past
// it. It is valid while the vCPU runs L2.
type L2CPU struct{ v *VCPU }

// L2 returns the executor of the guest's guest's instructions.
func (v *VCPU) L2() *L2CPU { return &L2CPU{v} }

// ErrLeftL2 is returned by an L2CPU instruction when the exception it took
// left the vCPU at vEL2 (the guest hypervisor did not return to it).
var ErrLeftL2 = fmt.Errorf("nested: the guest hypervisor did not return to its guest")

func (c *L2CPU) run(f func() cpu.Exception, advance bool) error {
	v := c.v
	if !v.inL2 {
		return ErrNotL2
	}
	if v.mmio {
		return kvm.ErrPendingMMIO
	}
	exit, err := v.execL2(f, advance)
	if err != nil {
		return err
	}
	switch exit.Reason {
	case ExitNone:
		return nil
	case ExitL2Exception:
		return &GuestException{Exception: exit.Exception}
	case ExitVEL2, ExitSwitched:
		return ErrLeftL2
	}
	return fmt.Errorf("%w: L2's instruction at %#x is an MMIO access at L1 IPA %#x", ErrUnhandled, uint64(v.pe.PC), exit.MMIO.IPA)
}

// MRS implements EL2.
func (c *L2CPU) MRS(r cpu.SysReg) (uint64, error) {
	pe, x := c.v.pe, &c.v.k.Ctx().X
	err := c.run(func() cpu.Exception {
		val, e := pe.MRS(r, 0)
		if !e.Taken() {
			x[0] = val
		}
		return e
	}, true)
	return x[0], err
}

// MSR implements EL2.
func (c *L2CPU) MSR(r cpu.SysReg, val uint64) error {
	pe, x := c.v.pe, &c.v.k.Ctx().X
	x[0] = val
	return c.run(func() cpu.Exception { return pe.MSR(r, 0, x[0]) }, true)
}

// Load implements EL2.
func (c *L2CPU) Load(va mem.VA, size int) (uint64, error) {
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return 0, fmt.Errorf("nested: access size %d is not 1, 2, 4 or 8", size)
	}
	pe, x := c.v.pe, &c.v.k.Ctx().X
	err := c.run(func() cpu.Exception {
		val, e := pe.Read(va, size, cpu.Insn{Valid: true, SixtyFour: true})
		if !e.Taken() {
			x[0] = val
		}
		return e
	}, true)
	return x[0], err
}

// Store implements EL2.
func (c *L2CPU) Store(va mem.VA, size int, val uint64) error {
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return fmt.Errorf("nested: access size %d is not 1, 2, 4 or 8", size)
	}
	pe, x := c.v.pe, &c.v.k.Ctx().X
	x[0] = val
	return c.run(func() cpu.Exception { return pe.Write(va, size, x[0], cpu.Insn{Valid: true, SixtyFour: true}) }, true)
}

// CompareAndSwap64 implements EL2.
func (c *L2CPU) CompareAndSwap64(va mem.VA, old, new uint64) (bool, error) {
	var swapped bool
	pe := c.v.pe
	err := c.run(func() cpu.Exception {
		s, e := pe.CompareAndSwap64(va, old, new, cpu.Insn{})
		swapped = s
		return e
	}, true)
	return swapped, err
}

// TLBI implements EL2.
func (c *L2CPU) TLBI(op tlb.Op, xt uint64) error {
	pe, x := c.v.pe, &c.v.k.Ctx().X
	x[0] = xt
	return c.run(func() cpu.Exception { return pe.TLBI(op, 0, x[0]) }, true)
}

// AT executes AT op for va and returns PAR_EL1.
func (c *L2CPU) AT(op at.Op, va mem.VA) (sysreg.PAR, error) {
	pe, x := c.v.pe, &c.v.k.Ctx().X
	x[0] = uint64(va)
	err := c.run(func() cpu.Exception { return pe.AT(op, 0, mem.VA(x[0])) }, true)
	return pe.PAR, err
}

// ERET implements EL2: for a guest hypervisor, trapped (HCR_EL2.NV) and
// forwarded to the guest hypervisor, which enters the world SPSR_EL2 names.
func (c *L2CPU) ERET() error {
	return c.run(func() cpu.Exception { return c.v.pe.ERET() }, false)
}

var _ EL2 = (*L2CPU)(nil)

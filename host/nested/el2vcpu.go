package nested

import (
	"errors"
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/mmio"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// Recursion. A guest hypervisor (L1) that runs a guest hypervisor of its
// own (L2, which runs L3) does for L2 what L0 does for L1: it gives L2 a
// virtual EL2 (its HCR_EL2.NV, and NV2 with a VNCR page in its memory),
// emulates the instructions of L2 that trap to it, and runs L2's guests on
// shadow stage-2 tables in its own memory (L3 IPA -> L1 IPA, composed from
// L2's stage 2 in L2's memory and its own stage 2 for L2). EL2VCPU is that
// engine: the same decisions as VCPU (core.go, forward.go, walkGuestS2),
// on the hardware L1 has, the EL2 interface, instead of the PE. L0 sees
// none of it: L1's shadow is just L1's stage 2 for a guest, which L0
// shadows again; what L1's HCR_EL2 traps L0 forwards to L1 (forward.go).

// Mapping is a leaf of a stage 2: [Base, Base+Size) -> Out with Prot.
type Mapping struct {
	Base mem.IPA
	Out  mem.PA
	Size uint64
	Prot s2pt.Prot
}

// Platform is what the hypervisor that runs an EL2VCPU provides besides the
// instructions of its EL2: its stage 2 for the VM whose vCPU runs the guest
// hypervisor (in its memory: the canonical stage 2 at this level) and
// stage-2 tables in its memory for the shadows. Its IPAs are the
// "physical" addresses of the tables it manages (mem.PA in s2pt's terms).
type Platform interface {
	// Resolve returns the leaf that maps the guest hypervisor's IPA ipa,
	// mapping it first as the platform's fault path would (a write: with
	// write permission); an error wrapping kvm.ErrNoMemory when no memory
	// backs it.
	Resolve(ipa mem.IPA, write bool) (Mapping, error)
	// Lookup returns the leaf that maps ipa now, changing nothing.
	Lookup(ipa mem.IPA) (Mapping, bool)
	// NewStage2 makes empty stage-2 tables in the platform's memory whose
	// TLB maintenance the platform issues with VMID vmid.
	NewStage2(cfg s2pt.Config, vmid uint16) (*s2pt.VM, *s2pt.Cache, error)
	// VTTBR and VTCR are the VM's VTTBR_EL2 (root and VMID) and VTCR_EL2.
	VTTBR() uint64
	VTCR() sysreg.VTCR
	// SetStage2 loads a stage 2 into VTTBR_EL2 and VTCR_EL2 (the platform
	// knows what it last wrote, and its own TLB maintenance loads the
	// stage 2 it invalidates: a range TLBI's BaseADDR units follow the
	// VTCR_EL2.DS in effect).
	SetStage2(vttbr uint64, vtcr sysreg.VTCR) error
}

// EL2Config describes how a hypervisor runs a guest hypervisor.
type EL2Config struct {
	// Mode: FEAT_NV (every EL2 register access of the guest hypervisor
	// traps to this hypervisor) or FEAT_NV2 (those with a VNCR offset are
	// accesses to the page at VNCR).
	Mode Mode
	// VNCR is, with ModeNV2, the page holding the guest hypervisor's
	// registers: a VA of the hypervisor's own EL2 regime (its IPA: the
	// hypervisor's MMU is off), page aligned.
	VNCR mem.VA
	// OwnE2H: the hypervisor itself runs with HCR_EL2.E2H=1 and reaches its
	// guest's EL1 registers by their *_EL12 names (else by *_EL1).
	OwnE2H bool
	// ShadowVMIDs are the VMIDs the hypervisor gives its shadow stage 2s,
	// one per shadow (nil: 0x100 and 0x101).
	ShadowVMIDs []uint16
	// Bus is the device model of the hypervisor's VMM for the VM: the MMIO
	// accesses of the guest hypervisor and of its guests that reach its
	// IPAs without memory (nil: such an access is an error matching
	// ErrNoDevice).
	Bus mmio.Bus
	// NoReverseMap and ReverseMapExtents are Config's: without the map a
	// change of the hypervisor's stage 2 for the VM empties or
	// write-protects every shadow whole (as mainline KVM).
	NoReverseMap      bool
	ReverseMapExtents int
}

// EL2Stats count an EL2VCPU's work: the exceptions taken to the hypervisor
// by cause, and what it did about them.
type EL2Stats struct {
	// SysRegTraps, TLBITraps, ERETTraps and ATTraps are the guest
	// hypervisor's instructions trapped at its virtual EL2;
	// CanonicalFaults its accesses missing from the hypervisor's stage 2.
	SysRegTraps, TLBITraps, ERETTraps, ATTraps, CanonicalFaults uint64
	// ShadowFaults are stage-2 faults of the nested guest on the
	// hypervisor's shadow: Installed put an entry there, Forwarded went to
	// the guest hypervisor (its stage 2 faulted).
	ShadowFaults, Installed, Forwarded uint64
	// ATFast and ATSoftware count the guest hypervisor's AT instructions
	// answered by the fast path and by the software walk (at.go).
	ATFast, ATSoftware uint64
	// GuestTraps are traps of the nested guest taken to the hypervisor;
	// ForwardedTraps of these went on to the guest hypervisor.
	GuestTraps, ForwardedTraps uint64
	// Entries and VEL2Entries count world switches into the nested guest
	// and into the guest hypervisor's virtual EL2.
	Entries, VEL2Entries uint64
}

// Exceptions returns the exceptions the hypervisor took for the guest
// hypervisor and its guest.
func (s EL2Stats) Exceptions() uint64 {
	return s.SysRegTraps + s.TLBITraps + s.ERETTraps + s.ATTraps + s.CanonicalFaults + s.ShadowFaults + s.GuestTraps
}

// EL2VCPU is the vCPU of a guest hypervisor (L2) kept by a hypervisor that
// itself runs at virtual EL2 (L1): it runs L2 at L2's virtual EL2 (L1's
// EL1, with L1's HCR_EL2.NV) and L2's guests (L3) on shadow stage 2s in
// L1's memory, acting only through L1's EL2 interface. The hypervisor's
// exception handler calls Exception while the vCPU is the one it runs.
// The guest hypervisor must be a VHE one (its HCR_EL2.E2H reads 1), as
// mainline KVM requires for recursion. It is not safe for concurrent use.
type EL2VCPU struct {
	c   EL2
	p   Platform
	cfg EL2Config
	// ids are the ID registers the guest hypervisor reads (sanitized, no
	// FEAT_NV); own those its hypervisor read.
	ids, own IDRegs
	hyp      GuestHypervisor
	hypCPU   EL2

	inGuest bool // the nested guest (L3) runs, else the guest hypervisor
	// el1 holds the guest hypervisor's EL1-held registers (its own regime,
	// ELR/SPSR/ESR/FAR_EL2) while its guest runs; gprs the general-purpose
	// registers of the world not running.
	el1      [len(el1Regs)]uint64
	gprs     [31]uint64
	hpfar    uint64 // the guest hypervisor's HPFAR_EL2
	vncrSoft [512]uint64
	// susp is the world Suspend saved, for Resume.
	susp el2Suspended

	pool shadowPool[l1Shadow]
	cur  *shadow[l1Shadow]

	walker vmsa.Walker // over the guest hypervisor's memory
	oracle trapOracle
	atPath ATPath
	stats  EL2Stats
}

// l1Shadow is what a guest hypervisor keeps per shadow: the table-page
// cache it fills it from and the VMID it gives it.
type l1Shadow struct {
	cache *s2pt.Cache
	vmid  uint16
}

// l1Level is the EL2VCPU's shadowLevel: tables in the hypervisor's memory
// from its platform, invalidated with its own TLBIs (which trap to L0).
type l1Level struct{ e *EL2VCPU }

func (l l1Level) layout(g *guestRegs) s2pt.Config {
	e := l.e
	hostMax, _ := sysreg.PASizeBits(e.own.MMFR0.PARange())
	hostMax = min(hostMax, 48)
	ipaBits := guestIPABits(e.p.VTCR())
	gran := sysreg.Granule4K
	if stage2On(g.hcr) {
		ipaBits = min(max(guestIPABits(g.vtcr), 32), hostMax)
		if gg := granuleOf(g); gg.Bits() < gran.Bits() && e.own.MMFR0.GranuleSupported(gg, true) {
			gran = gg
		}
	}
	return s2pt.Config{IPABits: ipaBits, Granule: gran, MMFR0: e.own.MMFR0, MMFR1: e.own.MMFR1}
}

func (l l1Level) build(sh *shadow[l1Shadow], cfg s2pt.Config) (*s2pt.VM, error) {
	s2, cache, err := l.e.p.NewStage2(cfg, sh.x.vmid)
	sh.x.cache = cache
	return s2, err
}

func (l l1Level) destroyed(sh *shadow[l1Shadow]) error {
	c := sh.x.cache
	sh.x.cache = nil
	if c == nil {
		return nil
	}
	return c.Release()
}

// invalidate is TLBI VMALLS12E1IS with VTTBR_EL2 naming the shadow: the
// pool calls it only to age shadow entries, which a guest hypervisor's
// platform never does (errors are the next instruction's).
func (l l1Level) invalidate(sh *shadow[l1Shadow], _ NestedIPA, _ uint64) {
	_ = l.e.tlbiWith(uint64(sh.s2.VTTBR().WithVMID(sh.x.vmid)), sh.s2.VTCR(), tlb.OpVMALLS12E1.IS(), 0)
}

// NewEL2VCPU makes the engine for a guest hypervisor that the hypervisor
// running on c keeps in the VM p describes; it reads the hypervisor's ID
// registers (to sanitize the guest hypervisor's).
func NewEL2VCPU(c EL2, p Platform, cfg EL2Config) (*EL2VCPU, error) {
	if cfg.Mode > ModeNV2 {
		return nil, fmt.Errorf("nested: unknown mode %d", cfg.Mode)
	}
	if cfg.Mode == ModeNV2 && cfg.VNCR%4096 != 0 {
		return nil, fmt.Errorf("nested: VNCR page %#x is not page aligned", uint64(cfg.VNCR))
	}
	if cfg.ShadowVMIDs == nil {
		cfg.ShadowVMIDs = []uint16{0x100, 0x101}
	}
	if len(cfg.ShadowVMIDs) == 0 || len(cfg.ShadowVMIDs) > 64 {
		return nil, fmt.Errorf("nested: %d shadow VMIDs: want 1..64", len(cfg.ShadowVMIDs))
	}
	e := &EL2VCPU{c: c, p: p, cfg: cfg}
	var raw [3]uint64
	for i, r := range []cpu.SysReg{cpu.ID_AA64MMFR0_EL1, cpu.ID_AA64MMFR1_EL1, cpu.ID_AA64MMFR2_EL1} {
		x, err := c.MRS(r)
		if err != nil {
			return nil, err
		}
		raw[i] = x
	}
	e.own = IDRegs{MMFR0: sysreg.MMFR0(raw[0]), MMFR1: sysreg.MMFR1(raw[1]), MMFR2: sysreg.MMFR2(raw[2])}
	if cfg.Mode == ModeNV2 && e.own.MMFR2.NV() < 2 || e.own.MMFR2.NV() < 1 {
		return nil, fmt.Errorf("nested: the hypervisor's ID_AA64MMFR2_EL1.NV=%d does not offer %v", e.own.MMFR2.NV(), cfg.Mode)
	}
	host := vmsa.Regs{MMFR0: e.own.MMFR0, MMFR1: e.own.MMFR1, MMFR2: e.own.MMFR2}
	e.ids = sanitizeIDs(&host, guestIPABits(p.VTCR()))
	e.ids.MMFR2 = sysreg.MMFR2(setField(uint64(e.ids.MMFR2), 24, 0)) // no FEAT_NV: no L4
	if cfg.ReverseMapExtents < 0 || cfg.ReverseMapExtents > rmapMaxExtents {
		return nil, fmt.Errorf("nested: reverse map of %d extents: want 0..%d", cfg.ReverseMapExtents, rmapMaxExtents)
	}
	e.walker.Mem = guestHypMemory{e: e}
	e.pool.init(l1Level{e}, len(cfg.ShadowVMIDs), !cfg.NoReverseMap, cfg.ReverseMapExtents)
	for i, id := range cfg.ShadowVMIDs {
		e.pool.shadows[i].x.vmid = id
	}
	return e, nil
}

// SetGuestHypervisor sets the guest hypervisor's code, run on exceptions
// forwarded to its virtual EL2, and the EL2 interface it runs on.
func (e *EL2VCPU) SetGuestHypervisor(h GuestHypervisor, c EL2) { e.hyp, e.hypCPU = h, c }

// IDRegs returns the ID registers the guest hypervisor reads.
func (e *EL2VCPU) IDRegs() IDRegs { return e.ids }

// InGuest reports whether the guest hypervisor's guest runs.
func (e *EL2VCPU) InGuest() bool { return e.inGuest }

// Stats returns the counters.
func (e *EL2VCPU) Stats() EL2Stats { return e.stats }

// guestEL1 names the guest's EL1 register r as the hypervisor reaches it.
func (e *EL2VCPU) guestEL1(r cpu.SysReg) cpu.SysReg {
	if a, ok := r.EL12(); ok && e.cfg.OwnE2H {
		return a
	}
	return r
}

// vncrGet and vncrSet access the guest hypervisor's VNCR page layout: the
// page in the hypervisor's memory with FEAT_NV2, its own copy with NV.
func (e *EL2VCPU) vncrGet(off uint16) (uint64, error) {
	if e.cfg.Mode == ModeNV2 {
		return e.c.Load(e.cfg.VNCR+mem.VA(off), 8)
	}
	return e.vncrSoft[off/8], nil
}

func (e *EL2VCPU) vncrSet(off uint16, x uint64) error {
	if e.cfg.Mode == ModeNV2 {
		return e.c.Store(e.cfg.VNCR+mem.VA(off), 8, x)
	}
	e.vncrSoft[off/8] = x
	return nil
}

// regs is a sequence of register accesses that stops at the first error.
type regs struct {
	c   EL2
	err error
}

func (r *regs) get(reg cpu.SysReg) uint64 {
	if r.err != nil {
		return 0
	}
	x, err := r.c.MRS(reg)
	r.err = err
	return x
}

func (r *regs) set(reg cpu.SysReg, x uint64) {
	if r.err == nil {
		r.err = r.c.MSR(reg, x)
	}
}

// guestHCR is the guest hypervisor's HCR_EL2 (E2H reads 1).
func (e *EL2VCPU) guestHCR() (sysreg.HCR, error) {
	x, err := e.vncrGet(offHCR)
	return sysreg.HCR(x) | sysreg.HCR_E2H, err
}

// guestRegs reads the guest hypervisor's registers its stage-2 walk and
// the shadow key use.
func (e *EL2VCPU) guestRegs() (guestRegs, error) {
	var errs [4]error
	var vtcr, vttbr uint64
	vtcr, errs[0] = e.vncrGet(offVTCR)
	vttbr, errs[1] = e.vncrGet(offVTTBR)
	hcr, err := e.guestHCR()
	errs[2] = err
	var sctlr uint64
	if e.inGuest {
		sctlr = e.el1[0]
	} else {
		sctlr, errs[3] = e.c.MRS(e.guestEL1(cpu.SCTLR_EL1))
	}
	return guestRegs{vtcr: sysreg.VTCR(vtcr), vttbr: sysreg.VTTBR(vttbr), hcr: hcr, sctlr: sysreg.SCTLR(sctlr), id: e.ids},
		errors.Join(errs[:]...)
}

// baseHCR is the hypervisor's HCR_EL2 for any guest: VM, RW, its own E2H.
func (e *EL2VCPU) baseHCR() sysreg.HCR {
	h := sysreg.HCR_VM | sysreg.HCR_RW
	if e.cfg.OwnE2H {
		h |= sysreg.HCR_E2H
	}
	return h
}

// vel2HCR is the hypervisor's HCR_EL2 while the guest hypervisor runs.
func (e *EL2VCPU) vel2HCR() sysreg.HCR { return e.baseHCR() | vel2Traps(e.cfg.Mode, true) }

// el2Suspended is the state of the world an interrupt took the hypervisor
// out of (Suspend).
type el2Suspended struct {
	valid    bool
	pc, spsr uint64
	el1      [len(el1Regs)]uint64
	gprs     [31]uint64
	hasGPRs  bool
}

// Suspend saves the world this vCPU ran when an interrupt took the
// hypervisor out of it (the guest hypervisor at its virtual EL2, or its
// guest): its PC and PSTATE (ELR_EL2, SPSR_EL2), its EL1 registers and,
// when the hypervisor's EL2 gives them (GPRFrame), its general-purpose
// registers. The hypervisor may then run other VMs; Resume returns to it.
func (e *EL2VCPU) Suspend() error {
	r := &regs{c: e.c}
	s := el2Suspended{pc: r.get(cpu.ELR_EL2), spsr: r.get(cpu.SPSR_EL2)}
	for i, reg := range el1Regs {
		s.el1[i] = r.get(e.guestEL1(reg))
	}
	if r.err != nil {
		return r.err
	}
	if f, ok := e.c.(GPRFrame); ok && f.GuestGPRs() != nil {
		s.gprs, s.hasGPRs = *f.GuestGPRs(), true
	}
	s.valid = true
	e.susp = s
	return nil
}

// Suspended reports whether Resume has a world to enter.
func (e *EL2VCPU) Suspended() bool { return e.susp.valid }

// Resume enters the world Suspend saved: the hypervisor's controls and
// stage 2 for it (for the nested guest the shadow it ran on, for the guest
// hypervisor its stage 2 for the VM), VNCR_EL2 with NV2, its EL1 and
// general-purpose registers, PC and PSTATE, then ERET.
func (e *EL2VCPU) Resume() error {
	s := &e.susp
	if !s.valid {
		return errors.New("nested: no suspended world to resume")
	}
	s.valid = false
	r := &regs{c: e.c}
	if e.cfg.Mode == ModeNV2 {
		r.set(cpu.VNCR_EL2, uint64(e.cfg.VNCR))
	}
	for i, reg := range el1Regs {
		r.set(e.guestEL1(reg), s.el1[i])
	}
	if r.err != nil {
		return r.err
	}
	if s.hasGPRs {
		if f, ok := e.c.(GPRFrame); ok && f.GuestGPRs() != nil {
			*f.GuestGPRs() = s.gprs
		}
	}
	if !e.inGuest {
		return e.toVEL2(mem.VA(s.pc), s.spsr)
	}
	g, err := e.guestRegs()
	if err != nil {
		return err
	}
	return e.toGuest(&g, mem.VA(s.pc), s.spsr)
}

// Enter enters the guest hypervisor at its virtual EL2 for the first time,
// at pc with its MMU off and HCR_EL2 = RW, E2H: the hypervisor's controls
// for it, its stage 2 for the VM, VNCR_EL2 (NV2), then ERET.
func (e *EL2VCPU) Enter(pc mem.VA) error {
	if err := e.vncrSet(offHCR, uint64(sysreg.HCR_RW|sysreg.HCR_E2H)); err != nil {
		return err
	}
	r := &regs{c: e.c}
	if e.cfg.Mode == ModeNV2 {
		r.set(cpu.VNCR_EL2, uint64(e.cfg.VNCR))
	}
	for _, reg := range el1Regs {
		r.set(e.guestEL1(reg), 0)
	}
	if r.err != nil {
		return r.err
	}
	return e.toVEL2(pc, 0b0101|0xf<<6)
}

// toVEL2 returns to the guest hypervisor at its virtual EL2 (pc, PSTATE
// spsr): the hypervisor's controls for it, its stage 2, then ERET.
func (e *EL2VCPU) toVEL2(pc mem.VA, spsr uint64) error {
	r := &regs{c: e.c}
	r.set(cpu.HCR_EL2, uint64(e.vel2HCR()))
	r.set(cpu.ELR_EL2, uint64(pc))
	r.set(cpu.SPSR_EL2, spsr)
	if r.err != nil {
		return r.err
	}
	if err := e.p.SetStage2(e.p.VTTBR(), e.p.VTCR()); err != nil {
		return err
	}
	return e.c.ERET()
}

// gprFrame returns the registers of the world that took the exception.
func (e *EL2VCPU) gprFrame() (*[31]uint64, error) {
	f, ok := e.c.(GPRFrame)
	if !ok || f.GuestGPRs() == nil {
		return nil, errors.New("nested: the hypervisor's EL2 gives no access to its guest's registers")
	}
	return f.GuestGPRs(), nil
}

// Exception handles an exception taken to the hypervisor while this vCPU
// runs: the guest hypervisor's trapped instructions and faults on the
// hypervisor's stage 2, or its guest's shadow faults and traps.
func (e *EL2VCPU) Exception(c EL2) error {
	esr, err := c.MRS(cpu.ESR_EL2)
	if err != nil {
		return err
	}
	s := sysreg.ESR(esr)
	switch s.EC() {
	case sysreg.ECSysRegTrap, 0x1a:
		if e.inGuest {
			return e.guestTrap(s)
		}
		return e.vel2Trap(s)
	case sysreg.ECDataAbortLower, sysreg.ECInstrAbortLower:
		if e.inGuest {
			e.stats.ShadowFaults++
			return e.shadowFault(s)
		}
		return e.canonicalFault(s)
	}
	return fmt.Errorf("%w: exception class %#x (ESR_EL2 %#x) at the guest hypervisor's level", ErrUnhandled, s.EC(), esr)
}

// skip returns to the world that trapped past the trapped instruction.
func (e *EL2VCPU) skip() error {
	elr, err := e.c.MRS(cpu.ELR_EL2)
	if err != nil {
		return err
	}
	if err := e.c.MSR(cpu.ELR_EL2, elr+4); err != nil {
		return err
	}
	return e.resume()
}

// resume returns to the world that took the exception, with its stage 2
// in VTTBR_EL2 and VTCR_EL2 (the hypervisor's own stage-2 maintenance
// while it handled the exception may have set another): the shadow for
// the guest's guest, the hypervisor's stage 2 for the VM for the guest
// hypervisor.
func (e *EL2VCPU) resume() error {
	if err := e.p.SetStage2(e.worldStage2()); err != nil {
		return err
	}
	return e.c.ERET()
}

// worldStage2 is the stage 2 of the world that runs (or ran): the shadow
// for the guest's guest, the hypervisor's stage 2 for the VM for the guest
// hypervisor.
func (e *EL2VCPU) worldStage2() (vttbr uint64, vtcr sysreg.VTCR) {
	if e.inGuest {
		return uint64(e.cur.s2.VTTBR().WithVMID(e.cur.x.vmid)), e.cur.s2.VTCR()
	}
	return e.p.VTTBR(), e.p.VTCR()
}

// vel2Trap emulates a trapped instruction of the guest hypervisor.
func (e *EL2VCPU) vel2Trap(esr sysreg.ESR) error {
	t, _ := decodeTrap(esr)
	if t.eret {
		e.stats.ERETTraps++
		return e.emulateERET()
	}
	x, err := e.gprFrame()
	if err != nil {
		return err
	}
	xt := func() uint64 {
		if t.rt < 31 {
			return x[t.rt]
		}
		return 0
	}
	switch {
	case t.op0 == 3:
		e.stats.SysRegTraps++
		r, ok := cpu.SysRegByEncoding(t.op0, t.op1, t.crn, t.crm, t.op2)
		if !ok {
			return fmt.Errorf("%w: the guest hypervisor's MSR/MRS S%d_%d_C%d_C%d_%d", ErrUnhandled, t.op0, t.op1, t.crn, t.crm, t.op2)
		}
		v, err := e.emulateSysReg(r, t.read, xt())
		if err != nil {
			return err
		}
		if t.read && t.rt < 31 {
			x[t.rt] = v
		}
	case t.op0 == 1 && t.crn == 8:
		e.stats.TLBITraps++
		op, ok := tlb.OpFromSys(t.op0, t.op1, t.crn, t.crm, t.op2)
		if !ok {
			return fmt.Errorf("%w: the guest hypervisor's TLBI op1=%d CRm=%d op2=%d", ErrUnhandled, t.op1, t.crm, t.op2)
		}
		if err := e.emulateTLBI(op, xt()); err != nil {
			return err
		}
	case t.op0 == 1 && t.crn == 7:
		e.stats.ATTraps++
		op, ok := atOpFromSys(t.op0, t.op1, t.crn, t.crm, t.op2)
		if !ok {
			return fmt.Errorf("%w: the guest hypervisor's AT op1=%d CRm=%d op2=%d", ErrUnhandled, t.op1, t.crm, t.op2)
		}
		return e.emulateAT(op, t.rt, xt())
	default:
		return fmt.Errorf("%w: the guest hypervisor's trap ESR %#x", ErrUnhandled, uint64(esr))
	}
	return e.skip()
}

// emulateSysReg is a trapped MSR (val) or MRS of the guest hypervisor: its
// VNCR-page registers, HPFAR_EL2, the EL2 registers held in its EL1
// registers, and its sanitized ID registers.
func (e *EL2VCPU) emulateSysReg(r cpu.SysReg, read bool, val uint64) (uint64, error) {
	off, hasOff := r.VNCROffset()
	switch r {
	case cpu.HCR_EL2:
		if read {
			h, err := e.guestHCR()
			return uint64(h), err
		}
		return 0, e.vncrSet(off, val)
	case cpu.HPFAR_EL2:
		if read {
			return e.hpfar, nil
		}
		e.hpfar = val
		return 0, nil
	case cpu.ELR_EL2, cpu.SPSR_EL2, cpu.ESR_EL2, cpu.FAR_EL2,
		cpu.SCTLR_EL2, cpu.TCR_EL2, cpu.TTBR0_EL2, cpu.TTBR1_EL2, cpu.MAIR_EL2, cpu.VBAR_EL2:
		// A VHE guest hypervisor's own registers are its EL1 registers.
		if read {
			return e.c.MRS(e.guestEL1(ownEL2[r]))
		}
		return 0, e.c.MSR(e.guestEL1(ownEL2[r]), val)
	}
	if x, ok := e.ids.value(r); ok {
		if !read {
			return 0, fmt.Errorf("%w: write to %v", ErrUnhandled, r)
		}
		return x, nil
	}
	if !hasOff {
		return 0, fmt.Errorf("%w: the guest hypervisor's access to %v", ErrUnhandled, r)
	}
	// VTTBR, VTCR, VNCR_EL2 and its guest's EL1 registers (*_EL12).
	if read {
		return e.vncrGet(off)
	}
	return 0, e.vncrSet(off, val)
}

// emulateERET is the guest hypervisor's trapped ERET: within its virtual
// EL2 when its SPSR_EL2 names EL2, else into its guest.
func (e *EL2VCPU) emulateERET() error {
	r := &regs{c: e.c}
	spsr := r.get(e.guestEL1(cpu.SPSR_EL1))
	elr := r.get(e.guestEL1(cpu.ELR_EL1))
	if r.err != nil {
		return r.err
	}
	switch spsr >> 2 & 3 {
	case 2:
		return e.toVEL2(mem.VA(elr), spsr&^(3<<2)|1<<2)
	case 3:
		return fmt.Errorf("%w: the guest hypervisor's ERET to EL3 (SPSR_EL2 %#x)", ErrUnhandled, spsr)
	}
	h, err := e.guestHCR()
	if err != nil {
		return err
	}
	if h.TGE() {
		// No guest below a guest hypervisor with TGE (E2H reads 1): a
		// return to EL1 is illegal, one to EL0 is to its own EL0 (its
		// EL2&0 regime), in its virtual EL2's world (tgeReturn).
		cur, err := e.c.MRS(cpu.SPSR_EL2)
		if err != nil {
			return err
		}
		if err := e.c.MSR(cpu.ELR_EL2, elr); err != nil {
			return err
		}
		if err := e.c.MSR(cpu.SPSR_EL2, tgeReturn(spsr, cur)); err != nil {
			return err
		}
		return e.resume()
	}
	return e.enterGuest(mem.VA(elr), spsr)
}

// enterGuest is the world switch into the guest hypervisor's guest: the
// guest hypervisor's EL1-held registers and GPRs saved, its guest's
// loaded from the VNCR page layout, the shadow for its VMID/VTTBR/VTCR
// taken, the hypervisor's HCR_EL2 = its controls for any guest, its
// own TID3 and the guest hypervisor's trap controls, then ERET to pc.
func (e *EL2VCPU) enterGuest(pc mem.VA, spsr uint64) error {
	r := &regs{c: e.c}
	var saved [len(el1Regs)]uint64
	for i, reg := range el1Regs {
		saved[i] = r.get(e.guestEL1(reg))
	}
	for _, reg := range el1Regs {
		off, _ := reg.VNCROffset()
		x, err := e.vncrGet(off)
		if err != nil {
			return err
		}
		r.set(e.guestEL1(reg), x)
	}
	if r.err != nil {
		return r.err
	}
	e.el1 = saved
	x, err := e.gprFrame()
	if err != nil {
		return err
	}
	e.gprs, *x = *x, e.gprs
	e.inGuest = true
	g, err := e.guestRegs()
	if err != nil {
		return err
	}
	sh, _, err := e.pool.acquire(&g)
	if err != nil {
		return err
	}
	e.cur = sh
	e.stats.Entries++
	return e.toGuest(&g, pc, spsr)
}

// toGuest returns to the guest's guest on the shadow e.cur: the
// hypervisor's HCR_EL2 = its controls for any guest, its own TID3 and the
// guest hypervisor's trap controls (registers g), the shadow's VTCR_EL2
// and VTTBR_EL2, ELR_EL2 = pc, SPSR_EL2 = spsr, then ERET.
func (e *EL2VCPU) toGuest(g *guestRegs, pc mem.VA, spsr uint64) error {
	sh := e.cur
	r := &regs{c: e.c}
	r.set(cpu.HCR_EL2, uint64(nestedHCR(e.baseHCR(), g.hcr, &e.ids)))
	r.set(cpu.ELR_EL2, uint64(pc))
	r.set(cpu.SPSR_EL2, spsr)
	if r.err != nil {
		return r.err
	}
	if err := e.p.SetStage2(uint64(sh.s2.VTTBR().WithVMID(sh.x.vmid)), sh.s2.VTCR()); err != nil {
		return err
	}
	return e.c.ERET()
}

// forward is the world switch for an exception of the guest's guest taken
// to the guest hypervisor's virtual EL2, as the hardware would take it
// there: its guest's EL1 registers go to the VNCR page layout, the guest
// hypervisor's come back, ELR_EL2 and SPSR_EL2 (its EL1 ELR and SPSR) are
// the interrupted PC and PSTATE, ESR_EL2, FAR_EL2 (FAR unchanged for a
// trap: far is the old value) and HPFAR_EL2 describe the exception, and it
// continues at its VBAR_EL2 + off with D, A, I, F masked. Then its code
// runs. An IRQ (irq) writes no syndrome and runs no code.
func (e *EL2VCPU) forward(esr sysreg.ESR, far uint64, hpfar uint64, off mem.VA, irq bool) error {
	r := &regs{c: e.c}
	pc := r.get(cpu.ELR_EL2)
	spsr := r.get(cpu.SPSR_EL2)
	for _, reg := range el1Regs {
		off, _ := reg.VNCROffset()
		x := r.get(e.guestEL1(reg))
		if r.err == nil {
			r.err = e.vncrSet(off, x)
		}
	}
	for i, reg := range el1Regs {
		switch reg {
		case cpu.ELR_EL1:
			r.set(e.guestEL1(reg), pc)
		case cpu.SPSR_EL1:
			r.set(e.guestEL1(reg), spsr)
		case cpu.ESR_EL1:
			if !irq {
				r.set(e.guestEL1(reg), uint64(esr))
			} else {
				r.set(e.guestEL1(reg), e.el1[i])
			}
		case cpu.FAR_EL1:
			if !irq {
				r.set(e.guestEL1(reg), far)
			} else {
				r.set(e.guestEL1(reg), e.el1[i])
			}
		default:
			r.set(e.guestEL1(reg), e.el1[i])
		}
	}
	if r.err != nil {
		return r.err
	}
	if !irq {
		e.hpfar = hpfar
	}
	x, err := e.gprFrame()
	if err != nil {
		return err
	}
	e.gprs, *x = *x, e.gprs
	e.release()
	e.inGuest = false
	e.stats.VEL2Entries++
	vbar := e.el1[vbarIndex]
	if err := e.toVEL2(mem.VA(vbar)&^0x7ff+off, 0b0101|0xf<<6); err != nil {
		return err
	}
	if e.hyp == nil || irq {
		return nil
	}
	return e.hyp.Exception(guestFrame{EL2: e.hypCPU, x: &e.gprs})
}

// InterruptGuest takes an IRQ to the guest hypervisor while its guest runs
// (its vector's IRQ entry, VBAR_EL2 + 0x480), for it to change its guest's
// mappings or run another: the hypervisor executes it at its own virtual
// EL2 (after VCPU.InterruptToVEL2 took L0's IRQ to it, ELR_EL2 and
// SPSR_EL2 hold the guest's PC and PSTATE). The guest hypervisor's code is
// not called; its vCPU is at its virtual EL2 afterwards.
func (e *EL2VCPU) InterruptGuest() error {
	if !e.inGuest {
		return ErrNotL2
	}
	return e.forward(0, 0, 0, 0x480, true)
}

// guestFrame is the guest hypervisor's EL2 with the registers of its
// guest as the hypervisor saved them.
type guestFrame struct {
	EL2
	x *[31]uint64
}

func (f guestFrame) GuestGPRs() *[31]uint64 { return f.x }

// vbarIndex is VBAR_EL1's place in el1Regs.
var vbarIndex = func() int {
	for i, r := range el1Regs {
		if r == cpu.VBAR_EL1 {
			return i
		}
	}
	panic("nested: VBAR_EL1 is not a world-switched register")
}()

// guestTrap triages a trap of the guest's guest: forwarded to the guest
// hypervisor when its HCR_EL2 traps it, emulated when only the
// hypervisor's own TID3 does (the guest hypervisor's ID registers).
func (e *EL2VCPU) guestTrap(esr sysreg.ESR) error {
	e.stats.GuestTraps++
	t, _ := decodeTrap(esr)
	spsr, err := e.c.MRS(cpu.SPSR_EL2)
	if err != nil {
		return err
	}
	from := uint8(spsr >> 2 & 3)
	h, err := e.guestHCR()
	if err != nil {
		return err
	}
	if e.oracle.traps(from, t, effectiveControls(h, &e.ids), &e.ids) {
		e.stats.ForwardedTraps++
		return e.forward(esr, e.el1[farIndex], HPFARUnknown, 0x400, false)
	}
	if !t.eret && t.op0 == 3 && t.read {
		if r, ok := cpu.SysRegByEncoding(t.op0, t.op1, t.crn, t.crm, t.op2); ok {
			if v, ok := e.ids.value(r); ok {
				x, err := e.gprFrame()
				if err != nil {
					return err
				}
				if t.rt < 31 {
					x[t.rt] = v
				}
				return e.skip()
			}
		}
	}
	return fmt.Errorf("%w: the nested guest's trap ESR %#x is neither the hypervisor's nor the guest hypervisor's", ErrUnhandled, uint64(esr))
}

// canonicalFault resolves an access of the guest hypervisor that faulted
// on the hypervisor's stage 2 for it (forwarded by L0): the platform maps
// the IPA, and the access is retried.
func (e *EL2VCPU) canonicalFault(esr sysreg.ESR) error {
	e.stats.CanonicalFaults++
	if !hpfarValid(esr) || esr.ISS()&(1<<13) != 0 {
		return fmt.Errorf("%w: the guest hypervisor's abort ESR %#x", ErrUnhandled, uint64(esr))
	}
	r := &regs{c: e.c}
	far, hp := r.get(cpu.FAR_EL2), r.get(cpu.HPFAR_EL2)
	if r.err != nil {
		return r.err
	}
	ipa := mem.IPA(sysreg.HPFAR(hp).IPA()) | mem.IPA(far&0xfff)
	fetch := esr.EC() == sysreg.ECInstrAbortLower
	acc, _ := faultAccess(fetch, esr, 1)
	if _, err := e.p.Resolve(ipa, acc.Kind == vmsa.Write); errors.Is(err, kvm.ErrNoMemory) {
		return e.noMemory(esr, far, ipa, fetch)
	} else if err != nil {
		return err
	}
	return e.resume()
}

// shadowFault is a stage-2 fault of the guest's guest on the hypervisor's
// shadow: the guest hypervisor's stage 2 is walked in its memory; a fault
// there is forwarded to it, otherwise the platform resolves the output
// and the composed leaf goes into the shadow.
func (e *EL2VCPU) shadowFault(esr sysreg.ESR) error {
	r := &regs{c: e.c}
	far := r.get(cpu.FAR_EL2)
	spsr := r.get(cpu.SPSR_EL2)
	var ipa NestedIPA
	if hpfarValid(esr) {
		ipa = NestedIPA(sysreg.HPFAR(r.get(cpu.HPFAR_EL2)).IPA()) | NestedIPA(far&0xfff)
	} else {
		var ok bool
		if ipa, ok = e.translateFAR(mem.VA(far), uint8(spsr>>2&3)); !ok {
			return e.resume() // the guest's stage 1 changed: retried
		}
	}
	if r.err != nil {
		return r.err
	}
	fetch := esr.EC() == sysreg.ECInstrAbortLower
	sh := e.cur
	var g GuestS2
	var acc vmsa.Access
	if sh.guestVM {
		gr, err := e.guestRegs()
		if err != nil {
			return err
		}
		g, acc = walkFaulted(&e.walker, &gr, ipa, fetch, esr, uint8(spsr>>2&3))
		if g.Fault.IsFault() {
			e.stats.Forwarded++
			fesr, hpfar := forwardedAbort(esr, g.Fault, ipa)
			return e.forward(fesr, far, hpfar, 0x400, false)
		}
	} else {
		acc, _ = faultAccess(fetch, esr, uint8(spsr>>2&3))
		g = stage2Off(ipa)
	}
	write := acc.Kind == vmsa.Write
	m, err := e.p.Resolve(g.L1, write)
	if errors.Is(err, kvm.ErrNoMemory) {
		return e.guestNoMemory(esr, far, g.L1, fetch)
	} else if err != nil {
		return err
	}
	if err := e.pool.topup(sh, sh.x.cache, ipa, &g, m.Base, m.Out, m.Size); err != nil {
		return err
	}
	if err := e.pool.install(sh, sh.x.cache, ipa, &g, m.Base, m.Out, m.Size, m.Prot, e.own.MMFR1.XNX() >= 1); err != nil {
		return err
	}
	e.stats.Installed++
	return e.resume()
}

// translateFAR translates the guest's guest's FAR through its stage 1 in
// software: what AT S1E1R would give, for a Permission fault whose
// HPFAR_EL2 is UNKNOWN.
func (e *EL2VCPU) translateFAR(far mem.VA, el uint8) (NestedIPA, bool) {
	tr, ok := e.guestStage1(far, vmsa.Access{Kind: vmsa.Read, EL: el, NoPerm: true})
	if !ok || tr.Fault.IsFault() {
		return 0, false
	}
	return NestedIPA(tr.OA), true
}

// guestStage1 walks the guest's guest's stage 1 for va in software: its
// EL1 registers are the hypervisor's guest EL1 registers while it runs, its
// tables in its memory, reached through the guest hypervisor's stage 2
// (nestedMemory). ok is false when the registers cannot be read.
func (e *EL2VCPU) guestStage1(va mem.VA, acc vmsa.Access) (vmsa.Translation, bool) {
	r := &regs{c: e.c}
	regs := vmsa.Regs{
		SCTLR_EL1: sysreg.SCTLR(r.get(e.guestEL1(cpu.SCTLR_EL1))), TCR_EL1: sysreg.TCR(r.get(e.guestEL1(cpu.TCR_EL1))),
		TTBR0_EL1: sysreg.TTBR(r.get(e.guestEL1(cpu.TTBR0_EL1))), TTBR1_EL1: sysreg.TTBR(r.get(e.guestEL1(cpu.TTBR1_EL1))),
		MAIR_EL1: sysreg.MAIR(r.get(e.guestEL1(cpu.MAIR_EL1))), HCR_EL2: sysreg.HCR_RW,
		MMFR0: e.ids.MMFR0, MMFR1: e.ids.MMFR1, MMFR2: e.ids.MMFR2, ISAR2: sysreg.DefaultISAR2,
	}
	gr, err := e.guestRegs()
	if r.err != nil || err != nil {
		return vmsa.Translation{}, false
	}
	w := vmsa.Walker{Mem: nestedMemory{e: e, g: &gr}}
	return w.Translate(&regs, vmsa.RegimeEL10, va, acc, vmsa.TranslateOptions{Stage1Only: true}), true
}

// guestHypMemory is the guest hypervisor's IPA space as memory: through
// the platform's stage 2 for it (mapped on demand, as a hypervisor reads
// its guest's memory) and the hypervisor's loads. noFault: only what is
// mapped already (the checker).
type guestHypMemory struct {
	e       *EL2VCPU
	noFault bool
}

func (m guestHypMemory) at(p mem.PA, write bool) (mem.VA, bool) {
	ipa := mem.IPA(p)
	var mp Mapping
	var ok bool
	if m.noFault {
		mp, ok = m.e.p.Lookup(ipa)
	} else {
		var err error
		mp, err = m.e.p.Resolve(ipa, write)
		ok = err == nil
	}
	if !ok || p%8 != 0 {
		return 0, false
	}
	return mem.VA(mp.Out) + mem.VA(ipa-mp.Base), true
}

// Read64 implements mem.Memory.
func (m guestHypMemory) Read64(p mem.PA) (uint64, bool) {
	va, ok := m.at(p, false)
	if !ok {
		return 0, false
	}
	x, err := m.e.c.Load(va, 8)
	return x, err == nil
}

// CompareAndSwap64 implements mem.Memory.
func (m guestHypMemory) CompareAndSwap64(p mem.PA, old, new uint64) (bool, bool) {
	va, ok := m.at(p, true)
	if !ok {
		return false, false
	}
	s, err := m.e.c.CompareAndSwap64(va, old, new)
	return s, err == nil
}

// nestedMemory is the guest's guest's IPA space as memory: through the
// guest hypervisor's stage 2 (registers g) and guestHypMemory.
type nestedMemory struct {
	e *EL2VCPU
	g *guestRegs
}

func (m nestedMemory) out(p mem.PA, k vmsa.AccessKind) (mem.PA, bool) {
	gs := walkGuestS2(&m.e.walker, m.g, NestedIPA(p), vmsa.Access{Kind: k, EL: 1})
	return mem.PA(gs.L1), !gs.Fault.IsFault()
}

// Read64 implements mem.Memory.
func (m nestedMemory) Read64(p mem.PA) (uint64, bool) {
	q, ok := m.out(p, vmsa.Read)
	if !ok {
		return 0, false
	}
	return guestHypMemory{e: m.e}.Read64(q)
}

// CompareAndSwap64 implements mem.Memory.
func (m nestedMemory) CompareAndSwap64(p mem.PA, old, new uint64) (bool, bool) {
	q, ok := m.out(p, vmsa.Write)
	if !ok {
		return false, false
	}
	return guestHypMemory{e: m.e}.CompareAndSwap64(q, old, new)
}

func (e *EL2VCPU) release() {
	if e.cur != nil {
		e.pool.release(e.cur)
	}
	e.cur = nil
}

// CanonicalChanged is told that the platform's stage 2 for the VM changed
// in ways it does not describe: every shadow is emptied (as mainline KVM
// does on any change).
func (e *EL2VCPU) CanonicalChanged() error {
	var errs []error
	for _, sh := range e.pool.shadows {
		errs = append(errs, e.pool.flush(sh))
	}
	return errors.Join(errs...)
}

// CanonicalUnmapped is told that the platform's stage 2 for the VM lost
// or changed the mappings of the guest hypervisor's IPAs [ipa, ipa+size):
// the shadow leaves derived from them go (the reverse map, as L0's
// kvm.NestedHooks), with the TLBIs.
func (e *EL2VCPU) CanonicalUnmapped(ipa mem.IPA, size uint64) error {
	return e.pool.unmapped(ipa, size)
}

// CanonicalWriteProtected is told that [ipa, ipa+size) lost write
// permission in the platform's stage 2: the shadow leaves derived from
// it lose it too.
func (e *EL2VCPU) CanonicalWriteProtected(ipa mem.IPA, size uint64) error {
	return e.pool.writeProtected(ipa, size)
}

// RmapStats returns the reverse map's accounting.
func (e *EL2VCPU) RmapStats() RmapStats { return e.pool.rmapStats() }

// emulateTLBI executes a TLBI of the guest hypervisor on the shadows, as
// VCPU.emulateTLBI does for L0: ALLE1 and VMALLS12E1 empty shadows, the
// stage-2 forms by IPA unmap the ipas2Range of the shadows of the VMID,
// the EL1 stage-1 forms are issued again with each such shadow's VMID,
// and the EL2 forms (its own regime) as VMALLE1 in the VM's VMID.
func (e *EL2VCPU) emulateTLBI(op tlb.Op, xt uint64) error {
	g, err := e.guestRegs()
	if err != nil {
		return err
	}
	tcr1, err := e.vncrGet(offTCR1)
	if err != nil {
		return err
	}
	s, _, err := guestTLBI(op, xt, &g, sysreg.TCR(tcr1))
	if err != nil {
		return err
	}
	if done, err := e.pool.tlbiStage2(op, &s, &g); done {
		return err
	}
	switch op.Base() {
	case tlb.OpALLE2, tlb.OpVAE2, tlb.OpVALE2, tlb.OpRVAE2, tlb.OpRVALE2:
		return e.tlbiWith(e.p.VTTBR(), e.p.VTCR(), tlb.OpVMALLE1.IS(), 0)
	}
	// The EL1 stage-1 forms.
	if g.hcr.E2H() && g.hcr.TGE() {
		return e.tlbiWith(e.p.VTTBR(), e.p.VTCR(), tlb.OpVMALLE1.IS(), 0)
	}
	gvmid := guestVMID(&g)
	for _, sh := range e.pool.shadows {
		if sh.s2 != nil && sh.gvmid == gvmid {
			if err := e.tlbiWith(uint64(sh.s2.VTTBR().WithVMID(sh.x.vmid)), sh.s2.VTCR(), op, xt); err != nil {
				return err
			}
		}
	}
	return nil
}

// tlbiWith issues TLBI op with the stage 2 vttbr (its VMID), vtcr loaded.
func (e *EL2VCPU) tlbiWith(vttbr uint64, vtcr sysreg.VTCR, op tlb.Op, xt uint64) error {
	if err := e.p.SetStage2(vttbr, vtcr); err != nil {
		return err
	}
	return e.c.TLBI(op, xt)
}

// Check verifies the invariants of the hypervisor's shadows, as VM.Check
// does for L0's: every leaf equals the guest hypervisor's stage 2 (walked
// in its memory now) composed with the platform's stage 2 (its leaves
// now): the same output at the leaf's first and last page, a size no
// larger than the guest leaf, rights no wider than either; and the
// reverse map is well formed and covers every leaf of a tracked shadow.
// The hypervisor cannot see TLBs; its TLBIs are L0's to check.
func (e *EL2VCPU) Check() error {
	leaves, errs := e.pool.leaves()
	errs = append(errs, e.pool.rmap.check()...)
	w := vmsa.Walker{Mem: guestHypMemory{e: e, noFault: true}}
	canon := func(l1 mem.IPA) (mem.PA, bool, string) {
		m, ok := e.p.Lookup(l1)
		if !ok {
			return 0, false, "the hypervisor's stage 2 does not map it"
		}
		return m.Out + mem.PA(l1-m.Base), m.Prot&s2pt.ProtW != 0, ""
	}
	errs = append(errs, checkLeaves(&w, e.ids, leaves, canon, 4096, "the guest hypervisor's shadow")...)
	return errors.Join(errs...)
}

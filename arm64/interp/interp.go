// Package interp executes A64 code on a modelled PE (arm64/cpu): the
// integer instruction set gcc emits for bare-metal C with
// -mgeneral-regs-only (data processing, loads and stores in every
// addressing mode with pairs, exclusives, acquire/release and the LSE
// atomics, branches) and the system instructions, which the PE executes
// with its traps (MSR/MRS, TLBI, AT, DC, IC, barriers, HVC, SVC, SMC,
// ERET, BRK, WFI/WFE).
//
// Every fetch, load and store goes through the PE: its VA checks, its TLB
// and its walk, and a fault is the exception the PE takes, to VBAR_ELx
// plus the architectural vector offset. Instructions are decoded with
// golang.org/x/arch/arm64/arm64asm (plus a small table of the encodings
// that package does not know, see decode.go) and the decoded form is
// cached by physical address; a write to a cached code page or an IC
// instruction drops it. An encoding the interpreter does not implement
// takes the UNDEFINED exception (and is reported to Options.Strict).
//
// The interpreter keeps one page of fetch translations and one page each
// of read and write translations, taken from the PE's TLB; they are
// dropped on every TLBI, system-register write, exception and return, so
// they hold only what the TLB held (docs/A64.md).
package interp

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/mem"
)

// Platform is what the interpreter asks of the machine around the PE:
// the firmware answering SMC or HVC (PSCI) and the system counter.
type Platform interface {
	// Call is an SMC or HVC the firmware answers (the conduit): it reads
	// and writes x0-x17 of c and returns false when it does not take the
	// call, which then executes as the architecture says.
	Call(c *CPU, smc bool, imm uint16) bool
	// Counter is the physical count (CNTPCT_EL0).
	Counter(c *CPU) uint64
}

// RAMPages gives direct access to RAM for the interpreter's fast path.
// Page returns the 512 words of the 4 KiB page of RAM at pa (aligned),
// or nil where pa is not plain RAM (devices, nothing).
type RAMPages interface {
	Page(pa mem.PA) *[512]uint64
}

// Options configures a CPU.
type Options struct {
	// Platform answers firmware calls and counter reads; nil means no
	// firmware and a counter of retired instructions.
	Platform Platform
	// RAM, when set, lets loads, stores and fetches that hit the
	// interpreter's translation caches reach RAM directly.
	RAM RAMPages
	// Strict is called with the PC and encoding of every instruction
	// that takes the UNDEFINED exception because the interpreter does
	// not implement it (not for encodings the architecture leaves
	// UNDEFINED in the modelled state).
	Strict func(pc mem.VA, word uint32, why string)
	// NoEL2 models a PE without EL2 (QEMU's -M virt without
	// virtualization): HVC goes to the platform (the PSCI conduit) or is
	// UNDEFINED, ID_AA64PFR0_EL1.EL2 reads 0 and the EL2 controls
	// (CNTHCTL_EL2, CNTVOFF_EL2, HCR_EL2 traps of WFx, DC, IC, FP) do not
	// apply. The PE's HCR_EL2 should then hold RW only.
	NoEL2 bool
	// Hypervisor, when set, is the software at EL2 that the interpreted
	// code runs under (a host hypervisor written in Go, such as
	// host/nested's L0): every exception the PE takes to EL2 is given to
	// it, with the PE at EL2, instead of executing from VBAR_EL2. It
	// returns the PE to a lower EL (ERET), or calls Stop.
	Hypervisor Hypervisor
}

// Hypervisor handles the exceptions taken to EL2 (Options.Hypervisor).
type Hypervisor interface {
	// Exit is called with the PE at EL2 after it took e.
	Exit(c *CPU, e *cpu.Exception)
}

// StopReason says why Run returned.
type StopReason uint8

// Stop reasons.
const (
	// Budget: the instruction budget given to Run was used up.
	Budget StopReason = iota
	// Halted: the platform stopped the machine (Stop).
	Halted
	// ExceptionLoop: the fetch of an exception vector took an exception
	// again, so the PE would loop forever without retiring anything.
	ExceptionLoop
)

func (r StopReason) String() string {
	switch r {
	case Budget:
		return "instruction budget exhausted"
	case Halted:
		return "halted"
	case ExceptionLoop:
		return "exception loop"
	}
	return fmt.Sprintf("StopReason(%d)", uint8(r))
}

// CPU is an A64 interpreter over one PE. It is not safe for concurrent use.
type CPU struct {
	PE *cpu.PE
	// X holds X0-X30; X[31] reads as zero (XZR) and X[32] is a sink.
	X [33]uint64
	// SP holds SP_EL0, SP_EL1, SP_EL2.
	SP [3]uint64
	// PSTATE fields the PE does not keep: BTYPE (FEAT_BTI), UAO, DIT,
	// SSBS, TCO, ALLINT (FEAT_NMI).
	BTYPE                       uint8
	UAO, DIT, SSBS, TCO, ALLINT bool
	// Retired counts the instructions that completed (including those
	// that completed by taking an exception they generate: SVC, HVC, ...).
	Retired uint64
	// Exceptions counts the exceptions taken.
	Exceptions uint64

	opts  Options
	sys   sysRegs
	mon   monitor
	cache decodeCache

	// The fast path: a page of fetch, read and write translations.
	fVPage, rVPage, wVPage uint64
	fPage                  *codePage
	rWords, wWords         *[512]uint64
	fPA, rPA, wPA          mem.PA

	stop    bool
	stopMsg string
	// exit: an exception was taken to EL2 with Options.Hypervisor set
	// (stop is set with it, so that the loop looks at it only then);
	// exitExc is that exception, given to the hypervisor (a field, so
	// that passing it does not allocate).
	exit    bool
	exitExc cpu.Exception
	// vectorAt is the PC an exception just jumped to (for ExceptionLoop),
	// or ^0 once an instruction has retired since.
	vectorAt uint64
}

// New returns an interpreter over pe. The PE's registers, EL and PC are
// used as they are; the general-purpose registers start at zero. New
// wraps pe.Mem and pe.Walker.Mem so that writes reaching a page of decoded
// instructions (from any access the PE makes) drop them.
func New(pe *cpu.PE, opts Options) *CPU {
	c := &CPU{PE: pe, opts: opts, vectorAt: ^uint64(0)}
	c.sys.init(c)
	c.cache.init()
	c.flush()
	watch := &codeWatch{DataMemory: pe.Mem, c: c}
	pe.Mem = watch
	pe.Walker.Mem = watch
	pe.RegsChanged() // the PE's hit path must see the new memory
	return c
}

// Stop makes Run return Halted after the current instruction, with msg
// (a platform's power-off, for example).
func (c *CPU) Stop(msg string) {
	c.stop = true
	c.stopMsg = msg
}

// StopMessage is the message given to Stop.
func (c *CPU) StopMessage() string { return c.stopMsg }

// flush drops the fast-path translations: after anything that may change
// the translation context or the TLB.
func (c *CPU) flush() {
	c.fVPage, c.rVPage, c.wVPage = ^uint64(0), ^uint64(0), ^uint64(0)
}

// Flush drops the interpreter's cached translations. Call it after
// changing the PE's registers, EL or TLB from outside between Run calls
// (Run itself starts with it).
func (c *CPU) Flush() { c.flush() }

// spIndex is the SP in use: SP_ELx for PSTATE.SP=1, else SP_EL0.
func (c *CPU) spIndex() uint8 {
	if c.PE.SP {
		return c.PE.EL
	}
	return 0
}

// GetSP returns the current stack pointer.
func (c *CPU) GetSP() uint64 { return c.SP[c.spIndex()] }

// SetSP writes the current stack pointer.
func (c *CPU) SetSP(v uint64) { c.SP[c.spIndex()] = v }

// reg reads Xn (31 is XZR).
func (c *CPU) reg(n uint8) uint64 { return c.X[n] }

// setReg writes Xn (31 is XZR: discarded).
func (c *CPU) setReg(n uint8, v uint64) {
	c.X[n] = v
	c.X[31] = 0
}

// regSP reads Xn with 31 as SP.
func (c *CPU) regSP(n uint8) uint64 {
	if n == 31 {
		return c.SP[c.spIndex()]
	}
	return c.X[n]
}

// setRegSP writes Xn with 31 as SP.
func (c *CPU) setRegSP(n uint8, v uint64) {
	if n == 31 {
		c.SP[c.spIndex()] = v
		return
	}
	c.X[n] = v
}

// Run executes up to budget steps — an instruction, or an exception taken
// instead (by its fetch or its execution) — and says why it stopped.
func (c *CPU) Run(budget uint64) StopReason {
	c.flush()
	c.stop = false
	pe := c.PE
	for step := uint64(0); step < budget; step++ {
		pc := uint64(pe.PC)
		var d *insn
		if pc>>12 == c.fVPage {
			d = &c.fPage.insns[pc>>2&1023]
			if d.fn == nil {
				c.decodeInto(d, c.fPA|mem.PA(pc&0xfff))
			}
		} else if d = c.fetchSlow(pc); d == nil {
			if c.vectorAt == pc {
				c.stopMsg = fmt.Sprintf("fetching the vector at %#x faults again (ESR %#x, FAR %#x)",
					pc, uint64(pe.ESR[pe.EL]), pe.FAR[pe.EL])
				return ExceptionLoop
			}
			c.vectorAt = uint64(pe.PC)
			if c.stop && c.hypervisorExit() {
				return Halted
			}
			continue
		}
		if pe.IL {
			// PSTATE.IL: the instruction takes the Illegal Execution state
			// exception (AArch64.CheckIllegalState) instead of executing.
			c.illegalState()
			if c.stop && c.hypervisorExit() {
				return Halted
			}
			continue
		}
		// A handler returns true to continue with the next instruction;
		// false when it set the PC itself (a branch, which retires through
		// branchTo, or an exception).
		if d.fn(c, d) {
			c.X[31] = 0
			pe.PC = mem.VA(pc + 4)
			c.BTYPE = 0
			c.Retired++
			c.vectorAt = ^uint64(0)
		}
		if c.stop && c.hypervisorExit() {
			return Halted
		}
	}
	return Budget
}

// hypervisorExit runs Options.Hypervisor for an exception taken to EL2,
// if that is why the loop stopped; it reports whether Run must return
// (a Stop, by the platform or the hypervisor).
func (c *CPU) hypervisorExit() bool {
	if !c.exit {
		return true
	}
	c.exit, c.stop = false, false
	pe := c.PE
	c.exitExc = pe.Last
	n := pe.Stats.Exceptions
	c.opts.Hypervisor.Exit(c, &c.exitExc)
	c.flush()
	c.vectorAt = ^uint64(0)
	if pe.EL == 2 {
		if !c.stop {
			c.Stop(fmt.Sprintf("the hypervisor left the PE at EL2 after %v", c.exitExc))
		}
		return true
	}
	// The hypervisor's ERET (from SPSR_EL2) restored the PSTATE fields
	// kept here and cleared the local monitor (AArch64.ExceptionReturn);
	// an exception it then made the lower EL take saved them again.
	c.setPSTATE(pe.SPSR[2])
	c.mon.valid = false
	if pe.Stats.Exceptions != n && pe.Last.TargetEL < 2 {
		c.taken()
	}
	return c.stop
}

// setPSTATE sets the PSTATE fields kept here from an SPSR value (ERET).
func (c *CPU) setPSTATE(spsr uint64) {
	c.BTYPE = uint8(spsr>>10) & 3
	c.UAO = spsr>>23&1 != 0
	c.DIT = spsr>>24&1 != 0
	c.SSBS = spsr>>12&1 != 0
	c.TCO = spsr>>25&1 != 0
	if c.hasNMI() {
		c.ALLINT = spsr>>13&1 != 0 // SetPSTATEFromPSR
	}
}

// hasNMI reports FEAT_NMI (ID_AA64PFR1_EL1.NMI): PSTATE.ALLINT, SPSR bit 13.
func (c *CPU) hasNMI() bool { return c.sys.v[rID_AA64PFR1_EL1]>>36&0xf != 0 }

// Step executes one instruction (or takes the exception its fetch or
// execution takes) and reports whether it retired.
func (c *CPU) Step() bool {
	before := c.Retired
	c.Run(1)
	return c.Retired != before
}

// fetchSlow fetches the instruction at pc through the PE and refills the
// fetch page; nil when the fetch took an exception.
func (c *CPU) fetchSlow(pc uint64) *insn {
	_, pa, e := c.PE.FetchPA(mem.VA(pc))
	if e.Taken() {
		c.taken()
		return nil
	}
	p := c.cache.page(pa &^ 0xfff)
	c.fVPage, c.fPage, c.fPA = pc>>12, p, pa&^0xfff
	// A page that now holds code must not be written by the fast path.
	c.wVPage = ^uint64(0)
	d := &p.insns[pc>>2&1023]
	if d.fn == nil {
		c.decodeInto(d, pa)
	}
	return d
}

// taken does what every exception entry needs beyond the PE's
// AArch64.TakeException: PSTATE.BTYPE saved in SPSR_ELx.BTYPE and
// cleared, UAO cleared, SSBS from SCTLR_ELx.DSSBS, ALLINT saved in
// SPSR_ELx[13] and set to NOT SCTLR_ELx.SPINTMASK (FEAT_NMI); the fast
// path dropped.
func (c *CPU) taken() {
	pe := c.PE
	t := pe.EL
	spsr := pe.SPSR[t] &^ (3<<10 | 1<<23 | 1<<24 | 1<<12 | 1<<25 | 1<<13)
	spsr |= uint64(c.BTYPE&3) << 10
	if c.UAO {
		spsr |= 1 << 23
	}
	if c.DIT {
		spsr |= 1 << 24
	}
	if c.SSBS {
		spsr |= 1 << 12
	}
	if c.TCO {
		spsr |= 1 << 25
	}
	if c.ALLINT {
		spsr |= 1 << 13
	}
	pe.SPSR[t] = spsr
	c.BTYPE, c.UAO = 0, false
	c.SSBS = c.sctlr(t)>>44&1 != 0 // SCTLR_ELx.DSSBS
	if c.hasNMI() {
		c.ALLINT = c.sctlr(t)>>62&1 == 0 // SCTLR_ELx.SPINTMASK
	}
	c.Exceptions++
	c.flush()
	if t == 2 && c.opts.Hypervisor != nil {
		c.exit, c.stop = true, true
	}
}

// took handles an exception the PE reports from an operation: it returns
// false (the instruction did not retire) when one was taken.
func (c *CPU) took(e cpu.Exception) bool {
	if e.Taken() {
		c.taken()
		return false
	}
	return true
}

// sctlr returns SCTLR_EL1 or SCTLR_EL2.
func (c *CPU) sctlr(el uint8) uint64 {
	if el == 2 {
		return uint64(c.PE.Regs.SCTLR_EL2)
	}
	return uint64(c.PE.Regs.SCTLR_EL1)
}

// branchTo completes a branch to target (AArch64.BranchAddr applied).
func (c *CPU) branchTo(target uint64) bool {
	c.X[31] = 0
	c.PE.PC = mem.VA(c.branchAddr(target))
	c.BTYPE = 0
	c.Retired++
	c.vectorAt = ^uint64(0)
	return false
}

// exception takes a synchronous exception the interpreter generates, with
// ESR = ec, IL=1 and iss, to target. The preferred return address is the
// PC (callers advance it first for SVC, HVC and SMC).
func (c *CPU) exception(kind cpu.ExceptionKind, target uint8, ec uint8, iss uint32) bool {
	e := cpu.Exception{Kind: kind, TargetEL: target, ESR: esrOf(ec, iss)}
	c.PE.TakeException(&e)
	c.taken()
	return false
}

// lowerTarget is where an exception that AArch64 routes like UNDEFINED goes:
// the current EL above EL1, EL2 from EL0 with HCR_EL2.TGE, otherwise EL1.
func (c *CPU) lowerTarget() uint8 {
	pe := c.PE
	if pe.EL == 2 || (pe.EL == 0 && pe.Regs.HCR_EL2.TGE()) {
		return 2
	}
	return 1
}

// illegalState takes the Illegal Execution state exception (EC 0x0E).
func (c *CPU) illegalState() {
	c.exception(cpu.IllegalState, c.lowerTarget(), 0x0e, 0)
}

// undefined takes the UNDEFINED exception; why, when not empty, is the
// interpreter's reason (reported to Options.Strict).
func (c *CPU) undefined(d *insn, why string) bool {
	if why != "" && c.opts.Strict != nil {
		c.opts.Strict(c.PE.PC, d.word, why)
	}
	c.PE.Undefined()
	c.taken()
	return false
}

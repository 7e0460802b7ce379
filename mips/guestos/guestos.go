// Package guestos is a guest kernel model for MIPS trap-and-emulate: it
// manages its software TLB the way a MIPS operating system does and runs
// processes with memory access patterns on any cp0.Machine (the engine or
// the reference model).
//
// The kernel keeps, per process, a linear page table of EntryLo pairs in
// guest memory and reaches it through its unmapped KSeg0. Its TLB refill
// handler reads BadVAddr from the commpage, loads the PTE pair, writes
// EntryLo0/1 and does TLBWR, then ERET. TLB invalid faults are demand
// paging (allocate a zeroed page, map it clean for a load, dirty for a
// store, update the entry with TLBP + TLBWI); TLB modified faults set the
// dirty bit (TLBP + TLBWI). A wired global entry maps kernel data in
// KSeg2. Processes have distinct ASIDs; a timer-like SYSCALL every quantum
// switches process by writing EntryHi.ASID. Every value a process loads is
// checked against what it stored, so the driver is also an end-to-end test.
package guestos

import (
	"fmt"
	"math/bits"

	"github.com/nestmmu/nestmmu/mips/cp0"
)

// Config describes the workload.
type Config struct {
	PageSize      uint32 // guest page size (the host's)
	RAMSize       uint32 // guest RAM size
	Processes     int    // number of processes (1..250)
	WorkingSet    int    // pages per process
	Quantum       int    // accesses per time slice
	StorePercent  int    // share of stores, percent
	RandomPercent int    // share of random (vs sequential) page choices
	Seed          uint64
	// KVMReads makes KVM read each trapped instruction at its PC, as the
	// emulator does, through its own access path.
	KVMReads bool
}

// DefaultConfig returns a workload whose working set exceeds a 64-entry
// host TLB.
func DefaultConfig() Config {
	return Config{PageSize: 4096, RAMSize: 32 << 20, Processes: 4, WorkingSet: 96, Quantum: 500, StorePercent: 30, RandomPercent: 30, Seed: 1, KVMReads: true}
}

// Stats counts what the guest kernel did.
type Stats struct {
	Accesses        uint64 // user loads and stores completed
	Refills         uint64 // guest TLB refill handler runs
	PageFaults      uint64 // TLB invalid: demand paging
	ModFaults       uint64 // TLB modified: dirty bit set
	ContextSwitches uint64
	Verified        uint64 // loads whose value was checked
	Errors          uint64 // wrong values or unexpected exceptions
	Ops             uint64 // machine operations issued
	FirstError      string
}

type proc struct {
	asid   uint32
	ptGPA  uint32 // linear table of EntryLo pairs
	pc     uint32
	cursor int
	// values[(va-userBase)/4] is the last value stored to the word at
	// va of the working set (zero: never stored).
	values []uint32
}

// OS is the guest kernel.
type OS struct {
	m        cp0.Machine
	into     cp0.ResultWriter // m's, if it has one
	cfg      Config
	shift    uint
	procs    []proc
	cur      int
	nextPage uint32 // next free guest physical page
	rng      uint64
	kdata    uint32 // KSeg2 address of kernel data
	// The divisors of the draws of userAccess.
	percent, pages, words divisor
	// ures and kres receive the results of user accesses and of kernel
	// operations; op is the operation ExecInto reads.
	ures, kres cp0.Result
	op         cp0.Op
	Stats      Stats
}

// Guest virtual layout.
const (
	userBase  = 0x00400000
	kernText  = cp0.GuestKSeg0 + 0x1000 // handler code (PCs)
	kseg2Data = cp0.GuestKSeg23
)

// Machine is what the guest kernel runs on.
type Machine = cp0.Machine

// New boots the guest kernel on m: exception base, TLB invalidated with
// unique entries, a wired global KSeg2 entry, one page table per process.
func New(m cp0.Machine, cfg Config) (*OS, error) {
	if cfg.Processes < 1 || cfg.Processes > 250 {
		return nil, fmt.Errorf("guestos: process count %d out of range [1,250]", cfg.Processes)
	}
	if cfg.WorkingSet < 1 || cfg.Quantum < 1 {
		return nil, fmt.Errorf("guestos: working set %d and quantum %d must be positive", cfg.WorkingSet, cfg.Quantum)
	}
	shift := uint(0)
	for uint32(1)<<shift < cfg.PageSize {
		shift++
	}
	if cfg.PageSize < 4096 || uint32(1)<<shift != cfg.PageSize {
		return nil, fmt.Errorf("guestos: page size %d is not a power of two >= 4096", cfg.PageSize)
	}
	o := &OS{m: m, cfg: cfg, shift: shift, rng: cfg.Seed*0x9e3779b97f4a7c15 | 1}
	o.into, _ = m.(cp0.ResultWriter)
	o.percent, o.pages, o.words = newDivisor(100), newDivisor(uint32(cfg.WorkingSet)), newDivisor(cfg.PageSize/4)
	// Pages: 0-1 kernel text, 2-3 kernel data (KSeg2), then page tables,
	// then user pages.
	o.nextPage = 4
	ptBytes := uint32(cfg.WorkingSet/2+1) * 8
	need := uint64(4) + uint64(cfg.Processes)*(uint64(ptBytes)/uint64(cfg.PageSize)+1) + uint64(cfg.Processes)*uint64(cfg.WorkingSet)
	if need*uint64(cfg.PageSize) > uint64(cfg.RAMSize) {
		return nil, fmt.Errorf("guestos: %d processes x %d pages need %d pages, RAM has %d", cfg.Processes, cfg.WorkingSet, need, cfg.RAMSize/cfg.PageSize)
	}
	o.boot()
	for i := 0; i < cfg.Processes; i++ {
		p := proc{asid: uint32(i + 1), ptGPA: o.nextPage << shift, pc: userBase + 0x100, values: make([]uint32, cfg.WorkingSet<<shift>>2)}
		o.nextPage += ptBytes>>shift + 1
		o.procs = append(o.procs, p)
	}
	// Enter the first process.
	o.kop(cp0.Op{Kind: cp0.OpMTC0, Reg: cp0.RegEntryHi, Value: o.procs[0].asid})
	o.eretTo(o.procs[0].pc)
	return o, o.err()
}

func (o *OS) err() error {
	if o.Stats.Errors != 0 {
		return fmt.Errorf("guestos: %s", o.Stats.FirstError)
	}
	return nil
}

func (o *OS) fail(format string, args ...any) {
	o.Stats.Errors++
	if o.Stats.FirstError == "" {
		o.Stats.FirstError = fmt.Sprintf(format, args...)
	}
}

func (o *OS) rand() uint64 {
	x := o.rng
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	o.rng = x
	return x * 0x2545f4914f6cdd1d
}

// draw returns a pseudo-random value in [0, d.d): the top 31 bits of the
// next random number mod d.d.
func (o *OS) draw(d divisor) int { return int(d.mod(uint32(o.rand() >> 33))) }

// divisor computes x mod d for 32-bit x by multiplications (Lemire, Kaser
// and Kurz, "Faster Remainder by Direct Computation", 2019: exact for
// 32-bit x and d with the 64-bit inverse m = ceil(2^64/d)).
type divisor struct {
	d uint32
	m uint64
}

func newDivisor(d uint32) divisor { return divisor{d: d, m: ^uint64(0)/uint64(d) + 1} }

func (v divisor) mod(x uint32) uint32 {
	hi, _ := bits.Mul64(v.m*uint64(x), uint64(v.d))
	return uint32(hi)
}

// exec issues one operation, its result to *r.
func (o *OS) exec(op cp0.Op, r *cp0.Result) {
	o.Stats.Ops++
	if o.into != nil {
		// Field by field: a struct copy would reload op's fields, just
		// stored one by one, with wide loads that wait on those stores.
		x := &o.op
		x.Kind, x.PC, x.BD, x.VA = op.Kind, op.PC, op.BD, op.VA
		x.Size, x.Reg, x.Sel, x.Value = op.Size, op.Reg, op.Sel, op.Value
		o.into.ExecInto(x, r)
		return
	}
	*r = o.m.Exec(op)
}

// kop issues a kernel instruction at a handler PC and returns the value it
// read; trapped instructions are first read by KVM when KVMReads is set.
func (o *OS) kop(op cp0.Op) uint32 {
	op.PC = kernText + uint32(op.Kind)*4
	r := &o.kres
	switch op.Kind {
	case cp0.OpMTC0, cp0.OpMFC0, cp0.OpTLBP, cp0.OpTLBR, cp0.OpTLBWI, cp0.OpTLBWR, cp0.OpERET:
		if o.cfg.KVMReads {
			o.exec(cp0.Op{Kind: cp0.OpKVMRead, PC: op.PC, VA: op.PC}, r)
			if r.Outcome != cp0.Done {
				o.fail("KVM read of kernel instruction at %#x: %v", op.PC, *r)
			} else if want := 0x40800000 | uint32(op.Kind); r.Value != want {
				o.fail("KVM read of kernel instruction at %#x = %#x, want %#x", op.PC, r.Value, want)
			}
		}
	}
	o.exec(op, r)
	if r.Outcome != cp0.Done {
		o.fail("kernel op %v: %v", op, *r)
	}
	return r.Value
}

func (o *OS) kload(va uint32) uint32 {
	return o.kop(cp0.Op{Kind: cp0.OpLoad, VA: va, Size: 4})
}

func (o *OS) kstore(va, v uint32) {
	o.kop(cp0.Op{Kind: cp0.OpStore, VA: va, Size: 4, Value: v})
}

func (o *OS) mtc0(reg, sel uint8, v uint32) {
	o.kop(cp0.Op{Kind: cp0.OpMTC0, Reg: reg, Sel: sel, Value: v})
}

func (o *OS) pageMask() uint32 { return (o.cfg.PageSize*2 - 1) &^ 0x1fff }

func (o *OS) boot() {
	ps := o.cfg.PageSize
	// Kernel text: one recognisable word per trapped instruction kind, so
	// KVM's reads can be checked.
	for k := cp0.OpKind(0); k < cp0.NumOpKinds; k++ {
		o.kop(cp0.Op{Kind: cp0.OpStore, VA: kernText + uint32(k)*4, Size: 4, Value: 0x40800000 | uint32(k)})
	}
	o.mtc0(cp0.RegStatus, 0, 0) // kernel mode, BEV=0, ERL=0, EXL=0
	o.mtc0(cp0.RegEBase, cp0.SelEBase, cp0.GuestKSeg0)
	o.mtc0(cp0.RegPageMask, 0, o.pageMask())
	o.mtc0(cp0.RegWired, 0, 0)
	o.mtc0(cp0.RegEntryLo0, 0, 0)
	o.mtc0(cp0.RegEntryLo1, 0, 0)
	for i := 0; i < cp0.Entries; i++ {
		// Unique, invalid: VPN2s in the unmapped KSeg0 never match.
		o.mtc0(cp0.RegEntryHi, 0, cp0.GuestKSeg0+uint32(i)*2*ps)
		o.mtc0(cp0.RegIndex, 0, uint32(i))
		o.kop(cp0.Op{Kind: cp0.OpTLBWI})
	}
	// Wired global entry 0: kernel data pages 2 and 3 at KSeg2.
	o.mtc0(cp0.RegEntryHi, 0, kseg2Data)
	o.mtc0(cp0.RegEntryLo0, 0, (2*ps)>>12<<6|3<<3|cp0.EntryLoD|cp0.EntryLoV|cp0.EntryLoG)
	o.mtc0(cp0.RegEntryLo1, 0, (3*ps)>>12<<6|3<<3|cp0.EntryLoD|cp0.EntryLoV|cp0.EntryLoG)
	o.mtc0(cp0.RegIndex, 0, 0)
	o.kop(cp0.Op{Kind: cp0.OpTLBWI})
	o.mtc0(cp0.RegWired, 0, 1)
	o.kdata = kseg2Data
}

// eretTo returns to user mode at pc.
func (o *OS) eretTo(pc uint32) {
	o.mtc0(cp0.RegStatus, 0, cp0.StatusUM|cp0.StatusEXL)
	o.mtc0(cp0.RegEPC, 0, pc)
	o.kop(cp0.Op{Kind: cp0.OpERET})
}

// ptSlot returns the KSeg0 address of the PTE for user address va.
func (o *OS) ptSlot(p *proc, va uint32) (uint32, bool) {
	if va < userBase {
		return 0, false
	}
	page := (va - userBase) >> o.shift
	if page >= uint32(o.cfg.WorkingSet/2+1)*2 {
		return 0, false
	}
	return cp0.GuestKSeg0 + p.ptGPA + page*4, true
}

// Run executes n user accesses (plus all the kernel work they cause) and
// returns an error describing the first wrong value or unexpected event.
func (o *OS) Run(n int) error {
	for i, q := 0, 0; i < n; i++ {
		// q is i % Quantum.
		if q == 0 && i > 0 && len(o.procs) > 1 {
			o.contextSwitch()
		}
		if q++; q == o.cfg.Quantum {
			q = 0
		}
		o.userAccess()
		if o.Stats.Errors > 0 {
			break
		}
	}
	return o.err()
}

func (o *OS) userAccess() {
	p := &o.procs[o.cur]
	ws := o.cfg.WorkingSet
	var page int
	if o.draw(o.percent) < o.cfg.RandomPercent {
		page = o.draw(o.pages)
	} else {
		page = p.cursor
		if p.cursor++; p.cursor == ws {
			p.cursor = 0
		}
	}
	va := userBase + uint32(page)<<o.shift + uint32(o.draw(o.words))*4
	st := o.draw(o.percent) < o.cfg.StorePercent
	op := cp0.Op{Kind: cp0.OpLoad, PC: p.pc, VA: va, Size: 4}
	if st {
		op.Kind = cp0.OpStore
		op.Value = uint32(o.rand())
	}
	r := &o.ures
	for try := 0; try < 4; try++ {
		o.exec(op, r)
		switch r.Outcome {
		case cp0.Done:
			o.Stats.Accesses++
			if st {
				p.values[(va-userBase)>>2] = op.Value
			} else {
				o.Stats.Verified++
				if want := p.values[(va-userBase)>>2]; r.Value != want {
					o.fail("process %d load %#x = %#x, want %#x", o.cur, va, r.Value, want)
				}
			}
			return
		case cp0.Exception:
			o.handle(p, r)
			if o.Stats.Errors > 0 {
				return
			}
		default:
			o.fail("process %d access %v: %v", o.cur, op, *r)
			return
		}
	}
	o.fail("process %d access %v did not complete", o.cur, op)
}

// handle is the guest kernel's exception handler; it returns to the
// faulting instruction with ERET.
func (o *OS) handle(p *proc, r *cp0.Result) {
	switch {
	case r.PC&0xfff == cp0.VectorRefill && (r.Code == cp0.ExcTLBL || r.Code == cp0.ExcTLBS):
		o.refill(p)
	case r.Code == cp0.ExcTLBL || r.Code == cp0.ExcTLBS:
		o.pageFault(p, r.Code == cp0.ExcTLBS)
	case r.Code == cp0.ExcMod:
		o.modFault(p)
	default:
		o.fail("process %d: unexpected %v", o.cur, *r)
		return
	}
	o.kop(cp0.Op{Kind: cp0.OpERET})
}

// refill is the TLB refill handler: BadVAddr from the commpage, PTE pair
// from the page table, TLBWR.
func (o *OS) refill(p *proc) {
	o.Stats.Refills++
	va := o.kload(cp0.CommpageAddr(o.cfg.PageSize) + cp0.RegOffset(cp0.RegBadVAddr, 0))
	slot, ok := o.ptSlot(p, va)
	if !ok {
		o.fail("process %d: refill outside its space at %#x", o.cur, va)
		return
	}
	even := slot &^ 7
	o.mtc0(cp0.RegEntryLo0, 0, o.kload(even))
	o.mtc0(cp0.RegEntryLo1, 0, o.kload(even+4))
	o.kop(cp0.Op{Kind: cp0.OpTLBWR})
}

// updateEntry reloads the pair of va into the TLB: TLBP, then TLBWI on a
// hit or TLBWR on a miss.
func (o *OS) updateEntry(slot uint32) {
	even := slot &^ 7
	o.mtc0(cp0.RegEntryLo0, 0, o.kload(even))
	o.mtc0(cp0.RegEntryLo1, 0, o.kload(even+4))
	idx := o.kop(cp0.Op{Kind: cp0.OpTLBP})
	if idx&cp0.IndexP != 0 {
		o.kop(cp0.Op{Kind: cp0.OpTLBWR})
		return
	}
	o.kop(cp0.Op{Kind: cp0.OpTLBWI})
}

// pageFault is demand paging on a TLB invalid exception.
func (o *OS) pageFault(p *proc, store bool) {
	o.Stats.PageFaults++
	va := o.kop(cp0.Op{Kind: cp0.OpMFC0, Reg: cp0.RegBadVAddr})
	slot, ok := o.ptSlot(p, va)
	if !ok {
		o.fail("process %d: page fault outside its space at %#x", o.cur, va)
		return
	}
	pte := o.kload(slot)
	if pte&cp0.EntryLoV == 0 {
		gpa := o.nextPage << o.shift
		o.nextPage++
		pte = gpa>>12<<6 | 3<<3 | cp0.EntryLoV
	}
	if store {
		pte |= cp0.EntryLoD
	}
	o.kstore(slot, pte)
	o.updateEntry(slot)
}

// modFault marks the page dirty on a TLB modified exception.
func (o *OS) modFault(p *proc) {
	o.Stats.ModFaults++
	va := o.kop(cp0.Op{Kind: cp0.OpMFC0, Reg: cp0.RegBadVAddr})
	slot, ok := o.ptSlot(p, va)
	if !ok {
		o.fail("process %d: TLB modified outside its space at %#x", o.cur, va)
		return
	}
	o.kstore(slot, o.kload(slot)|cp0.EntryLoD)
	o.updateEntry(slot)
}

// contextSwitch enters the kernel with SYSCALL, accounts the slice in
// kernel data (KSeg2), switches ASID and returns to the next process.
func (o *OS) contextSwitch() {
	p := &o.procs[o.cur]
	r := &o.kres
	o.exec(cp0.Op{Kind: cp0.OpSyscall, PC: p.pc}, r)
	if r.Outcome != cp0.Exception || r.Code != cp0.ExcSys {
		o.fail("syscall: %v", *r)
		return
	}
	o.Stats.ContextSwitches++
	slot := o.kdata + uint32(o.cur)*4
	o.kstore(slot, o.kload(slot)+1)
	o.cur = (o.cur + 1) % len(o.procs)
	o.mtc0(cp0.RegEntryHi, 0, o.procs[o.cur].asid)
	o.eretTo(o.procs[o.cur].pc)
}

// Slices returns the number of slices each process ran, as counted in the
// guest kernel's KSeg2 data (read through the machine).
func (o *OS) Slices() []uint32 {
	out := make([]uint32, len(o.procs))
	// Read in kernel mode: SYSCALL in, count, and return to the process.
	p := &o.procs[o.cur]
	o.exec(cp0.Op{Kind: cp0.OpSyscall, PC: p.pc}, &o.kres)
	for i := range out {
		out[i] = o.kload(o.kdata + uint32(i)*4)
	}
	o.eretTo(p.pc)
	return out
}

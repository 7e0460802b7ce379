// Package randprog generates randomized guest programs for MIPS
// trap-and-emulate and runs them on two machines side by side (the
// reference model and the engine), reporting the first difference in any
// result, any CP0 register, any guest TLB entry or the dirty log.
//
// Programs mix TLB writes (TLBWI/TLBWR with varied page sizes, ASIDs and
// V/D/G bits), TLBP/TLBR, ASID changes, mode switches (Status, ERET,
// SYSCALL), loads and stores of every size to every segment (useg,
// KSeg0, KSeg2/3, commpage, host KSeg0/1 MMIO, host KSeg2/3, unaligned),
// stores to clean and to guest-read-only pages, instruction fetches, KVM's
// own instruction reads and CACHE operations, full flushes (with host page
// migration) and dirty-log harvests. The generator steers with the state of
// the reference machine so that it never creates two TLB entries that could
// match the same address (left undefined by the architecture).
package randprog

import (
	"fmt"
	"slices"

	"github.com/nestmmu/nestmmu/mips/cp0"
)

// Gen generates operations.
type Gen struct {
	pageSize uint32
	ramSize  uint32
	rng      uint64
	useg     []uint32 // pair-aligned guest useg addresses
	kseg23   []uint32 // pair-aligned guest KSeg2/3 addresses
	gpas     []uint32 // guest physical pages used as PFNs (a few are not RAM)
	buf      []cp0.Op
}

// New returns a generator for a guest with the given page and RAM sizes.
func New(pageSize, ramSize uint32, seed uint64) *Gen {
	g := &Gen{pageSize: pageSize, ramSize: ramSize, rng: seed*0x9e3779b97f4a7c15 + 1}
	pair := 2 * pageSize
	for k := uint32(0); k < 12; k++ {
		g.useg = append(g.useg, 0x00400000+k*pair)
	}
	g.useg = append(g.useg, cp0.CommpageAddr(pageSize)&^(pair-1), 0, 0x3fffffff&^(pair-1), 0x00400000+64*pair)
	for k := uint32(0); k < 5; k++ {
		g.kseg23 = append(g.kseg23, 0x60000000+k*pair)
	}
	g.kseg23 = append(g.kseg23, 0x7fffffff&^(pair-1))
	pages := ramSize / pageSize
	for k := 0; k < 20; k++ {
		g.gpas = append(g.gpas, uint32(g.intn(int(pages)))*pageSize)
	}
	g.gpas = append(g.gpas, ramSize, ramSize+pageSize*3)
	return g
}

func (g *Gen) next() uint64 {
	x := g.rng
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	g.rng = x
	return x * 0x2545f4914f6cdd1d
}

func (g *Gen) intn(n int) int { return int((g.next() >> 33) % uint64(n)) }

// pct returns true with probability p percent.
func (g *Gen) pct(p int) bool { return g.intn(1000) < p*10 }

func (g *Gen) pick(s []uint32) uint32 { return s[g.intn(len(s))] }

func (g *Gen) pc() uint32 {
	if g.pct(50) {
		return 0x00400000 + uint32(g.intn(256))*4
	}
	return 0x40001000 + uint32(g.intn(256))*4
}

func (g *Gen) emit(op cp0.Op) {
	if op.PC == 0 {
		op.PC = g.pc()
		op.BD = g.pct(10)
	}
	g.buf = append(g.buf, op)
}

func (g *Gen) mtc0(reg, sel uint8, v uint32) {
	g.emit(cp0.Op{Kind: cp0.OpMTC0, Reg: reg, Sel: sel, Value: v})
}

func kernelMode(m cp0.Machine) bool {
	st := m.CP0(cp0.RegStatus, 0)
	return st&(cp0.StatusEXL|cp0.StatusERL) != 0 || st&cp0.StatusUM == 0
}

// Next returns the next few operations, steered by the state of m (the
// reference machine). The slice is reused by the following call.
func (g *Gen) Next(m cp0.Machine) []cp0.Op {
	g.buf = g.buf[:0]
	kern := kernelMode(m)
	r := g.intn(1000)
	switch {
	case r < 500:
		g.access(m, kern)
	case r < 560:
		g.emit(cp0.Op{Kind: cp0.OpFetch, VA: g.addr(kern, 4)})
	case r < 600:
		g.emit(cp0.Op{Kind: cp0.OpKVMRead, VA: g.addr(kern, 4)})
	case r < 620:
		g.emit(cp0.Op{Kind: cp0.OpCache, VA: g.addr(kern, 1)})
	case !kern && r < 990:
		// User mode: mostly accesses; a syscall or a CP0 op gets back to
		// kernel mode.
		if g.pct(50) {
			g.emit(cp0.Op{Kind: cp0.OpSyscall})
		} else if g.pct(50) {
			g.access(m, kern)
		} else {
			g.emit(cp0.Op{Kind: cp0.OpTLBWR})
		}
	case r < 760:
		g.tlbWrite(m)
	case r < 800:
		g.asidChange()
	case r < 860:
		g.modeSwitch()
	case r < 890:
		g.mtc0(cp0.RegIndex, 0, uint32(g.intn(64)))
		g.emit(cp0.Op{Kind: cp0.OpTLBR})
	case r < 910:
		g.emit(cp0.Op{Kind: cp0.OpTLBP})
	case r < 950:
		g.emit(cp0.Op{Kind: cp0.OpMFC0, Reg: uint8(g.intn(32)), Sel: uint8(g.intn(8) * g.intn(2))})
	case r < 990:
		g.miscMTC0()
	case r < 997:
		g.emit(cp0.Op{Kind: cp0.OpHarvestDirty})
	default:
		g.emit(cp0.Op{Kind: cp0.OpFlushAll})
	}
	return g.buf
}

// addr picks an address for an access of size bytes.
func (g *Gen) addr(kern bool, size uint32) uint32 {
	pair := 2 * g.pageSize
	off := uint32(g.intn(int(pair))) &^ (size - 1)
	if g.pct(2) {
		off |= 1 // unaligned for size > 1
	}
	r := g.intn(100)
	switch {
	case r < 55:
		return g.pick(g.useg) + off
	case r < 70:
		return g.pick(g.kseg23) + off
	case r < 85:
		return cp0.GuestKSeg0 + g.pick(g.gpas)&^(pair-1) + off
	case r < 90:
		return cp0.CommpageAddr(g.pageSize) + uint32(g.intn(int(g.pageSize)))&^(size-1)
	case r < 95:
		return 0xbf000000 + uint32(g.intn(64))&^(size-1) // host KSeg1: the MMIO device
	case r < 97:
		return 0x80000000 + uint32(g.intn(1<<20))&^(size-1)
	case r < 98:
		return 0xc0000000 + off
	}
	return uint32(g.next())
}

func (g *Gen) access(m cp0.Machine, kern bool) {
	size := uint32(1) << g.intn(3)
	va := g.addr(kern, size)
	if !g.pct(50) {
		g.emit(cp0.Op{Kind: cp0.OpLoad, VA: va, Size: uint8(size)})
		return
	}
	// Kernel stores to the commpage may only touch scratch storage: the
	// register file is KVM's (a raw store there would bypass emulation,
	// which the series' dynamic translation never generates).
	if kern && va/g.pageSize == cp0.CommpageAddr(g.pageSize)/g.pageSize {
		off := va % g.pageSize
		if off < cp0.CommpageRegsSize && off < cp0.RegOffset(cp0.RegKScratch, 2) {
			va = va - off + cp0.RegOffset(cp0.RegKScratch, 2) + uint32(g.intn(24))&^(size-1)
		}
	}
	g.emit(cp0.Op{Kind: cp0.OpStore, VA: va, Size: uint8(size), Value: uint32(g.next())})
}

func (g *Gen) asid() uint32 {
	if g.pct(5) {
		return 255
	}
	return uint32(g.intn(4))
}

func (g *Gen) asidChange() {
	g.mtc0(cp0.RegEntryHi, 0, g.pick(g.useg)|g.asid())
}

func (g *Gen) pageMask() uint32 {
	base := g.pageSize/4096*4096*2 - 1 // pair size - 1
	mask := (base &^ 0x1fff)
	switch r := g.intn(100); {
	case r < 12:
		mask = mask<<2 | 0x6000
	case r < 15 && g.pageSize > 4096:
		mask >>= 2
	}
	return mask & cp0.PageMaskMask
}

func (g *Gen) entryLo() uint32 {
	gpa := g.pick(g.gpas)
	if g.pct(10) {
		gpa += g.pageSize
	}
	lo := gpa>>12<<6 | 3<<3
	if g.pct(85) {
		lo |= cp0.EntryLoV
	}
	if g.pct(65) {
		lo |= cp0.EntryLoD
	}
	if g.pct(4) {
		lo |= cp0.EntryLoG
	}
	return lo
}

// tlbWrite writes a TLB entry with TLBWI or TLBWR, choosing an address and
// ASID that do not overlap any other entry.
func (g *Gen) tlbWrite(m cp0.Machine) {
	mask := g.pageMask()
	lo0, lo1 := g.entryLo(), g.entryLo()
	if g.pct(3) {
		lo0 |= cp0.EntryLoG
		lo1 |= cp0.EntryLoG
	}
	random := g.pct(50)
	var idx int
	if random {
		idx = int(m.CP0(cp0.RegRandom, 0) & cp0.IndexMask)
	} else {
		idx = g.intn(cp0.Entries)
	}
	for try := 0; try < 6; try++ {
		var va uint32
		switch r := g.intn(100); {
		case r < 70:
			va = g.pick(g.useg)
		case r < 97:
			va = g.pick(g.kseg23)
		default:
			va = 0x80000000 + uint32(g.intn(64))<<20
		}
		hi := va | g.asid()
		cand := cp0.EntryFromRegs(hi, lo0, lo1, mask)
		ok := true
		for j := 0; j < cp0.Entries && ok; j++ {
			if j != idx {
				o := m.TLBEntry(j)
				ok = !cp0.Overlaps(&cand, &o)
			}
		}
		if !ok {
			continue
		}
		g.mtc0(cp0.RegPageMask, 0, mask)
		g.mtc0(cp0.RegEntryHi, 0, hi)
		g.mtc0(cp0.RegEntryLo0, 0, lo0)
		g.mtc0(cp0.RegEntryLo1, 0, lo1)
		if random {
			g.emit(cp0.Op{Kind: cp0.OpTLBWR})
		} else {
			g.mtc0(cp0.RegIndex, 0, uint32(idx))
			g.emit(cp0.Op{Kind: cp0.OpTLBWI})
		}
		return
	}
	g.emit(cp0.Op{Kind: cp0.OpTLBP})
}

// modeSwitch changes Status or returns from an exception, often to user
// mode.
func (g *Gen) modeSwitch() {
	st := uint32(0)
	if g.pct(60) {
		st |= cp0.StatusUM
	}
	if g.pct(8) {
		st |= cp0.StatusBEV
	}
	if g.pct(50) {
		st |= cp0.StatusIE
	}
	switch r := g.intn(100); {
	case r < 60: // set up and ERET
		g.mtc0(cp0.RegStatus, 0, st|cp0.StatusEXL)
		g.mtc0(cp0.RegEPC, 0, g.pc())
		g.emit(cp0.Op{Kind: cp0.OpERET})
	case r < 70:
		g.mtc0(cp0.RegStatus, 0, st|cp0.StatusERL)
		g.mtc0(cp0.RegErrorEPC, 0, g.pc())
		g.emit(cp0.Op{Kind: cp0.OpERET})
	case r < 85:
		g.mtc0(cp0.RegStatus, 0, st&^cp0.StatusUM)
	default:
		g.mtc0(cp0.RegStatus, 0, st)
	}
}

func (g *Gen) miscMTC0() {
	switch g.intn(10) {
	case 0:
		g.mtc0(cp0.RegContext, 0, uint32(g.next()))
	case 1:
		g.mtc0(cp0.RegWired, 0, uint32(g.intn(6)))
	case 2:
		g.mtc0(cp0.RegEBase, cp0.SelEBase, uint32(g.next()))
	case 3:
		g.mtc0(cp0.RegCause, 0, uint32(g.next()))
	case 4:
		g.mtc0(cp0.RegKScratch, uint8(2+g.intn(6)), uint32(g.next()))
	case 5:
		g.mtc0(cp0.RegPageMask, 0, uint32(g.next()))
	case 6:
		g.mtc0(cp0.RegEntryLo0, 0, uint32(g.next()))
	case 7:
		g.mtc0(cp0.RegRandom, 0, uint32(g.next()))
	case 8:
		g.mtc0(cp0.RegIndex, 0, uint32(g.next()))
	default:
		g.mtc0(cp0.RegEPC, 0, uint32(g.next()))
	}
}

// Allowed reports whether op, about to run on machine m (the reference),
// is something a correct guest kernel may do. Two things are excluded,
// both outside what the architecture or KVM define: a TLBWI/TLBWR that
// would leave two entries able to match the same address (undefined; real
// cores may raise a machine check), and a guest kernel store into the
// register file part of the commpage other than KScratch (it would change
// a register behind KVM's back; the series' dynamic translation only turns
// safe MTC0s into such stores).
func Allowed(m cp0.Machine, op cp0.Op, pageSize uint32) bool {
	switch op.Kind {
	case cp0.OpTLBWI, cp0.OpTLBWR:
		if !kernelMode(m) {
			return true
		}
		idx := int(m.CP0(cp0.RegIndex, 0) & cp0.IndexMask)
		if op.Kind == cp0.OpTLBWR {
			idx = int(m.CP0(cp0.RegRandom, 0) & cp0.IndexMask)
		}
		cand := cp0.EntryFromRegs(m.CP0(cp0.RegEntryHi, 0), m.CP0(cp0.RegEntryLo0, 0), m.CP0(cp0.RegEntryLo1, 0), m.CP0(cp0.RegPageMask, 0))
		for j := 0; j < cp0.Entries; j++ {
			if o := m.TLBEntry(j); j != idx && cp0.Overlaps(&cand, &o) {
				return false
			}
		}
	case cp0.OpStore:
		cp := cp0.CommpageAddr(pageSize)
		if !kernelMode(m) || op.VA < cp || op.VA-cp >= cp0.CommpageRegsSize {
			return true
		}
		off := op.VA - cp
		return off >= cp0.RegOffset(cp0.RegKScratch, 2)
	}
	return true
}

// Mismatch is the first difference between two machines.
type Mismatch struct {
	Step int    // operation number
	Op   cp0.Op // the operation (zero for a state check)
	What string
	Ref  cp0.Result
	Got  cp0.Result
}

// Error describes the mismatch with both results.
func (m *Mismatch) Error() string {
	return fmt.Sprintf("op %d (%v): %s\n  ref: %v\n  got: %v", m.Step, m.Op, m.What, m.Ref, m.Got)
}

// DirtyLogger is a machine with a dirty log.
type DirtyLogger interface {
	HarvestDirty() []uint32
}

// logsDirty reports whether m keeps a dirty log: a DirtyLogger whose
// optional LogsDirty method (the engine's) does not say it keeps none.
func logsDirty(m cp0.Machine) (DirtyLogger, bool) {
	d, ok := m.(DirtyLogger)
	if l, has := m.(interface{ LogsDirty() bool }); ok && has {
		ok = l.LogsDirty()
	}
	return d, ok
}

// Run executes at least n generated operations on ref and dut and returns
// the number executed and the first mismatch, or nil. Dirty logs are
// compared at each harvest when both machines keep one.
func Run(ref, dut cp0.Machine, g *Gen, n int) (int, *Mismatch) {
	return RunChecked(ref, dut, g, n, nil)
}

// RunChecked is Run with an invariant of the machine under test checked
// after every operation: a non-empty string from check is the mismatch.
func RunChecked(ref, dut cp0.Machine, g *Gen, n int, check func() string) (int, *Mismatch) {
	step, next := 0, 4096
	rl, rok := logsDirty(ref)
	dl, dok := logsDirty(dut)
	for step < n {
		for _, op := range g.Next(ref) {
			step++
			if op.Kind == cp0.OpHarvestDirty && rok && dok {
				a, b := rl.HarvestDirty(), dl.HarvestDirty()
				if !slices.Equal(a, b) {
					return step, &Mismatch{Step: step, Op: op, What: fmt.Sprintf("dirty log differs: ref %#x, got %#x", a, b)}
				}
				continue
			}
			want, got := ref.Exec(op), dut.Exec(op)
			if want != got {
				return step, &Mismatch{Step: step, Op: op, What: "result differs", Ref: want, Got: got}
			}
			if check != nil {
				if s := check(); s != "" {
					return step, &Mismatch{Step: step, Op: op, What: s, Ref: want, Got: got}
				}
			}
		}
		if step >= next {
			next += 4096
			if mm := CompareState(ref, dut); mm != "" {
				return step, &Mismatch{Step: step, What: mm}
			}
		}
	}
	if mm := CompareState(ref, dut); mm != "" {
		return step, &Mismatch{Step: step, What: mm}
	}
	return step, nil
}

// CompareState compares every CP0 register and guest TLB entry.
func CompareState(a, b cp0.Machine) string {
	for reg := uint8(0); reg < 32; reg++ {
		for sel := uint8(0); sel < 8; sel++ {
			if x, y := a.CP0(reg, sel), b.CP0(reg, sel); x != y {
				return fmt.Sprintf("CP0 $%d,%d differs: ref %#x, got %#x", reg, sel, x, y)
			}
		}
	}
	for i := 0; i < cp0.Entries; i++ {
		if x, y := a.TLBEntry(i), b.TLBEntry(i); x != y {
			return fmt.Sprintf("TLB entry %d differs: ref %+v, got %+v", i, x, y)
		}
	}
	return ""
}

package guestos

import (
	"fmt"
	"sort"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/kvm"
)

// Prot is a VMA's protection.
type Prot uint8

// Protections.
const (
	ProtRead Prot = 1 << iota
	ProtWrite
	ProtExec
)

// VMA is a range of a process's address space and what it allows.
type VMA struct {
	Start, End uint64
	Prot       Prot
}

// MM is a process address space: its TTBR0 tables, its ASID context ID
// and its VMAs.
type MM struct {
	root  uint64
	ctxID uint64 // generation | ASID (guarded by OS.mu)
	vmas  []VMA  // sorted, disjoint
	// tables counts the valid entries of each of the mm's table pages
	// (the kernel's bookkeeping, as struct page's pt count).
	tables   map[uint64]int
	mmapNext uint64
}

// Proc is a process: single-threaded, on the core that created it.
type Proc struct {
	PID    int
	mm     *MM
	kstack uint64 // kernel stack page; pt_regs at its top
	core   *Core
	exited bool
}

// MM returns the process's address space.
func (p *Proc) MM() *MM { return p.mm }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool { return p.exited }

// Root returns the GPA of the mm's TTBR0 table.
func (m *MM) Root() uint64 { return m.root }

// VMAs returns the mm's VMAs in address order (do not modify).
func (m *MM) VMAs() []VMA { return m.vmas }

func (m *MM) find(va uint64) *VMA {
	i := sort.Search(len(m.vmas), func(i int) bool { return m.vmas[i].End > va })
	if i < len(m.vmas) && m.vmas[i].Start <= va {
		return &m.vmas[i]
	}
	return nil
}

func (m *MM) overlaps(start, end uint64) bool {
	i := sort.Search(len(m.vmas), func(i int) bool { return m.vmas[i].End > start })
	return i < len(m.vmas) && m.vmas[i].Start < end
}

// remove takes [start, end) out of the VMAs (splitting where needed).
func (m *MM) remove(start, end uint64) {
	var out []VMA
	for _, v := range m.vmas {
		if v.End <= start || v.Start >= end {
			out = append(out, v)
			continue
		}
		if v.Start < start {
			out = append(out, VMA{v.Start, start, v.Prot})
		}
		if v.End > end {
			out = append(out, VMA{end, v.End, v.Prot})
		}
	}
	m.vmas = out
}

// ptRegs is the size of pt_regs: X0-X30, SP, PC, PSTATE.
const ptRegs = 34

// mmapBase is where a process's mmap areas start (grows up).
const mmapBase = 0x10_0000_0000

// Spawn creates a process on this core (the kernel's own doing, as init):
// an empty address space and a kernel stack whose saved user state starts
// at entry. It does not run until Enter or Tick switches to it.
func (c *Core) Spawn(entry uint64) (*Proc, error) {
	p := c.newProc()
	if c.err != nil {
		return nil, c.err
	}
	base := p.kstack + c.os.pgSize - ptRegs*8
	c.store(base+32*8, entry) // the saved PC
	return p, c.err
}

func (c *Core) newProc() *Proc {
	o := c.os
	mm := &MM{tables: map[uint64]int{}, mmapNext: mmapBase}
	mm.root = c.allocTable()
	mm.tables[mm.root] = 0
	ks, err := o.allocFrame()
	if err != nil {
		c.fail(err)
	}
	o.mu.Lock()
	o.nextPID++
	pid := o.nextPID
	o.mu.Unlock()
	return &Proc{PID: pid, mm: mm, kstack: ks, core: c}
}

// entry is kernel_entry from EL0: the user registers, ELR_EL1 and
// SPSR_EL1 (read with MRS) saved as pt_regs on the current task's kernel
// stack.
func (c *Core) entry() {
	p := c.cur
	ctx := c.cpu.Ctx()
	base := p.kstack + c.os.pgSize - ptRegs*8
	var regs [ptRegs]uint64
	copy(regs[:31], ctx.X[:])
	regs[31] = ctx.SP
	regs[32] = c.mrs(cpu.ELR_EL1)
	regs[33] = c.mrs(cpu.SPSR_EL1)
	for i, v := range regs {
		c.batch[i] = kvm.BatchAccess{VA: c.kaddr(base + uint64(i)*8), Val: v, Size: 8, Write: true}
	}
	c.run(ptRegs)
}

// ret is kernel_exit to EL0: pt_regs loaded back from the current task's
// kernel stack, ELR_EL1 = the saved PC and SPSR_EL1 = EL0t (MSR), the
// registers restored, ERET.
func (c *Core) ret() error {
	p := c.cur
	ctx := c.cpu.Ctx()
	base := p.kstack + c.os.pgSize - ptRegs*8
	for i := 0; i < ptRegs; i++ {
		c.batch[i] = kvm.BatchAccess{VA: c.kaddr(base + uint64(i)*8), Size: 8}
	}
	c.run(ptRegs)
	var regs [ptRegs]uint64
	for i := range regs {
		regs[i] = c.batch[i].Val
	}
	c.msr(cpu.ELR_EL1, regs[32])
	c.msr(cpu.SPSR_EL1, 0) // M = EL0t, nothing masked
	if c.err != nil {
		return c.err
	}
	copy(ctx.X[:], regs[:31])
	ctx.SP = regs[31]
	x, err := c.cpu.ERET()
	if err == nil && x.Reason != kvm.ExitNone {
		err = fmt.Errorf("exit %v (%v)", x.Reason, x.Exception)
	}
	if err != nil {
		c.fail(fmt.Errorf("guestos: ERET: %w", err))
	}
	return c.err
}

// Enter starts running p in user mode on a core that is in the kernel
// (after Boot or Start, or after the running process exited with no
// successor).
func (c *Core) Enter(p *Proc) error {
	if c.err != nil {
		return c.err
	}
	if p.core != c || p.exited {
		return fmt.Errorf("guestos: process %d cannot run on this core", p.PID)
	}
	c.switchMM(p)
	return c.ret()
}

// switchMM is check_and_switch_context and cpu_switch_mm: an ASID of the
// current generation (a rollover may be needed), a local TLB flush if a
// rollover happened since this CPU last switched, then the reserved TTBR0,
// the ASID in TTBR1 (TCR_EL1.A1=1) and the process's TTBR0.
func (c *Core) switchMM(next *Proc) {
	o := c.os
	if c.cur != next {
		c.Stats.ContextSwitches++
	}
	o.mu.Lock()
	asid, flush := o.asids.switchTo(c.idx, &next.mm.ctxID)
	o.mu.Unlock()
	if flush {
		c.tlbi(tlb.OpVMALLE1, 0) // local_flush_tlb_all (broadcast under HCR_EL2.FB)
		c.Stats.LocalFlushes++
	}
	c.msr(cpu.TTBR0_EL1, uint64(sysreg.TTBRFields{BADDR: o.empty}.Value()))
	c.msr(cpu.TTBR1_EL1, uint64(sysreg.TTBRFields{BADDR: o.kroot, ASID: uint16(asid)}.Value()))
	c.msr(cpu.TTBR0_EL1, uint64(sysreg.TTBRFields{BADDR: next.mm.root}.Value()))
	c.cur = next
}

// asid returns the ASID an mm runs with (its number in its generation).
func (c *Core) asid(mm *MM) uint64 {
	c.os.mu.Lock()
	defer c.os.mu.Unlock()
	return c.os.asids.asidOf(mm.ctxID)
}

// Tick is a timer interrupt while the current process runs in user mode:
// the IRQ is taken at EL1, the registers saved, and when next is another
// process of this core the kernel switches to it; then back to user mode.
func (c *Core) Tick(next *Proc) error {
	if c.err != nil {
		return c.err
	}
	x, err := c.cpu.VirtualIRQ()
	if err != nil || x.Reason != kvm.ExitException {
		c.fail(fmt.Errorf("guestos: timer interrupt not taken (%v, %v)", x.Reason, err))
		return c.err
	}
	c.Stats.Ticks++
	c.entry()
	if next != nil && next != c.cur {
		if next.core != c || next.exited {
			return fmt.Errorf("guestos: process %d cannot run on this core", next.PID)
		}
		c.switchMM(next)
	}
	return c.ret()
}

// userLeaf is a process page: EL0 and EL1 read/write (AP=01) or read-only
// (AP=11), not global, never executable at EL1, executable at EL0 only in
// an executable VMA.
func (o *OS) userLeaf(pa uint64, writable, exec bool) uint64 {
	ap := uint(0b11)
	if writable {
		ap = 0b01
	}
	return uint64(desc.S1Leaf{OA: pa, AttrIndx: mtNormal, AP: ap, SH: 3, AF: true, NG: true, PXN: true, UXN: !exec}.Encode(o.f, 3))
}

// Fault-status-code classes (ESR_ELx.DFSC/IFSC with the level cleared).
const (
	fscTranslation = 0b000100
	fscAccessFlag  = 0b001000
	fscPermission  = 0b001100
)

// HandleFault handles the exception a user access of the current process
// took (an Exit of kind ExitException from a data or instruction abort at
// EL0): kernel entry, ESR_EL1 and FAR_EL1 read with MRS, the fault
// resolved (demand paging, copy-on-write), kernel exit. The access is
// then retried by the caller. A fault no VMA allows is ErrSegv.
func (c *Core) HandleFault(x kvm.Exit) error {
	if c.err != nil {
		return c.err
	}
	e := x.Exception
	if x.Reason != kvm.ExitException || (e.Kind != cpu.DataAbort && e.Kind != cpu.InstructionAbort) || e.FromEL != 0 {
		return fmt.Errorf("guestos: unexpected exception %v (exit %v)", e, x.Reason)
	}
	c.entry()
	esr := sysreg.ESR(c.mrs(cpu.ESR_EL1))
	far := c.mrs(cpu.FAR_EL1)
	if c.err != nil {
		return c.err
	}
	exec := esr.EC() == 0x20
	write := !exec && esr.WnR()
	va := far & (1<<56 - 1) // TBI0: the tag byte is not part of the address
	mm := c.cur.mm
	v := mm.find(va)
	if v == nil || (write && v.Prot&ProtWrite == 0) || (exec && v.Prot&ProtExec == 0) || (!exec && v.Prot&ProtRead == 0) {
		return fmt.Errorf("%w: process %d, %s at %#x (ESR %#x)", ErrSegv, c.cur.PID, accessName(write, exec), va, uint64(esr))
	}
	switch esr.FSC() & 0x3c {
	case fscTranslation:
		c.demand(mm, va, v, write, exec)
	case fscPermission:
		if !write {
			return fmt.Errorf("%w: process %d, permission fault on a %s at %#x (ESR %#x)", ErrSegv, c.cur.PID, accessName(write, exec), va, uint64(esr))
		}
		c.writeProtected(mm, va, v)
	case fscAccessFlag:
		c.accessFlag(mm, va)
	default:
		return fmt.Errorf("guestos: unexpected fault status %#x at %#x (ESR %#x)", esr.FSC(), va, uint64(esr))
	}
	return c.ret()
}

func accessName(write, exec bool) string {
	switch {
	case exec:
		return "fetch"
	case write:
		return "write"
	}
	return "read"
}

// demand is a translation fault in a VMA (do_anonymous_page): a read maps
// the zero page read-only, a write (or a fetch) a zeroed page of its own.
func (c *Core) demand(mm *MM, va uint64, v *VMA, write, exec bool) {
	o := c.os
	ea := c.tableEntry(mm.root, va, 3, mm)
	if d := c.load(ea); d&1 != 0 || c.err != nil {
		c.Stats.Spurious++ // mapped meanwhile: the TLB held a stale miss
		return
	}
	writable := v.Prot&ProtWrite != 0
	var pa uint64
	if !write && !exec && !o.cfg.NoZeroPage {
		pa, writable = o.zero, false
		c.Stats.DemandZero++
	} else {
		var err error
		if pa, err = o.allocFrame(); err != nil {
			c.fail(err)
			return
		}
		c.fill(pa, o.pgSize, 0)
		c.Stats.DemandPage++
	}
	c.store(ea, o.userLeaf(pa, writable, v.Prot&ProtExec != 0))
	mm.tables[ea&^(o.pgSize-1)]++
}

// writeProtected is a write to a read-only page of a writable VMA
// (do_wp_page): a page shared with another process (after fork) or the
// zero page is copied to a new page, replacing the entry with
// break-before-make (invalid, TLBI VALE1IS, new entry); the last
// reference is made writable in place (adding permission needs no TLBI).
func (c *Core) writeProtected(mm *MM, va uint64, v *VMA) {
	o := c.os
	ea, ok := c.lookupEntry(mm.root, va)
	if !ok {
		c.demand(mm, va, v, true, false)
		return
	}
	d := c.load(ea)
	if c.err != nil {
		return
	}
	if d&1 == 0 {
		c.demand(mm, va, v, true, false)
		return
	}
	if desc.S1(d).AP()&0b10 == 0 {
		c.Stats.Spurious++ // already writable: a stale TLB entry faulted
		return
	}
	pa := o.f.LeafOA(d, 3)
	exec := v.Prot&ProtExec != 0
	if !o.shared(pa) {
		c.store(ea, o.userLeaf(pa, true, exec))
		c.Stats.COWReuse++
		return
	}
	np, err := o.allocFrame()
	if err != nil {
		c.fail(err)
		return
	}
	if pa == o.zero {
		c.fill(np, o.pgSize, 0)
	} else {
		c.copyPage(np, pa)
	}
	c.store(ea, 0)
	c.tlbiVA(c.asid(mm), va, true)
	c.store(ea, o.userLeaf(np, true, exec))
	c.fail(o.put(pa))
	c.Stats.COWCopy++
}

// accessFlag sets AF in a page entry (with TCR_EL1.HA=1 the hardware does
// it, so this is only reached if a walk raced with the entry's creation).
func (c *Core) accessFlag(mm *MM, va uint64) {
	ea, ok := c.lookupEntry(mm.root, va)
	if !ok {
		c.Stats.Spurious++
		return
	}
	c.store(ea, c.load(ea)|1<<10)
	c.Stats.AccessFlag++
}

// syscall is SVC from the current process and kernel entry.
func (c *Core) syscall(nr uint16) error {
	if c.err != nil {
		return c.err
	}
	if c.cur == nil {
		return fmt.Errorf("guestos: system call with no process running")
	}
	x, err := c.cpu.SVC(nr)
	if err != nil || x.Reason != kvm.ExitException {
		c.fail(fmt.Errorf("guestos: SVC not taken (%v, %v)", x.Reason, err))
		return c.err
	}
	c.Stats.Syscalls++
	c.entry()
	return c.err
}

// System call numbers (Linux arm64's).
const (
	sysExitGroup = 94
	sysMunmap    = 215
	sysClone     = 220
	sysExecve    = 221
	sysMmap      = 222
)

// Mmap maps size bytes (rounded up to pages) of anonymous memory with
// prot in the current process and returns the address. Nothing is mapped
// until touched.
func (c *Core) Mmap(size uint64, prot Prot) (uint64, error) {
	if err := c.syscall(sysMmap); err != nil {
		return 0, err
	}
	o := c.os
	mm := c.cur.mm
	size = (size + o.pgSize - 1) &^ (o.pgSize - 1)
	const align = 2 << 20
	va := (mm.mmapNext + align - 1) &^ (align - 1)
	if size == 0 || va+size > 1<<o.cfg.VABits {
		return 0, fmt.Errorf("guestos: mmap of %#x bytes: no room below %#x", size, uint64(1)<<o.cfg.VABits)
	}
	mm.mmapNext = va + size
	mm.insert(VMA{va, va + size, prot})
	c.Stats.Mmaps++
	return va, c.ret()
}

// MmapFixed maps [va, va+size) (MAP_FIXED over a hole) in the current
// process.
func (c *Core) MmapFixed(va, size uint64, prot Prot) error {
	if err := c.syscall(sysMmap); err != nil {
		return err
	}
	o := c.os
	mm := c.cur.mm
	if va%o.pgSize != 0 || size == 0 || size%o.pgSize != 0 || va+size > 1<<o.cfg.VABits || va+size < va || mm.overlaps(va, va+size) {
		return fmt.Errorf("guestos: mmap of [%#x, %#x): not page aligned, beyond the %d-bit VA range or over a mapping", va, va+size, o.cfg.VABits)
	}
	mm.insert(VMA{va, va + size, prot})
	c.Stats.Mmaps++
	return c.ret()
}

func (m *MM) insert(v VMA) {
	i := sort.Search(len(m.vmas), func(i int) bool { return m.vmas[i].Start >= v.Start })
	m.vmas = append(m.vmas, VMA{})
	copy(m.vmas[i+1:], m.vmas[i:])
	m.vmas[i] = v
}

// gather collects what an unmap releases, to free it only after the TLB
// invalidation (mmu_gather).
type gather struct {
	pages  []uint64 // VAs unmapped
	frames []uint64
	tables []uint64
}

// Munmap unmaps [va, va+size) from the current process: the entries are
// cleared, the TLB invalidated (TLBI VALE1IS per page, VAE1IS when page
// tables were freed, ASIDE1IS above MAX_DVM_OPS pages), then the frames
// and emptied table pages freed.
func (c *Core) Munmap(va, size uint64) error {
	if err := c.syscall(sysMunmap); err != nil {
		return err
	}
	o := c.os
	mm := c.cur.mm
	end := va + (size+o.pgSize-1)&^(o.pgSize-1)
	if va%o.pgSize != 0 || end <= va || end > 1<<o.cfg.VABits {
		return fmt.Errorf("guestos: munmap of [%#x, %#x): bad range", va, end)
	}
	mm.remove(va, end)
	var g gather
	c.unmapRange(mm, va, end, &g)
	c.flush(mm, &g, false)
	c.release(&g)
	c.Stats.Munmaps++
	return c.ret()
}

// walkRange visits the valid entries of [start, end) under table t (level
// l, mapping from base), reading each with a load: page calls for each
// page entry with its GPA, VA and value; table, when set, is called for a
// table entry after its subtree (with the entry's GPA, the child table and
// the span it maps).
func (c *Core) walkRange(t uint64, l int, base, start, end uint64, page func(ea, va, d uint64), table func(ea, child, eb, ee uint64)) {
	o := c.os
	sh := o.shift(l)
	for a := start; a < end && c.err == nil; {
		eb := base + (a-base)>>sh<<sh // start of the entry's span
		ee := eb + 1<<sh
		ea := t + o.index(a, l)*8
		d := c.load(ea)
		switch {
		case d&1 == 0:
		case l == 3:
			page(ea, eb, d)
		case desc.KindAt(d, l) == desc.Table:
			child := o.f.TableOA(d)
			c.walkRange(child, l+1, eb, a, min(end, ee), page, table)
			if table != nil {
				table(ea, child, eb, ee)
			}
		default:
			c.fail(fmt.Errorf("guestos: block entry %#x at level %d in a process's tables", d, l))
		}
		if ee == 0 { // the top of the address space
			break
		}
		a = ee
	}
}

// unmapRange clears the page entries of [start, end) of mm, and frees the
// tables left empty with no VMA over their span.
func (c *Core) unmapRange(mm *MM, start, end uint64, g *gather) {
	o := c.os
	c.walkRange(mm.root, o.start, 0, start, end, func(ea, va, d uint64) {
		c.store(ea, 0)
		mm.tables[ea&^(o.pgSize-1)]--
		g.pages = append(g.pages, va)
		g.frames = append(g.frames, o.f.LeafOA(d, 3))
	}, func(ea, child, eb, ee uint64) {
		if mm.tables[child] == 0 && !mm.overlaps(eb, ee) {
			c.store(ea, 0)
			mm.tables[ea&^(o.pgSize-1)]--
			delete(mm.tables, child)
			g.tables = append(g.tables, child)
		}
	})
}

// maxDVMOps is Linux's MAX_DVM_OPS (PTRS_PER_PTE): above that many pages a
// range flush becomes a flush of the whole ASID.
func (o *OS) maxDVMOps() int { return int(o.pgSize / 8) }

// flush is tlb_flush for what g gathered. For a full-mm teardown (exit,
// exec) only the walk caches matter, since the ASID is not reused before a
// rollover flushes everything: TLBI ASIDE1IS if tables were freed.
func (c *Core) flush(mm *MM, g *gather, fullmm bool) {
	if len(g.pages) == 0 && len(g.tables) == 0 {
		return
	}
	asid := c.asid(mm)
	if fullmm {
		if len(g.tables) > 0 {
			c.tlbi(tlb.OpASIDE1.IS(), asid<<48)
		}
		return
	}
	if len(g.pages) > c.os.maxDVMOps() {
		c.tlbi(tlb.OpASIDE1.IS(), asid<<48)
		return
	}
	last := len(g.tables) == 0
	for _, va := range g.pages {
		c.tlbiVA(asid, va, last)
	}
	if len(g.pages) == 0 { // only tables: invalidate their walks
		c.tlbi(tlb.OpASIDE1.IS(), asid<<48)
	}
}

// release frees what g gathered, after the flush.
func (c *Core) release(g *gather) {
	o := c.os
	for _, f := range g.frames {
		c.fail(o.put(f))
	}
	for _, t := range g.tables {
		c.fail(o.put(t))
		o.ptFree()
	}
}

// teardown unmaps everything of mm and frees its tables (exit_mmap).
func (c *Core) teardown(mm *MM) {
	o := c.os
	vmas := mm.vmas
	mm.vmas = nil
	var g gather
	for _, v := range vmas {
		c.unmapRange(mm, v.Start, v.End, &g)
	}
	c.flush(mm, &g, true)
	c.release(&g)
	c.fail(o.put(mm.root))
	o.ptFree()
	mm.root = 0
}

// Fork is clone (fork) in the current process: a child process on the
// same core with a copy of the address space. Every page entry is copied;
// writable private pages become read-only in both (copy-on-write), and
// the parent's TLB entries are invalidated (TLBI ASIDE1IS: flush_tlb_mm).
// The child's saved registers are the parent's.
func (c *Core) Fork() (*Proc, error) {
	if err := c.syscall(sysClone); err != nil {
		return nil, err
	}
	o := c.os
	parent := c.cur
	child := c.newProc()
	if c.err != nil {
		return nil, c.err
	}
	child.mm.vmas = append([]VMA(nil), parent.mm.vmas...)
	child.mm.mmapNext = parent.mm.mmapNext
	n := 0
	for _, v := range parent.mm.vmas {
		c.walkRange(parent.mm.root, o.start, 0, v.Start, v.End, func(ea, va, d uint64) {
			if desc.S1(d).AP()&0b10 == 0 { // writable: now copy-on-write
				d |= 0b10 << 6
				c.store(ea, d)
			}
			cea := c.tableEntry(child.mm.root, va, 3, child.mm)
			c.store(cea, d)
			child.mm.tables[cea&^(o.pgSize-1)]++
			o.get(o.f.LeafOA(d, 3))
			n++
		}, nil)
	}
	if n > 0 {
		c.tlbi(tlb.OpASIDE1.IS(), c.asid(parent.mm)<<48)
	}
	// copy_thread: the child's pt_regs are the parent's.
	src := parent.kstack + o.pgSize - ptRegs*8
	dst := child.kstack + o.pgSize - ptRegs*8
	for i := uint64(0); i < ptRegs; i++ {
		c.store(dst+i*8, c.load(src+i*8))
	}
	c.Stats.Forks++
	return child, c.ret()
}

// Exec is execve in the current process: a new, empty address space; the
// old one is torn down.
func (c *Core) Exec(entry uint64) error {
	if err := c.syscall(sysExecve); err != nil {
		return err
	}
	o := c.os
	p := c.cur
	old := p.mm
	mm := &MM{tables: map[uint64]int{}, mmapNext: mmapBase}
	mm.root = c.allocTable()
	mm.tables[mm.root] = 0
	p.mm = mm
	c.switchMM(p)
	c.teardown(old)
	c.store(p.kstack+o.pgSize-ptRegs*8+32*8, entry)
	c.Stats.Execs++
	return c.ret()
}

// Exit is exit_group in the current process: its address space and kernel
// stack are freed; then the core switches to next (another live process of
// this core) and returns to user mode, or, with next nil, stays in the
// kernel until Enter.
func (c *Core) Exit(next *Proc) error {
	if err := c.syscall(sysExitGroup); err != nil {
		return err
	}
	o := c.os
	p := c.cur
	// Run on the reserved TTBR0 while the tables go away.
	c.msr(cpu.TTBR0_EL1, o.empty)
	c.teardown(p.mm)
	c.fail(o.put(p.kstack))
	p.exited = true
	c.Stats.Exits++
	if next == nil {
		c.cur = nil
		return c.err
	}
	if next.core != c || next.exited {
		return fmt.Errorf("guestos: process %d cannot run on this core", next.PID)
	}
	c.switchMM(next)
	return c.ret()
}

// sysWrite is write(2): a process's I/O to its device.
const sysWrite = 64

// Doorbell is a write(2) of the current process to the guest's device:
// the kernel stores v to the device's doorbell register through its
// Device-nGnRE mapping. The device is not memory: the store takes a
// stage-2 fault outside every memslot and leaves the VM as an MMIO exit,
// which is returned for the VMM to complete (kvm.VCPU.CompleteMMIO); then
// DoorbellDone returns to the process.
func (c *Core) Doorbell(v uint64) (kvm.Exit, error) {
	if err := c.syscall(sysWrite); err != nil {
		return kvm.Exit{}, err
	}
	if c.os.devVA == 0 {
		return kvm.Exit{}, fmt.Errorf("guestos: no device (Config.DeviceBase is 0)")
	}
	c.cpu.Ctx().X[rData] = v
	x, err := c.cpu.Str(rData, c.os.devVA, 4)
	if err != nil {
		c.fail(fmt.Errorf("guestos: doorbell store: %w", err))
		return x, c.err
	}
	if x.Reason == kvm.ExitException {
		c.fail(fmt.Errorf("guestos: doorbell store took %v", x.Exception))
	}
	return x, c.err
}

// DoorbellDone returns from the write(2) after the VMM completed the
// device access.
func (c *Core) DoorbellDone() error {
	if c.err != nil {
		return c.err
	}
	c.Stats.Doorbells++
	return c.ret()
}

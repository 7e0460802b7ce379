package guestos

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/mem"
)

// Core is the kernel on one vCPU: the vCPU, the process running there,
// and the kernel's per-CPU state. A Core is driven by one goroutine.
type Core struct {
	os    *OS
	cpu   CPU
	idx   int // per-CPU index (ASID allocator)
	cur   *Proc
	mmuOn bool
	batch [256]kvm.BatchAccess
	err   error
	// Stats counts what the kernel did on this core.
	Stats Stats
}

// Registers the kernel uses for its own loads, stores and system
// instructions (X0 is the batch transfer register).
const (
	rData uint8 = 1
	rArg  uint8 = 2
)

// vectorsVA is VBAR_EL1: the exception vectors, in the linear map's first
// page (the model executes no instruction there; the vCPU only needs the
// address).
func (o *OS) vectorsVA() mem.VA { return mem.VA(o.pageOffset + 0x800) }

// NewCore attaches a kernel CPU to vCPU c.
func (o *OS) NewCore(c CPU) *Core {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := &Core{os: o, cpu: c, idx: o.asids.addCPU()}
	o.cores = append(o.cores, k)
	return k
}

// OS returns the kernel the core belongs to.
func (c *Core) OS() *OS { return c.os }

// CPU returns the core's vCPU.
func (c *Core) CPU() CPU { return c.cpu }

// Current returns the process running on the core (nil before Run).
func (c *Core) Current() *Proc { return c.cur }

// Err returns the first error the core met; after one, every operation
// fails.
func (c *Core) Err() error { return c.err }

func (c *Core) fail(err error) {
	if c.err == nil && err != nil {
		c.err = err
	}
}

// kaddr is the address the kernel uses for gpa: the linear map with the
// MMU on, the GPA itself with it off.
func (c *Core) kaddr(gpa uint64) mem.VA {
	if c.mmuOn {
		return c.os.kva(gpa)
	}
	return mem.VA(gpa)
}

// exitErr turns an exit of a kernel access into an error: the kernel's own
// accesses must neither fault nor reach MMIO.
func exitErr(what string, va mem.VA, x kvm.Exit, err error) error {
	if err != nil {
		return fmt.Errorf("guestos: kernel %s at %#x: %w", what, va, err)
	}
	if x.Reason != kvm.ExitNone {
		return fmt.Errorf("guestos: kernel %s at %#x: exit %v (%v)", what, va, x.Reason, x.Exception)
	}
	return nil
}

// load reads the 64-bit word at gpa (an LDR).
func (c *Core) load(gpa uint64) uint64 {
	if c.err != nil {
		return 0
	}
	c.batch[0] = kvm.BatchAccess{VA: c.kaddr(gpa), Size: 8}
	c.run(1)
	return c.batch[0].Val
}

// store writes the 64-bit word at gpa (an STR).
func (c *Core) store(gpa, v uint64) {
	c.batch[0] = kvm.BatchAccess{VA: c.kaddr(gpa), Val: v, Size: 8, Write: true}
	c.run(1)
}

// run runs n batch accesses.
func (c *Core) run(n int) {
	if c.err != nil {
		return
	}
	b := c.batch[:n]
	k, x, err := c.cpu.RunBatch(b)
	c.Stats.KernelAccesses += uint64(k)
	if err == nil && k < n && x.Reason == kvm.ExitNone {
		err = fmt.Errorf("stopped after %d of %d", k, n)
	}
	if err != nil || k < n {
		c.fail(exitErr("access", b[min(k, n-1)].VA, x, err))
	}
}

// fill stores v to every word of [gpa, gpa+size) (clear_page when v=0).
func (c *Core) fill(gpa, size, v uint64) {
	for off := uint64(0); off < size; {
		n := 0
		for ; n < len(c.batch) && off < size; n, off = n+1, off+8 {
			c.batch[n] = kvm.BatchAccess{VA: c.kaddr(gpa + off), Val: v, Size: 8, Write: true}
		}
		c.run(n)
	}
}

// copyPage copies one page (copy_page): loads then stores, a batch at a
// time.
func (c *Core) copyPage(dst, src uint64) {
	pg := c.os.pgSize
	for off := uint64(0); off < pg; off += uint64(len(c.batch)) * 8 {
		n := min(len(c.batch), int((pg-off)/8))
		for i := 0; i < n; i++ {
			c.batch[i] = kvm.BatchAccess{VA: c.kaddr(src + off + uint64(i)*8), Size: 8}
		}
		c.run(n)
		for i := 0; i < n; i++ {
			c.batch[i] = kvm.BatchAccess{VA: c.kaddr(dst + off + uint64(i)*8), Val: c.batch[i].Val, Size: 8, Write: true}
		}
		c.run(n)
	}
}

// msr writes a system register (MSR <r>, X2).
func (c *Core) msr(r cpu.SysReg, v uint64) {
	if c.err != nil {
		return
	}
	c.cpu.Ctx().X[rArg] = v
	x, err := c.cpu.MSR(r, rArg)
	if err == nil && x.Reason != kvm.ExitNone {
		err = fmt.Errorf("exit %v (%v)", x.Reason, x.Exception)
	}
	if err != nil {
		c.fail(fmt.Errorf("guestos: MSR %v: %w", r, err))
	}
}

// mrs reads a system register (MRS X2, <r>).
func (c *Core) mrs(r cpu.SysReg) uint64 {
	if c.err != nil {
		return 0
	}
	x, err := c.cpu.MRS(r, rArg)
	if err == nil && x.Reason != kvm.ExitNone {
		err = fmt.Errorf("exit %v (%v)", x.Reason, x.Exception)
	}
	if err != nil {
		c.fail(fmt.Errorf("guestos: MRS %v: %w", r, err))
		return 0
	}
	return c.cpu.Ctx().X[rArg]
}

// tlbi executes TLBI op, X2 with operand xt.
func (c *Core) tlbi(op tlb.Op, xt uint64) {
	if c.err != nil {
		return
	}
	c.cpu.Ctx().X[rArg] = xt
	x, err := c.cpu.TLBI(op, rArg)
	if err == nil && x.Reason != kvm.ExitNone {
		err = fmt.Errorf("exit %v (%v)", x.Reason, x.Exception)
	}
	if err != nil {
		c.fail(fmt.Errorf("guestos: TLBI %v: %w", op, err))
		return
	}
	c.Stats.TLBIs[op]++
}

// tlbiVA is TLBI VALE1IS (last level) or VAE1IS for va in asid: the
// operand holds the ASID in [63:48] and VA[55:12] in [43:0].
func (c *Core) tlbiVA(asid, va uint64, lastLevel bool) {
	op := tlb.OpVAE1.IS()
	if lastLevel {
		op = tlb.OpVALE1.IS()
	}
	c.tlbi(op, asid<<48|va>>12&(1<<44-1))
}

// allocTable takes a frame for a page-table page and zeroes it.
func (c *Core) allocTable() uint64 {
	if c.err != nil {
		return 0
	}
	t, err := c.os.allocFrame()
	if err != nil {
		c.fail(err)
		return 0
	}
	c.os.ptAlloc()
	c.fill(t, c.os.pgSize, 0)
	return t
}

// shift is log2 of the size a level-l entry maps.
func (o *OS) shift(l int) uint { return o.pgShift + o.stride*uint(3-l) }

// index is the entry index of va in its level-l table.
func (o *OS) index(va uint64, l int) uint64 {
	v := va & (1<<o.cfg.VABits - 1)
	return v >> o.shift(l) & (1<<o.stride - 1)
}

// Boot brings the kernel up on this core with the MMU off, as head.S does:
// it builds the kernel's TTBR1 tables (the linear map of all RAM) and an
// empty table for TTBR0, allocates the zero page, programs MAIR, TCR,
// TTBR0/1 and VBAR, and turns the MMU on. Other cores are then brought up
// with Start.
func (c *Core) Boot() error {
	o := c.os
	if o.booted {
		return fmt.Errorf("guestos: already booted")
	}
	o.booted = true
	o.kroot = c.allocTable()
	o.empty = c.allocTable()
	c.mapLinear()
	if o.cfg.DeviceBase != 0 {
		// ioremap: the device page in the upper half of the kernel's range.
		va := o.pageOffset + 1<<(o.cfg.VABits-1)
		ea := c.tableEntry(o.kroot, va, 3, nil)
		c.store(ea, uint64(desc.S1Leaf{OA: o.cfg.DeviceBase, AttrIndx: mtDeviceNGnRE, AP: 0b00, AF: true, UXN: true, PXN: true}.Encode(o.f, 3)))
		o.devVA = mem.VA(va)
	}
	if z, err := o.allocFrame(); err != nil {
		c.fail(err)
	} else {
		o.zero = z
		c.fill(z, o.pgSize, 0)
	}
	c.enableMMU()
	return c.err
}

// Start brings up a secondary core: the MMU registers, then the MMU on.
func (c *Core) Start() error {
	if !c.os.booted {
		return fmt.Errorf("guestos: Start before Boot")
	}
	c.enableMMU()
	return c.err
}

func (c *Core) enableMMU() {
	o := c.os
	c.msr(cpu.VBAR_EL1, uint64(o.vectorsVA()))
	c.msr(cpu.MAIR_EL1, mairValue)
	c.msr(cpu.TCR_EL1, o.tcr)
	c.msr(cpu.TTBR0_EL1, o.empty)
	c.msr(cpu.TTBR1_EL1, o.kroot)
	c.msr(cpu.SCTLR_EL1, sctlrMMUOn)
	c.mmuOn = c.err == nil
}

// blockLevels returns the levels at which the linear map may use blocks
// (without FEAT_LPA2: 1 and 2 with 4K, 2 with 16K and 64K).
func (o *OS) blockLevels() []int {
	if o.cfg.PageLinearMap {
		return nil
	}
	var ls []int
	for _, l := range []int{1, 2} {
		if l >= o.start && (l == 2 || o.pgShift == 12) {
			ls = append(ls, l)
		}
	}
	return ls
}

// kernelLeaf is a linear-map descriptor: EL1 read/write, global, not
// executable at EL0, Normal write-back.
func (o *OS) kernelLeaf(pa uint64, level int) uint64 {
	return uint64(desc.S1Leaf{OA: pa, AttrIndx: mtNormal, AP: 0b00, SH: 3, AF: true, UXN: true}.Encode(o.f, level))
}

// mapLinear maps [RAMBase, RAMBase+RAMSize) at pageOffset in the kernel's
// tables (with the MMU off: table addresses are GPAs).
func (c *Core) mapLinear() {
	o := c.os
	blocks := o.blockLevels()
	for pa := o.cfg.RAMBase; pa < o.cfg.RAMBase+o.cfg.RAMSize && c.err == nil; {
		va := uint64(o.kva(pa))
		level := 3
		for _, l := range blocks {
			sz := uint64(1) << o.shift(l)
			if pa%sz == 0 && o.cfg.RAMBase+o.cfg.RAMSize-pa >= sz {
				level = l
				break
			}
		}
		ea := c.tableEntry(o.kroot, va, level, nil)
		c.store(ea, o.kernelLeaf(pa, level))
		pa += 1 << o.shift(level)
	}
}

// tableEntry returns the GPA of the level-`level` entry for va under root,
// creating the tables above it; mm (nil for the kernel's tables) counts
// the new tables' entries.
func (c *Core) tableEntry(root, va uint64, level int, mm *MM) uint64 {
	o := c.os
	t := root
	for l := o.start; l < level; l++ {
		ea := t + o.index(va, l)*8
		d := c.load(ea)
		if c.err != nil {
			return 0
		}
		if desc.KindAt(d, l) == desc.Table {
			t = o.f.TableOA(d)
			continue
		}
		if d&1 != 0 {
			c.fail(fmt.Errorf("guestos: level-%d entry %#x for VA %#x is a block", l, d, va))
			return 0
		}
		nt := c.allocTable()
		c.store(ea, uint64(desc.S1Table{Addr: nt}.Encode(o.f)))
		if mm != nil {
			mm.tables[t]++
			mm.tables[nt] = 0
		}
		t = nt
	}
	return t + o.index(va, level)*8
}

// lookupEntry returns the GPA of va's leaf-level entry under root, or false
// when a table above it is missing.
func (c *Core) lookupEntry(root, va uint64) (uint64, bool) {
	o := c.os
	t := root
	for l := o.start; l < 3; l++ {
		d := c.load(t + o.index(va, l)*8)
		if c.err != nil || desc.KindAt(d, l) != desc.Table {
			return 0, false
		}
		t = o.f.TableOA(d)
	}
	return t + o.index(va, 3)*8, true
}

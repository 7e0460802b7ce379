// Package refmodel is a deliberately simple model of what a guest sees
// under MIPS trap-and-emulate: on every access it looks the guest TLB up
// directly and reads guest physical memory, with no GVA page tables, no
// host TLB and no invalidation at all. It is the oracle the trap-and-emulate
// engine (package te) is compared with: whatever the GVA tables, the fast
// refill and the invalidation rules do, the guest must observe exactly what
// this model computes.
//
// It shares only constants, the operation vocabulary and the PageMask
// rounding rule with package cp0; TLB matching, exception entry and register
// write masks are written again here, straight from the architecture text.
package refmodel

import (
	"encoding/binary"
	"fmt"

	"github.com/nestmmu/nestmmu/mips/cp0"
)

type entry struct {
	mask uint32 // PageMask
	vpn2 uint32 // EntryHi VPN2 with the masked bits zero
	asid uint8
	g    bool
	lo   [2]uint32
}

// Model is the guest's architectural view.
type Model struct {
	pageSize uint32
	regs     [32][8]uint32
	extra    []byte // commpage bytes after the register file
	tlb      [64]entry
	ram      []byte
	written  map[uint32]bool // guest pages stored to since the last harvest
	mmio     cp0.MMIODevice
}

// New returns a model in the reset state with ramSize bytes of guest RAM
// and the given MMIO device (nil: reads all-ones, writes ignored).
func New(pageSize, ramSize uint32, mmio cp0.MMIODevice) (*Model, error) {
	if pageSize < 4096 || pageSize&(pageSize-1) != 0 || ramSize%pageSize != 0 {
		return nil, fmt.Errorf("refmodel: bad page size %d or RAM size %d", pageSize, ramSize)
	}
	m := &Model{pageSize: pageSize, ram: make([]byte, ramSize), extra: make([]byte, pageSize-cp0.CommpageRegsSize), written: map[uint32]bool{}, mmio: mmio}
	m.regs[cp0.RegRandom][0] = 63
	m.regs[cp0.RegStatus][0] = cp0.StatusBEV | cp0.StatusERL
	m.regs[cp0.RegEBase][1] = 0x40000000
	m.regs[cp0.RegConfig][1] = 63 << 25
	m.regs[cp0.RegPRId][0] = 0x00019300
	for i := range m.tlb {
		m.tlb[i] = entry{vpn2: 0x80000000 + uint32(i)*0x4000}
	}
	return m, nil
}

// CP0 implements cp0.Machine.
func (m *Model) CP0(reg, sel uint8) uint32 { return m.regs[reg&31][sel&7] }

// TLBEntry implements cp0.Machine.
func (m *Model) TLBEntry(i int) cp0.Entry {
	e := m.tlb[i]
	return cp0.Entry{Mask: e.mask, Hi: e.vpn2 | uint32(e.asid), Lo: e.lo, G: e.g}
}

// HarvestDirty returns the guest physical pages stored to since the last
// call, in address order, and forgets them.
func (m *Model) HarvestDirty() []uint32 {
	var out []uint32
	for gpa := uint32(0); gpa < uint32(len(m.ram)); gpa += m.pageSize {
		if m.written[gpa] {
			out = append(out, gpa)
		}
	}
	clear(m.written)
	return out
}

func (m *Model) kernel() bool {
	st := m.regs[cp0.RegStatus][0]
	return st&0x6 != 0 || st&0x10 == 0 // EXL|ERL, or KSU user bit clear
}

// except performs exception entry ("General Exception Processing").
func (m *Model) except(op cp0.Op, code cp0.ExcCode, refill bool, badva *uint32, tlb bool) cp0.Result {
	st := &m.regs[cp0.RegStatus][0]
	cause := &m.regs[cp0.RegCause][0]
	offset := uint32(0x180)
	if *st&2 == 0 { // EXL clear
		if op.BD {
			m.regs[cp0.RegEPC][0] = op.PC - 4
			*cause |= 1 << 31
		} else {
			m.regs[cp0.RegEPC][0] = op.PC
			*cause &^= 1 << 31
		}
		if refill {
			offset = 0
		}
	}
	*cause = *cause&^(0x7c|3<<28) | uint32(code)<<2
	*st |= 2
	if badva != nil {
		m.regs[cp0.RegBadVAddr][0] = *badva
		if tlb {
			vpn2 := *badva >> 13
			m.regs[cp0.RegContext][0] = m.regs[cp0.RegContext][0]&0xff800000 | vpn2<<4
			m.regs[cp0.RegEntryHi][0] = vpn2<<13 | m.regs[cp0.RegEntryHi][0]&0xff
		}
	}
	base := m.regs[cp0.RegEBase][1] &^ 0xfff
	if *st&(1<<22) != 0 {
		base = 0xbfc00200
	}
	return cp0.Result{
		Outcome: cp0.Exception, Code: code, PC: base + offset,
		BadVAddr: m.regs[cp0.RegBadVAddr][0], EntryHi: m.regs[cp0.RegEntryHi][0],
		EPC: m.regs[cp0.RegEPC][0], Cause: *cause,
	}
}

// Exec implements cp0.Machine.
func (m *Model) Exec(op cp0.Op) cp0.Result {
	switch op.Kind {
	case cp0.OpLoad, cp0.OpStore, cp0.OpFetch, cp0.OpKVMRead, cp0.OpCache:
		return m.access(op)
	case cp0.OpSyscall:
		return m.except(op, cp0.ExcSys, false, nil, false)
	case cp0.OpFlushAll, cp0.OpHarvestDirty:
		return cp0.Result{}
	}
	if !m.kernel() {
		return m.except(op, cp0.ExcCpU, false, nil, false)
	}
	switch op.Kind {
	case cp0.OpMTC0:
		m.mtc0(op.Reg&31, op.Sel&7, op.Value)
	case cp0.OpMFC0:
		return cp0.Result{Value: m.regs[op.Reg&31][op.Sel&7]}
	case cp0.OpTLBP:
		hi := m.regs[cp0.RegEntryHi][0]
		if i := m.lookup(hi&0xffffe000, uint8(hi)); i >= 0 {
			m.regs[cp0.RegIndex][0] = uint32(i)
		} else {
			m.regs[cp0.RegIndex][0] = 1 << 31
		}
		return cp0.Result{Value: m.regs[cp0.RegIndex][0]}
	case cp0.OpTLBR:
		e := m.tlb[m.regs[cp0.RegIndex][0]&63]
		g := uint32(0)
		if e.g {
			g = 1
		}
		m.regs[cp0.RegEntryHi][0] = e.vpn2 | uint32(e.asid)
		m.regs[cp0.RegEntryLo0][0] = e.lo[0] | g
		m.regs[cp0.RegEntryLo1][0] = e.lo[1] | g
		m.regs[cp0.RegPageMask][0] = e.mask
	case cp0.OpTLBWI:
		m.write(int(m.regs[cp0.RegIndex][0] & 63))
	case cp0.OpTLBWR:
		m.write(int(m.regs[cp0.RegRandom][0] & 63))
		r, w := m.regs[cp0.RegRandom][0], m.regs[cp0.RegWired][0]
		if r > w {
			r--
		} else {
			r = 63
		}
		m.regs[cp0.RegRandom][0] = r
	case cp0.OpERET:
		st := &m.regs[cp0.RegStatus][0]
		if *st&4 != 0 {
			*st &^= 4
			return cp0.Result{PC: m.regs[cp0.RegErrorEPC][0]}
		}
		*st &^= 2
		return cp0.Result{PC: m.regs[cp0.RegEPC][0]}
	default:
		return cp0.Result{Outcome: cp0.Internal}
	}
	return cp0.Result{}
}

func (m *Model) mtc0(reg, sel uint8, v uint32) {
	r := &m.regs[reg][sel]
	if sel == 0 {
		switch reg {
		case cp0.RegIndex:
			*r = *r&(1<<31) | v&63
		case cp0.RegRandom, cp0.RegBadVAddr, cp0.RegPRId, cp0.RegConfig:
		case cp0.RegEntryLo0, cp0.RegEntryLo1:
			*r = v & 0x3fffffff
		case cp0.RegContext:
			*r = *r&0x007ffff0 | v&0xff800000
		case cp0.RegPageMask:
			*r = cp0.NormalizePageMask(v)
		case cp0.RegWired:
			*r = v & 63
			m.regs[cp0.RegRandom][0] = 63
		case cp0.RegEntryHi:
			*r = v & 0xffffe0ff
		case cp0.RegStatus:
			const w = 1<<22 | 0xff00 | 0x10 | 0x7
			*r = *r&^w | v&w
		case cp0.RegCause:
			const w = 1<<23 | 0x300
			*r = *r&^w | v&w
		default:
			*r = v
		}
		return
	}
	switch {
	case reg == cp0.RegEBase && sel == 1:
		*r = 0x40000000 | v&0x1ffff000
	case reg == cp0.RegConfig && sel == 1:
	default:
		*r = v
	}
}

func (m *Model) write(i int) {
	mask := m.regs[cp0.RegPageMask][0]
	hi := m.regs[cp0.RegEntryHi][0]
	lo0, lo1 := m.regs[cp0.RegEntryLo0][0], m.regs[cp0.RegEntryLo1][0]
	keep := ^(mask >> 7) & 0x3fffffc0
	m.tlb[i] = entry{
		mask: mask,
		vpn2: hi & 0xffffe000 &^ mask,
		asid: uint8(hi),
		g:    lo0&lo1&1 == 1,
		lo:   [2]uint32{lo0&keep | lo0&0x3e, lo1&keep | lo1&0x3e},
	}
}

// pageBytes returns the page size of an entry: half its pair.
func (e *entry) pageBytes() uint32 { return ((e.mask | 0x1fff) + 1) / 2 }

func (m *Model) lookup(va uint32, asid uint8) int {
	for i := range m.tlb {
		e := &m.tlb[i]
		if va&^(2*e.pageBytes()-1) == e.vpn2 && (e.g || e.asid == asid) {
			return i
		}
	}
	return -1
}

// access performs a load, store, fetch, KVM instruction read or CACHE.
func (m *Model) access(op cp0.Op) cp0.Result {
	va := op.VA
	store := op.Kind == cp0.OpStore
	dataOp := op.Kind == cp0.OpLoad || store
	size := uint32(op.Size)
	switch op.Kind {
	case cp0.OpFetch, cp0.OpKVMRead:
		size = 4
	case cp0.OpCache:
		size = 1
	}
	if dataOp && size != 1 && size != 2 && size != 4 {
		return cp0.Result{Outcome: cp0.Internal}
	}
	tlbCode, adCode := cp0.ExcTLBL, cp0.ExcAdEL
	if store {
		tlbCode, adCode = cp0.ExcTLBS, cp0.ExcAdES
	}
	kern := m.kernel()
	if op.Kind == cp0.OpCache {
		if !kern {
			return m.except(op, cp0.ExcCpU, false, nil, false)
		}
	} else if va%size != 0 || !kern && va >= 0x40000000 {
		return m.except(op, adCode, false, &va, false)
	}
	if va >= 0x80000000 {
		switch {
		case va >= 0xc0000000:
			return cp0.Result{Outcome: cp0.Internal}
		case op.Kind == cp0.OpCache:
			return cp0.Result{}
		case !dataOp:
			return cp0.Result{Outcome: cp0.Internal}
		}
		return m.doMMIO(uint64(va&0x1fffffff), store, op)
	}
	if kern && va/m.pageSize == cp0.CommpageAddr(m.pageSize)/m.pageSize {
		off := va % m.pageSize
		if op.Kind == cp0.OpCache {
			return cp0.Result{}
		}
		if store {
			m.commpagePut(off, size, op.Value)
			return cp0.Result{}
		}
		return cp0.Result{Value: m.commpageGet(off, size)}
	}
	// Guest physical addresses outside RAM are not emulated: the series'
	// fault handlers fail (KVM_EXIT_INTERNAL_ERROR). A KSeg0 page is mapped
	// with its buddy, so both must be RAM.
	var gpa uint64
	npages := uint64(len(m.ram)) / uint64(m.pageSize)
	if va >= 0x40000000 && va < 0x60000000 {
		gpa = uint64(va - 0x40000000)
		if gpa/uint64(m.pageSize)|1 >= npages {
			return cp0.Result{Outcome: cp0.Internal}
		}
	} else {
		i := m.lookup(va, uint8(m.regs[cp0.RegEntryHi][0]))
		if i < 0 {
			return m.except(op, tlbCode, true, &va, true)
		}
		e := &m.tlb[i]
		pb := e.pageBytes()
		lo := e.lo[0]
		if va&pb != 0 {
			lo = e.lo[1]
		}
		if lo&2 == 0 {
			return m.except(op, tlbCode, false, &va, true)
		}
		if pb < m.pageSize { // trap-and-emulate cannot map it
			return cp0.Result{Outcome: cp0.Internal}
		}
		gpa = (uint64(lo&0x3fffffc0)<<6)&^uint64(pb-1) | uint64(va&(pb-1))
		if gpa >= uint64(len(m.ram)) {
			return cp0.Result{Outcome: cp0.Internal}
		}
		if store && lo&4 == 0 {
			return m.except(op, cp0.ExcMod, false, &va, true)
		}
	}
	switch {
	case op.Kind == cp0.OpCache:
		return cp0.Result{}
	case store:
		b := m.ram[gpa:]
		for i := uint32(0); i < size; i++ {
			b[i] = byte(op.Value >> (8 * i))
		}
		m.written[uint32(gpa)&^(m.pageSize-1)] = true
		return cp0.Result{}
	}
	var v uint32
	for i := uint32(0); i < size; i++ {
		v |= uint32(m.ram[gpa+uint64(i)]) << (8 * i)
	}
	return cp0.Result{Value: v}
}

func (m *Model) doMMIO(pa uint64, store bool, op cp0.Op) cp0.Result {
	if m.mmio == nil {
		if store {
			return cp0.Result{Outcome: cp0.MMIO}
		}
		return cp0.Result{Outcome: cp0.MMIO, Value: uint32(uint64(1)<<(8*uint(op.Size)) - 1)}
	}
	if store {
		m.mmio.Write(pa, op.Size, op.Value)
		return cp0.Result{Outcome: cp0.MMIO}
	}
	return cp0.Result{Outcome: cp0.MMIO, Value: m.mmio.Read(pa, op.Size)}
}

// The commpage holds the register file, 4 bytes per (reg, sel) in
// reg-major order, little-endian, then plain bytes.

func (m *Model) commpageGet(off, size uint32) uint32 {
	var v uint32
	for i := uint32(0); i < size; i++ {
		v |= uint32(m.cbyte(off+i)) << (8 * i)
	}
	return v
}

func (m *Model) commpagePut(off, size, v uint32) {
	for i := uint32(0); i < size; i++ {
		o := off + i
		b := byte(v >> (8 * i))
		if o >= 1024 {
			m.extra[o-1024] = b
			continue
		}
		w := &m.regs[o/32][(o/4)%8]
		sh := 8 * (o % 4)
		*w = *w&^(0xff<<sh) | uint32(b)<<sh
	}
}

func (m *Model) cbyte(o uint32) byte {
	if o >= 1024 {
		return m.extra[o-1024]
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], m.regs[o/32][(o/4)%8])
	return b[o%4]
}

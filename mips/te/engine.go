// Package te is KVM/MIPS trap-and-emulate's memory virtualization after the
// "GVA page tables" series (seed 001, Linux 4.11): a guest kernel that
// believes it owns a software-managed MIPS TLB (package cp0) runs over a
// modelled host TLB (package hosttlb), with two GVA->HPA page tables per
// vCPU (package gva) in between, one for guest kernel mode and one for
// guest user mode, each with its own host ASID.
//
// A host TLB miss takes the fast refill: walk the active GVA table, load
// the even/odd PTEs as EntryLo0/1, write a random host TLB entry, retry. An
// empty PTE becomes an invalid entry and the retry takes the TLB-invalid
// exception into the slow path (commpage, guest KSeg0, guest TLB lookup),
// which fills the GVA table, injects the guest's exception or reports an
// internal error; host KSeg0/1 accesses are MMIO. The invalidation rules
// are those of the series: see invalidate.go.
//
// Config.Legacy runs the pre-series scheme instead (every host TLB miss
// exits to the slow path, which scans the guest TLB and writes the host TLB
// directly), as the baseline the series' claims are measured against.
// Config.DirtyLog replaces the series' TLB Modified handling by the dirty
// logging Linux 4.11 added after it.
package te

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/nestmmu/nestmmu/mem"
	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/gva"
	"github.com/nestmmu/nestmmu/mips/hosttlb"
)

// Config configures an Engine.
type Config struct {
	// PageSize is the host page size, which the guest must use too: 4096,
	// 16384 or 65536.
	PageSize uint32
	// RAMSize is the guest RAM size in bytes: GPA [0, RAMSize) is RAM, a
	// multiple of the page size, at most 512 MiB (all of guest KSeg0).
	RAMSize uint32
	// HostTLBEntries is the host TLB size (default 64).
	HostTLBEntries int
	// Seed drives host frame allocation and host TLB random replacement.
	Seed uint64
	// Legacy selects the pre-series scheme: no GVA tables, guest mappings
	// injected straight into the host TLB by the slow path.
	Legacy bool
	// MMIO is the device behind MMIO accesses (nil: reads all-ones,
	// writes ignored).
	MMIO cp0.MMIODevice
	// DirtyLog selects the fault handling of Linux 4.11 as released, where
	// the GPA page-table series that followed seed 001 added dirty logging:
	// guest pages are mapped clean until written, a store to a clean page
	// exits (TLB Modified) to log the page dirty and remap it writable, a
	// guest-TLB fault also maps the buddy page, and HarvestDirty reports
	// the pages written. The default (false) is the series' own semantics:
	// guest KSeg0 pages and guest D=1 pages are mapped writable at once, a
	// guest-TLB fault fills only the faulting page (the pre-series scheme
	// writes the pair into the host TLB), every host TLB Modified exception
	// in a mapped segment is the guest's, and there is no dirty log.
	DirtyLog bool
}

// faults lists the rules a test can switch off to show that the
// equivalence test catches each one missing. Tests set them through
// export_test.go; an engine built by New has none.
type faults struct {
	NoKernelFlushOnASIDChange bool // keep the kernel table's useg and KSeg2/3 PTEs on a guest ASID change
	NoNewKernelASIDOnChange   bool // keep the kernel table's host ASID on a guest ASID change
	NoUserLazyFlush           bool // never flush the user table on entry to guest user mode
	NoTLBWInvalidate          bool // do not clear the old entry's PTEs on TLBWI/TLBWR
	NoTLBWHostInvalidate      bool // clear the PTEs but leave the host TLB entries on TLBWI/TLBWR
	NoFullFlushKSeg0          bool // a full flush leaves the KSeg0 part of the kernel table
	NoInstallInvalidate       bool // a slow-path fill does not invalidate the host TLB pair first
}

// mm is one guest address space KVM switches the host to: a GVA table and
// the host ASID context it is currently tagged with (version<<8 | ASID; 0
// means none).
type mm struct {
	table *gva.Table
	ctx   uint64
}

type nopDevice struct{}

func (nopDevice) Read(_ uint64, size uint8) uint32 { return uint32(uint64(1)<<(8*uint(size)) - 1) }
func (nopDevice) Write(uint64, uint8, uint32)      {}

// Engine is one trap-and-emulate vCPU with its memory.
type Engine struct {
	cfg       Config
	faults    faults
	pageShift uint
	pageSize  uint32
	commpage  uint32 // guest VA of the commpage

	cp   *cp0.State
	host *hosttlb.TLB

	kern, user mm
	active     *mm
	asidCache  uint64 // last host context handed out
	hostASID   uint8
	lastUserG  int // guest ASID the user table was last filled for, -1 none

	frames     [][]byte // host physical frames; the last one is the commpage
	ram        []byte   // the RAM frames, contiguous from hostBase
	frameOfGPA []int32  // host frame of each guest page, -1 until first mapped
	freeFrames []int32  // host frames not yet given to a guest page (shuffled)
	commFrame  int32
	dirty      []bool // dirty log, per guest page
	mmio       cp0.MMIODevice
	flusher    gva.Flusher
	cleaner    gva.Cleaner

	// Stats counts what the engine did.
	Stats Stats
}

// hostBase is the host physical address of host frame 0.
const hostBase = 0x10000000

// maxRetries bounds the fault-and-retry loop of one access.
const maxRetries = 8

// New returns an engine in the reset state.
func New(cfg Config) (*Engine, error) {
	switch cfg.PageSize {
	case 4096, 16384, 65536:
	default:
		return nil, fmt.Errorf("te: page size %d not supported (4096, 16384 or 65536)", cfg.PageSize)
	}
	if cfg.RAMSize == 0 || cfg.RAMSize%cfg.PageSize != 0 || cfg.RAMSize > cp0.GuestKSeg0End-cp0.GuestKSeg0 {
		return nil, fmt.Errorf("te: RAM size %#x must be a non-zero multiple of the page size %#x and at most 512 MiB", cfg.RAMSize, cfg.PageSize)
	}
	if cfg.HostTLBEntries == 0 {
		cfg.HostTLBEntries = 64
	}
	e := &Engine{cfg: cfg, pageSize: cfg.PageSize, pageShift: uint(bits.TrailingZeros32(cfg.PageSize))}
	e.commpage = cp0.CommpageAddr(cfg.PageSize)
	var err error
	if e.cp, err = cp0.NewState(cfg.PageSize); err != nil {
		return nil, err
	}
	if e.host, err = hosttlb.New(cfg.HostTLBEntries, cfg.PageSize, cfg.Seed^0x9e3779b97f4a7c15); err != nil {
		return nil, err
	}
	if !cfg.Legacy {
		if e.kern.table, err = gva.New(cfg.PageSize); err != nil {
			return nil, err
		}
		if e.user.table, err = gva.New(cfg.PageSize); err != nil {
			return nil, err
		}
	}
	e.mmio = cfg.MMIO
	if e.mmio == nil {
		e.mmio = nopDevice{}
	}
	n := int(cfg.RAMSize >> e.pageShift)
	ram := make([]byte, cfg.RAMSize)
	// The host frames are shuffled over all of the RAM: the guest's
	// accesses land anywhere in it.
	mem.AdviseHugePages(ram)
	e.ram = ram
	e.frames = make([][]byte, n+1)
	for i := 0; i < n; i++ {
		e.frames[i] = ram[uint32(i)<<e.pageShift : uint32(i+1)<<e.pageShift]
	}
	e.commFrame = int32(n)
	e.frames[n] = e.cp.Page
	e.frameOfGPA = make([]int32, n)
	e.dirty = make([]bool, n)
	e.freeFrames = make([]int32, n)
	for i := range e.frameOfGPA {
		e.frameOfGPA[i] = -1
		e.freeFrames[i] = int32(i)
	}
	// Shuffle the free frames so that host frame order differs from guest
	// page order (a mapping bug then reads the wrong bytes).
	r := cfg.Seed | 1
	for i := n - 1; i > 0; i-- {
		r ^= r << 13
		r ^= r >> 7
		r ^= r << 17
		j := int(r % uint64(i+1))
		e.freeFrames[i], e.freeFrames[j] = e.freeFrames[j], e.freeFrames[i]
	}
	e.asidCache = 1 << 8
	e.lastUserG = -1
	e.reenter()
	return e, nil
}

// PageSize returns the page size.
func (e *Engine) PageSize() uint32 { return e.pageSize }

// CP0 implements cp0.Machine.
func (e *Engine) CP0(reg, sel uint8) uint32 { return e.cp.Get(reg, sel) }

// TLBEntry implements cp0.Machine.
func (e *Engine) TLBEntry(i int) cp0.Entry { return e.cp.TLB.E[i] }

// HostTLB returns the modelled host TLB (for inspection).
func (e *Engine) HostTLB() *hosttlb.TLB { return e.host }

// Tables returns the guest kernel and guest user GVA tables (nil in Legacy
// mode).
func (e *Engine) Tables() (kernel, user *gva.Table) { return e.kern.table, e.user.table }

// HostASIDs returns the host ASIDs of the kernel and user address spaces
// (0 when the context is stale).
func (e *Engine) HostASIDs() (kernel, user uint8) {
	cur := func(m *mm) uint8 {
		if m.ctx == 0 || m.ctx>>8 != e.asidCache>>8 {
			return 0
		}
		return uint8(m.ctx)
	}
	return cur(&e.kern), cur(&e.user)
}

// --- host ASIDs (get_new_mmu_context) ---

func (e *Engine) newContext(m *mm) {
	e.asidCache++
	if uint8(e.asidCache) == 0 {
		// Version rollover: every host ASID may be reused, so the whole
		// host TLB goes (local_flush_tlb_all); ASID 0 is skipped.
		e.host.FlushAll()
		e.Stats.Rollovers++
		e.asidCache++
	}
	m.ctx = e.asidCache
	e.Stats.HostASIDs++
}

func (e *Engine) activate(m *mm) {
	if m.ctx == 0 || m.ctx>>8 != e.asidCache>>8 {
		e.newContext(m)
	}
	e.active = m
	e.hostASID = uint8(m.ctx)
}

// reenter is kvm_trap_emul_vcpu_reenter: the lazy user-table flush when the
// guest enters user mode with a guest ASID other than the one the user
// table was filled for, then activation of the mode's address space.
func (e *Engine) reenter() {
	if !e.cp.KernelMode() {
		g := int(e.cp.ASID())
		if g != e.lastUserG && !e.faults.NoUserLazyFlush {
			e.flushUser()
			e.lastUserG = g
		}
		e.activate(&e.user)
		return
	}
	e.activate(&e.kern)
}

// --- host physical memory ---

// frameFor returns the host frame of guest page gp (gp < RAM pages),
// giving it one on first use (gfn_to_pfn).
func (e *Engine) frameFor(gp uint32) int32 {
	f := e.frameOfGPA[gp]
	if f < 0 {
		n := len(e.freeFrames)
		f = e.freeFrames[n-1]
		e.freeFrames = e.freeFrames[:n-1]
		e.frameOfGPA[gp] = f
	}
	return f
}

func (e *Engine) hpaOfFrame(f int32) uint64 { return hostBase + uint64(f)<<e.pageShift }

func (e *Engine) frameOfHPA(hpa uint64) []byte {
	return e.frames[(hpa-hostBase)>>e.pageShift]
}

// hostBytes returns host memory from the byte of va in the page of host
// EntryLo lo on: the flat RAM directly, other frames (the commpage)
// through the frame table.
func (e *Engine) hostBytes(lo, va uint32) []byte {
	hpa := uint64(lo&hosttlb.LoPFN) << 6
	off := va & (e.pageSize - 1)
	if i := hpa - hostBase + uint64(off); i < uint64(len(e.ram)) {
		return e.ram[i:]
	}
	return e.frameOfHPA(hpa)[off:]
}

func load(b []byte, size uint8) uint32 {
	switch size {
	case 1:
		return uint32(b[0])
	case 2:
		return uint32(binary.LittleEndian.Uint16(b))
	}
	return binary.LittleEndian.Uint32(b)
}

func store(b []byte, size uint8, v uint32) {
	switch size {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	default:
		binary.LittleEndian.PutUint32(b, v)
	}
}

// ReadGPA returns the little-endian word at guest physical address gpa as
// the guest would read it (0 for a page never mapped), for inspection.
func (e *Engine) ReadGPA(gpa uint32) uint32 {
	gp := gpa >> e.pageShift
	if gpa >= e.cfg.RAMSize || e.frameOfGPA[gp] < 0 {
		return 0
	}
	return binary.LittleEndian.Uint32(e.frames[e.frameOfGPA[gp]][gpa&(e.pageSize-1)&^3:])
}

// --- operations ---

// Exec implements cp0.Machine.
func (e *Engine) Exec(op cp0.Op) cp0.Result {
	var r cp0.Result
	e.ExecInto(&op, &r)
	return r
}

// ExecInto implements cp0.ResultWriter: Exec storing the result in *r.
func (e *Engine) ExecInto(op *cp0.Op, r *cp0.Result) {
	k := op.Kind
	if k >= cp0.NumOpKinds {
		k %= cp0.NumOpKinds
	}
	e.Stats.Ops[k]++
	switch op.Kind {
	case cp0.OpLoad, cp0.OpStore, cp0.OpFetch:
		e.access(op, r)
		return
	case cp0.OpKVMRead, cp0.OpCache:
		e.kvmAccess(op, r)
		return
	case cp0.OpSyscall:
		*r = e.inject(op, cp0.ExcSys, false, cp0.FaultNone, 0)
		return
	case cp0.OpFlushAll:
		e.flushAll()
		*r = cp0.Result{}
		return
	case cp0.OpHarvestDirty:
		e.HarvestDirty()
		*r = cp0.Result{}
		return
	}
	// CP0 instructions trap to KVM; in guest user mode KVM injects
	// Coprocessor Unusable (kvm_mips_check_privilege).
	if !e.cp.KernelMode() {
		*r = e.inject(op, cp0.ExcCpU, false, cp0.FaultNone, 0)
		return
	}
	*r = cp0.Result{}
	switch op.Kind {
	case cp0.OpMTC0:
		e.mtc0(op.Reg&31, op.Sel&7, op.Value) // rd is 5 bits, sel 3 bits
	case cp0.OpMFC0:
		r.Value = e.cp.Get(op.Reg, op.Sel)
	case cp0.OpTLBP:
		e.cp.TLBP()
		r.Value = e.cp.Get(cp0.RegIndex, 0)
	case cp0.OpTLBR:
		e.tlbr()
	case cp0.OpTLBWI:
		e.tlbw(e.cp.WriteIndex(), false)
	case cp0.OpTLBWR:
		e.tlbw(e.cp.RandomIndex(), true)
	case cp0.OpERET:
		r.PC = e.cp.ERET()
	default:
		e.Stats.Slow[SlowInternal]++
		r.Outcome = cp0.Internal
		return
	}
	e.reenter()
}

// inject delivers a guest exception (kvm_mips_emulate_* for TLB misses,
// invalid, modified, address errors, syscall, CpU) and re-enters the guest.
func (e *Engine) inject(op *cp0.Op, code cp0.ExcCode, refill bool, f cp0.Fault, va uint32) cp0.Result {
	e.Stats.Injected[code&31]++
	if refill && e.cp.Get(cp0.RegStatus, 0)&cp0.StatusEXL == 0 {
		e.Stats.RefillVector++
	}
	vec := e.cp.Enter(code, refill, f, va, op.PC, op.BD)
	e.reenter()
	return cp0.Result{
		Outcome:  cp0.Exception,
		Code:     code,
		PC:       vec,
		BadVAddr: e.cp.Get(cp0.RegBadVAddr, 0),
		EntryHi:  e.cp.Get(cp0.RegEntryHi, 0),
		EPC:      e.cp.Get(cp0.RegEPC, 0),
		Cause:    e.cp.Get(cp0.RegCause, 0),
	}
}

func loadStoreCodes(store bool) (tlb, addr cp0.ExcCode) {
	if store {
		return cp0.ExcTLBS, cp0.ExcAdES
	}
	return cp0.ExcTLBL, cp0.ExcAdEL
}

// access is a guest load, store or instruction fetch executed by the
// hardware: a host TLB lookup, with refill and exceptions into KVM. It
// stores its result in *r.
func (e *Engine) access(op *cp0.Op, r *cp0.Result) {
	e.Stats.Accesses++
	st := op.Kind == cp0.OpStore
	size := op.Size
	if op.Kind == cp0.OpFetch {
		size = 4
	}
	va := op.VA
	_, adCode := loadStoreCodes(st)
	if !validSize(size) {
		e.Stats.Slow[SlowInternal]++
		*r = cp0.Result{Outcome: cp0.Internal}
		return
	}
	// The guest runs in host user mode: an unaligned access or any address
	// at or above 2 GiB is a host address error (MIPS32 "Address Error
	// Exception"), handled by KVM before anything else.
	if va&uint32(size-1) != 0 {
		e.Stats.Slow[SlowAddrErr]++
		*r = e.inject(op, adCode, false, cp0.FaultAddr, va)
		return
	}
	if va >= cp0.HostKSeg0 {
		*r = e.hostAddrErr(op, va, st, size)
		return
	}
	for try := 0; try < maxRetries; try++ {
		lo, hit := e.host.Lookup(va, e.hostASID)
		if !hit {
			if done := e.refill(op, va, st, r); done {
				return
			}
			continue
		}
		if lo&hosttlb.LoV == 0 {
			// TLB Invalid: exit to KVM's slow path.
			if res, done := e.slowFault(op, va, st); done {
				*r = res
				return
			}
			continue
		}
		if st && lo&hosttlb.LoD == 0 {
			// TLB Modified: exit to KVM.
			if res, done := e.tlbMod(op, va); done {
				*r = res
				return
			}
			continue
		}
		if try == 0 {
			e.Stats.HostTLBHits++
		}
		b := e.hostBytes(lo, va)
		if st {
			store(b, size, op.Value)
			*r = cp0.Result{}
			return
		}
		*r = cp0.Result{Value: load(b, size)}
		return
	}
	e.Stats.Livelocks++
	e.Stats.Slow[SlowInternal]++
	*r = cp0.Result{Outcome: cp0.Internal}
}

func validSize(s uint8) bool { return s == 1 || s == 2 || s == 4 }

// hostAddrErr handles a host address error for va >= 2 GiB: injected as an
// address error in guest user mode (kvm_mips_check_privilege), MMIO for
// host KSeg0/1 in guest kernel mode, otherwise not emulatable.
func (e *Engine) hostAddrErr(op *cp0.Op, va uint32, st bool, size uint8) cp0.Result {
	_, adCode := loadStoreCodes(st)
	if !e.cp.KernelMode() {
		e.Stats.Slow[SlowAddrErr]++
		return e.inject(op, adCode, false, cp0.FaultAddr, va)
	}
	if va >= cp0.HostKSeg2 || !emulatedMMIO(op) {
		r, _ := e.internal()
		return r
	}
	return e.doMMIO(uint64(va&cp0.KSegPhysMask), st, size, op.Value)
}

func (e *Engine) doMMIO(pa uint64, st bool, size uint8, v uint32) cp0.Result {
	e.Stats.Slow[SlowMMIO]++
	if st {
		e.mmio.Write(pa, size, v)
		return cp0.Result{Outcome: cp0.MMIO}
	}
	return cp0.Result{Outcome: cp0.MMIO, Value: e.mmio.Read(pa, size)}
}

// refill handles a host TLB refill exception: the fast handler, or in
// Legacy mode the slow path. It reports that the access completed (an
// exception was injected or it was emulated, with the result in *r);
// otherwise it is retried.
func (e *Engine) refill(op *cp0.Op, va uint32, st bool, r *cp0.Result) bool {
	if e.cfg.Legacy {
		e.Stats.SlowRefills++
		res, done := e.slowFault(op, va, st)
		if done {
			*r = res
		}
		return done
	}
	e.fastRefill(va)
	return false
}

// fastRefill is the generated refill handler: walk the active GVA table,
// convert the even/odd PTEs to EntryLo0/1, TLBWR. No presence check: an
// empty PTE yields an invalid entry.
func (e *Engine) fastRefill(va uint32) {
	even, odd := e.active.table.Pair(va)
	e.Stats.TableReads += 3 // pgd entry, even and odd PTE
	e.host.WriteRandom(hosttlb.Entry{
		Hi:  va&^(2*e.pageSize-1) | uint32(e.hostASID),
		Lo0: even.EntryLo(),
		Lo1: odd.EntryLo(),
	})
	e.Stats.FastRefills++
	half := even
	if (va>>e.pageShift)&1 == 1 {
		half = odd
	}
	if half&gva.V == 0 {
		e.Stats.FastEmpty++
	}
}

package guestos

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/mem"
)

// CPU is the modelled hardware a guest kernel drives: one vCPU at EL1/EL0
// (kvm.VCPU implements it).
type CPU interface {
	Ctx() *kvm.Context
	Ldr(rt uint8, va mem.VA, size int) (kvm.Exit, error)
	Str(rt uint8, va mem.VA, size int) (kvm.Exit, error)
	RunBatch(b []kvm.BatchAccess) (int, kvm.Exit, error)
	MSR(r cpu.SysReg, rt uint8) (kvm.Exit, error)
	MRS(r cpu.SysReg, rt uint8) (kvm.Exit, error)
	TLBI(op tlb.Op, rt uint8) (kvm.Exit, error)
	ERET() (kvm.Exit, error)
	SVC(imm uint16) (kvm.Exit, error)
	VirtualIRQ() (kvm.Exit, error)
}

// Config describes the guest.
type Config struct {
	// RAMBase and RAMSize place guest RAM in the IPA space (one memslot).
	RAMBase, RAMSize uint64
	// IPABits is the IPA size of the VM (TCR_EL1.IPS).
	IPABits uint
	// Granule is the stage-1 translation granule (zero: 4K).
	Granule sysreg.Granule
	// VABits is the size of each virtual address range, TTBR0's and
	// TTBR1's (zero: 48).
	VABits uint
	// ASIDBits is 8 or 16 (zero: 16; TCR_EL1.AS).
	ASIDBits uint
	// PageLinearMap maps the linear map with pages only (Linux's
	// rodata=full); otherwise blocks are used where they fit.
	PageLinearMap bool
	// NoZeroPage maps a fresh zeroed page on a read fault instead of the
	// shared zero page.
	NoZeroPage bool
	// DeviceBase is the IPA of the guest's device page (0: no device),
	// which the kernel maps Device-nGnRE at boot (ioremap).
	DeviceBase uint64
}

// Memory types (MAIR_EL1 attribute indices, as Linux numbers them).
const (
	mtNormal       = 0
	mtNormalTagged = 1
	mtNormalNC     = 2
	mtDeviceNGnRnE = 3
	mtDeviceNGnRE  = 4
)

// mairValue is MAIR_EL1 with those attributes (MT_NORMAL_TAGGED is plain
// Normal write-back without FEAT_MTE: 0xf0 needs MTE).
var mairValue = uint64(sysreg.MAIROf(sysreg.MAIRNormalWB, sysreg.MAIRNormalWB, sysreg.MAIRNormalNC,
	sysreg.MAIRDevicenGnRnE, sysreg.MAIRDevicenGnRE))

// ErrOutOfMemory is returned when the guest has no free page frame.
var ErrOutOfMemory = errors.New("guestos: out of memory")

// ErrSegv is returned for a user access no VMA allows (the kernel would
// send SIGSEGV).
var ErrSegv = errors.New("guestos: segmentation fault")

// OS is one guest kernel (one VM). Its methods that act through the
// hardware are on Core, one per vCPU.
type OS struct {
	cfg        Config
	f          desc.Format
	pgShift    uint
	pgSize     uint64
	stride     uint
	start      int    // stage-1 start level
	pageOffset uint64 // VA of the linear map's first byte (RAM base)
	tcr        uint64

	mu      sync.Mutex // the kernel lock: frames, ASIDs, PIDs
	refs    []int32    // per frame: references (0: free)
	free    []uint32   // free frame numbers (a stack)
	inUse   int
	kroot   uint64 // TTBR1 root (GPA)
	empty   uint64 // the reserved (empty) TTBR0 table
	zero    uint64 // the zero page (GPA)
	devVA   mem.VA // the device page's kernel VA (0: none)
	nextPID int
	asids   asidAllocator
	cores   []*Core
	booted  bool
	peakUse int
	// ptLive counts the stage-1 page-table pages in use (kernel and
	// processes).
	ptLive, ptPeak int
}

// New returns a guest kernel for cfg. Boot it on one Core first (Boot),
// then bring up the other cores (Start).
func New(cfg Config) (*OS, error) {
	if cfg.Granule == 0 {
		cfg.Granule = sysreg.Granule4K
	}
	if cfg.VABits == 0 {
		cfg.VABits = 48
	}
	if cfg.ASIDBits == 0 {
		cfg.ASIDBits = 16
	}
	o := &OS{cfg: cfg, f: desc.Format{Granule: cfg.Granule}}
	switch cfg.Granule {
	case sysreg.Granule4K, sysreg.Granule16K, sysreg.Granule64K:
	default:
		return nil, fmt.Errorf("guestos: granule %v is not 4K, 16K or 64K", cfg.Granule)
	}
	o.pgShift = cfg.Granule.Bits()
	o.pgSize = 1 << o.pgShift
	o.stride = o.pgShift - 3
	// AArch64.S1MinTxSZ/MaxTxSZ without FEAT_LVA/LPA2: 25..48 bits.
	if cfg.VABits < 25 || cfg.VABits > 48 {
		return nil, fmt.Errorf("guestos: %d-bit virtual addresses: want 25 to 48", cfg.VABits)
	}
	if cfg.ASIDBits != 8 && cfg.ASIDBits != 16 {
		return nil, fmt.Errorf("guestos: %d-bit ASIDs: want 8 or 16", cfg.ASIDBits)
	}
	ips, ok := ipsFor(cfg.IPABits)
	if !ok {
		return nil, fmt.Errorf("guestos: IPA size %d bits has no TCR_EL1.IPS encoding", cfg.IPABits)
	}
	if cfg.RAMSize < 64*o.pgSize || cfg.RAMSize%o.pgSize != 0 || cfg.RAMBase%o.pgSize != 0 {
		return nil, fmt.Errorf("guestos: RAM %#x+%#x is not a whole number of at least 64 %d-byte pages", cfg.RAMBase, cfg.RAMSize, o.pgSize)
	}
	if cfg.RAMBase+cfg.RAMSize > 1<<cfg.IPABits || cfg.RAMSize > 1<<(cfg.VABits-1) {
		return nil, fmt.Errorf("guestos: RAM %#x+%#x does not fit the %d-bit IPA space or half the %d-bit VA range", cfg.RAMBase, cfg.RAMSize, cfg.IPABits, cfg.VABits)
	}
	o.start = startLevel(o.pgShift, cfg.VABits)
	o.pageOffset = ^uint64(0) << cfg.VABits
	o.tcr = tcrValue(cfg.Granule, cfg.VABits, ips, cfg.ASIDBits == 16)
	n := cfg.RAMSize >> o.pgShift
	o.refs = make([]int32, n)
	o.free = make([]uint32, 0, n)
	for i := n; i > 0; i-- {
		o.free = append(o.free, uint32(i-1))
	}
	o.asids.init(cfg.ASIDBits)
	return o, nil
}

// startLevel is AArch64.S1StartLevel for a granule (log2 size) and VA size.
func startLevel(pgShift, vaBits uint) int {
	return 3 - int(vaBits-1-pgShift)/int(pgShift-3)
}

// ipsFor returns TCR_EL1.IPS for an IPA size: the smallest encoded PA size
// that holds it.
func ipsFor(bits uint) (uint64, bool) {
	for _, e := range []uint64{sysreg.PS32, sysreg.PS36, sysreg.PS40, sysreg.PS42, sysreg.PS44, sysreg.PS48, sysreg.PS52} {
		if b, _ := sysreg.PASizeBits(e); bits <= b {
			return e, true
		}
	}
	return 0, false
}

// tcrValue is TCR_EL1 as Linux programs it: both ranges vabits wide, the
// granule in TG0 and TG1, inner-shareable write-back write-allocate table
// walks, the ASID in TTBR1 (A1=1), TBI0 (top-byte-ignore for user
// addresses), the hardware Access flag (HA).
func tcrValue(g sysreg.Granule, vaBits uint, ips uint64, asid16 bool) uint64 {
	sz := 64 - vaBits
	wb, sh := sysreg.RGNWBWA, sysreg.SHInner
	return uint64(sysreg.TCRFields{T0SZ: sz, IRGN0: wb, ORGN0: wb, SH0: sh, TG0: g,
		T1SZ: sz, A1: true, IRGN1: wb, ORGN1: wb, SH1: sh, TG1: g,
		IPS: ips, AS: asid16, TBI0: true, HA: true}.Value())
}

// sctlrMMUOn is SCTLR_EL1 with the MMU and caches on: M, C, SA, SA0, I and
// the RES1 bits of Armv8.0 (11, 20, 22, 28, 29). SPAN is 0, so PSTATE.PAN
// is set on exception entry to EL1.
var sctlrMMUOn = uint64(sysreg.SCTLRFields{M: true, C: true, SA: true, SA0: true, I: true,
	Other: 1<<11 | 1<<20 | 1<<22 | 1<<28 | 1<<29}.Value())

// Config returns the configuration with defaults filled in.
func (o *OS) Config() Config { return o.cfg }

// PageSize returns the guest page size.
func (o *OS) PageSize() uint64 { return o.pgSize }

// Levels returns the number of stage-1 translation levels.
func (o *OS) Levels() int { return 4 - o.start }

// TCR returns TCR_EL1.
func (o *OS) TCR() uint64 { return o.tcr }

// kva is the linear-map VA of a guest physical address.
func (o *OS) kva(gpa uint64) mem.VA { return mem.VA(o.pageOffset + gpa - o.cfg.RAMBase) }

func (o *OS) frameOf(gpa uint64) uint32 { return uint32((gpa - o.cfg.RAMBase) >> o.pgShift) }
func (o *OS) gpaOf(f uint32) uint64     { return o.cfg.RAMBase + uint64(f)<<o.pgShift }

// allocFrame takes a free frame with one reference (not zeroed).
func (o *OS) allocFrame() (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.free) == 0 {
		return 0, fmt.Errorf("%w: all %d page frames in use", ErrOutOfMemory, len(o.refs))
	}
	f := o.free[len(o.free)-1]
	o.free = o.free[:len(o.free)-1]
	o.refs[f] = 1
	o.inUse++
	o.peakUse = max(o.peakUse, o.inUse)
	return o.gpaOf(f), nil
}

// get takes another reference to a frame (copy-on-write sharing).
func (o *OS) get(gpa uint64) {
	if gpa == o.zero {
		return
	}
	o.mu.Lock()
	o.refs[o.frameOf(gpa)]++
	o.mu.Unlock()
}

// put drops a reference; the frame is freed at zero.
func (o *OS) put(gpa uint64) error {
	if gpa == o.zero {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	f := o.frameOf(gpa)
	if int(f) >= len(o.refs) || o.refs[f] <= 0 {
		return fmt.Errorf("guestos: freeing frame %#x which has no reference", gpa)
	}
	o.refs[f]--
	if o.refs[f] == 0 {
		o.free = append(o.free, f)
		o.inUse--
	}
	return nil
}

// shared reports whether a frame has more than one reference.
func (o *OS) shared(gpa uint64) bool {
	if gpa == o.zero {
		return true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.refs[o.frameOf(gpa)] > 1
}

// Stats counts what a kernel did; OS.Stats sums the cores'.
type Stats struct {
	// Page faults by how they were resolved.
	DemandZero, DemandPage, COWCopy, COWReuse, Spurious, AccessFlag uint64
	Syscalls, Forks, Execs, Exits, Mmaps, Munmaps                   uint64
	Ticks, ContextSwitches, Doorbells                               uint64
	// KernelAccesses counts the kernel's own loads and stores (page
	// tables, zeroing and copying pages, saving and restoring registers).
	KernelAccesses uint64
	// ASIDRollovers: generation rollovers of the ASID allocator;
	// LocalFlushes: TLBI VMALLE1 on switch after a rollover.
	ASIDRollovers, LocalFlushes uint64
	// TLBIs by operation.
	TLBIs [tlb.NumOps]uint64
	// PTPages and PTPeak: stage-1 page-table pages in use, now and at most;
	// Frames and FramesPeak: page frames in use.
	PTPages, PTPeak, Frames, FramesPeak int
}

// Faults returns the page faults handled.
func (s *Stats) Faults() uint64 {
	return s.DemandZero + s.DemandPage + s.COWCopy + s.COWReuse + s.Spurious + s.AccessFlag
}

// Stats returns the kernel's counters. Call it while no core runs.
func (o *OS) Stats() Stats {
	var s Stats
	for _, c := range o.cores {
		a := &c.Stats
		s.DemandZero += a.DemandZero
		s.DemandPage += a.DemandPage
		s.COWCopy += a.COWCopy
		s.COWReuse += a.COWReuse
		s.Spurious += a.Spurious
		s.AccessFlag += a.AccessFlag
		s.Syscalls += a.Syscalls
		s.Forks += a.Forks
		s.Execs += a.Execs
		s.Exits += a.Exits
		s.Mmaps += a.Mmaps
		s.Munmaps += a.Munmaps
		s.Ticks += a.Ticks
		s.Doorbells += a.Doorbells
		s.KernelAccesses += a.KernelAccesses
		s.ContextSwitches += a.ContextSwitches
		s.LocalFlushes += a.LocalFlushes
		for i := range s.TLBIs {
			s.TLBIs[i] += a.TLBIs[i]
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	s.ASIDRollovers = o.asids.rollovers
	s.PTPages, s.PTPeak = o.ptLive, o.ptPeak
	s.Frames, s.FramesPeak = o.inUse, o.peakUse
	return s
}

// ptAlloc and ptFree count page-table pages.
func (o *OS) ptAlloc() {
	o.mu.Lock()
	o.ptLive++
	o.ptPeak = max(o.ptPeak, o.ptLive)
	o.mu.Unlock()
}

func (o *OS) ptFree() {
	o.mu.Lock()
	o.ptLive--
	o.mu.Unlock()
}

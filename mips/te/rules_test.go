package te

import (
	"testing"

	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/gva"
	"github.com/nestmmu/nestmmu/mips/hosttlb"
)

// harness drives an engine with a 4K page size in guest kernel mode.
type harness struct {
	t *testing.T
	e *Engine
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	if cfg.PageSize == 0 {
		cfg.PageSize = 4096
	}
	if cfg.RAMSize == 0 {
		cfg.RAMSize = 1 << 20
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t, e}
	h.mtc0(cp0.RegStatus, 0) // kernel mode, EXL=0, BEV=0
	return h
}

func (h *harness) exec(op cp0.Op) cp0.Result {
	h.t.Helper()
	if op.PC == 0 {
		op.PC = 0x40001000
	}
	return h.e.Exec(op)
}

func (h *harness) mtc0(reg uint8, v uint32) { h.exec(cp0.Op{Kind: cp0.OpMTC0, Reg: reg, Value: v}) }

// write puts a 4K-page entry at index i: even page -> gpa0, odd -> gpa1.
func (h *harness) write(i int, hi, gpa0, gpa1 uint32, flags uint32) {
	h.mtc0(cp0.RegPageMask, 0)
	h.mtc0(cp0.RegEntryHi, hi)
	h.mtc0(cp0.RegEntryLo0, gpa0>>12<<6|flags)
	h.mtc0(cp0.RegEntryLo1, gpa1>>12<<6|flags)
	h.mtc0(cp0.RegIndex, uint32(i))
	h.exec(cp0.Op{Kind: cp0.OpTLBWI})
}

func (h *harness) load(va uint32) cp0.Result {
	return h.exec(cp0.Op{Kind: cp0.OpLoad, VA: va, Size: 4})
}

func (h *harness) store(va, v uint32) cp0.Result {
	return h.exec(cp0.Op{Kind: cp0.OpStore, VA: va, Size: 4, Value: v})
}

func (h *harness) mustDone(r cp0.Result) {
	h.t.Helper()
	if r.Outcome != cp0.Done {
		h.t.Fatalf("want done, got %v", r)
	}
}

func (h *harness) user(asid uint32) {
	h.mtc0(cp0.RegEntryHi, asid)
	h.mtc0(cp0.RegStatus, cp0.StatusUM|cp0.StatusEXL)
	h.mtc0(cp0.RegEPC, 0x400000)
	h.exec(cp0.Op{Kind: cp0.OpERET})
}

func (h *harness) kernel() { h.exec(cp0.Op{Kind: cp0.OpSyscall, PC: 0x400000}) }

const vw = gva.V

func TestFastRefillHasNoPresenceCheck(t *testing.T) {
	h := newHarness(t, Config{})
	// No guest TLB entry: the fast refill loads an empty pair, the retry
	// takes TLB invalid into the slow path, which injects a guest refill.
	r := h.load(0x00400000)
	if r.Outcome != cp0.Exception || r.Code != cp0.ExcTLBL || r.PC != 0x40000000 {
		t.Fatalf("got %v, want TLBL at the refill vector", r)
	}
	s := h.e.Stats
	if s.FastRefills != 1 || s.FastEmpty != 1 || s.Slow[SlowGuestRefill] != 1 {
		t.Errorf("fast %d empty %d guest-refill %d, want 1 1 1", s.FastRefills, s.FastEmpty, s.Slow[SlowGuestRefill])
	}
	lo, hit := h.e.host.Lookup(0x00400000, h.e.hostASID)
	if !hit || lo&uint32(vw) != 0 {
		t.Errorf("host TLB: hit %v lo %#x, want an invalid entry", hit, lo)
	}
}

func TestEvictedMappingTakesOnlyFastPath(t *testing.T) {
	h := newHarness(t, Config{})
	h.write(1, 0x00400000, 0x10000, 0x11000, cp0.EntryLoV|cp0.EntryLoD)
	h.mustDone(h.store(0x00400010, 0xabcd))
	scans := h.e.Stats.GuestScans
	h.e.host.FlushAll() // evicted from the host TLB, still mapped by the guest
	r := h.load(0x00400010)
	if r.Outcome != cp0.Done || r.Value != 0xabcd {
		t.Fatalf("got %v", r)
	}
	if h.e.Stats.GuestScans != scans {
		t.Errorf("refill of an evicted mapping scanned the guest TLB")
	}
}

func TestASIDChangeFlushesKernelTableAtOnce(t *testing.T) {
	h := newHarness(t, Config{})
	h.mtc0(cp0.RegEntryHi, 1)
	h.write(1, 0x00400000|1, 0x10000, 0x11000, cp0.EntryLoV|cp0.EntryLoD)
	h.write(2, 0x60000000|1, 0x12000, 0x13000, cp0.EntryLoV|cp0.EntryLoD)
	h.mustDone(h.load(0x00400000))
	h.mustDone(h.load(0x60000000))
	h.mustDone(h.load(0x40020000)) // KSeg0
	kt := h.e.kern.table
	if kt.Lookup(0x00400000) == 0 || kt.Lookup(0x60000000) == 0 || kt.Lookup(0x40020000) == 0 {
		t.Fatal("tables not filled")
	}
	oldASID, _ := h.e.HostASIDs()
	flushes := h.e.Stats.Flush[FlushASID].Count
	h.mtc0(cp0.RegEntryHi, 2)
	if kt.Lookup(0x00400000) != 0 || kt.Lookup(0x60000000) != 0 {
		t.Error("useg/KSeg2 PTEs survived the ASID change")
	}
	if kt.Lookup(0x40020000) == 0 {
		t.Error("KSeg0 PTE was flushed on an ASID change")
	}
	if k, _ := h.e.HostASIDs(); k == oldASID {
		t.Error("kernel table kept its host ASID")
	}
	// The new ASID sees a refill for the old mapping.
	if r := h.load(0x00400000); r.Outcome != cp0.Exception || r.Code != cp0.ExcTLBL {
		t.Errorf("got %v, want TLBL", r)
	}
	if h.e.Stats.Flush[FlushASID].Count != flushes+1 {
		t.Errorf("ASID flush count %d, want %d", h.e.Stats.Flush[FlushASID].Count, flushes+1)
	}
	// Writing the same ASID again is not a change.
	h.mtc0(cp0.RegEntryHi, 0x00400000|2)
	if h.e.Stats.Flush[FlushASID].Count != flushes+1 {
		t.Error("same-ASID write flushed")
	}
}

func TestTLBRChangingASIDFlushes(t *testing.T) {
	h := newHarness(t, Config{})
	h.write(3, 0x00400000|7, 0x10000, 0x11000, cp0.EntryLoV) // EntryHi.ASID = 7
	h.mtc0(cp0.RegEntryHi, 1)
	n := h.e.Stats.Flush[FlushASID].Count
	h.mtc0(cp0.RegIndex, 3)
	h.exec(cp0.Op{Kind: cp0.OpTLBR})
	if h.e.Stats.Flush[FlushASID].Count != n+1 || h.e.cp.ASID() != 7 {
		t.Errorf("TLBR to ASID 7: flushes %d -> %d", n, h.e.Stats.Flush[FlushASID].Count)
	}
}

func TestUserTableFlushedLazily(t *testing.T) {
	h := newHarness(t, Config{})
	h.write(1, 0x00400000|1, 0x10000, 0x11000, cp0.EntryLoV|cp0.EntryLoD)
	h.user(1)
	h.mustDone(h.load(0x00400000))
	ut := h.e.user.table
	if ut.Lookup(0x00400000) == 0 {
		t.Fatal("user table not filled")
	}
	h.kernel()
	flushes := h.e.Stats.Flush[FlushUser].Count
	h.mtc0(cp0.RegEntryHi, 2)
	if ut.Lookup(0x00400000) == 0 || h.e.Stats.Flush[FlushUser].Count != flushes {
		t.Error("user table flushed before entering user mode")
	}
	h.mtc0(cp0.RegEntryHi, 1) // back to the ASID the table was filled for
	h.user(1)
	if ut.Lookup(0x00400000) == 0 || h.e.Stats.Flush[FlushUser].Count != flushes {
		t.Error("user table flushed although the guest ASID is unchanged")
	}
	h.kernel()
	h.user(2)
	if ut.Lookup(0x00400000) != 0 || h.e.Stats.Flush[FlushUser].Count != flushes+1 {
		t.Error("user table not flushed on entry with a new guest ASID")
	}
	if r := h.load(0x00400000); r.Outcome != cp0.Exception || r.Code != cp0.ExcTLBL || r.PC != 0x40000000 {
		t.Errorf("got %v, want TLBL refill", r)
	}
}

func TestTLBWClearsOldPairAndHostEntries(t *testing.T) {
	h := newHarness(t, Config{})
	h.write(1, 0x00400000, 0x10000, 0x11000, cp0.EntryLoV|cp0.EntryLoD)
	h.write(2, 0x60002000, 0x12000, 0x13000, cp0.EntryLoV|cp0.EntryLoD)
	h.mustDone(h.load(0x00400000))
	h.mustDone(h.load(0x00401000))
	h.mustDone(h.load(0x60002000))
	h.user(0)
	h.mustDone(h.load(0x00400000))
	h.kernel()
	kASID, uASID := h.e.HostASIDs()
	// Overwrite entry 1 (useg): both tables and both host ASIDs lose the pair.
	h.write(1, 0x00800000, 0x14000, 0x15000, cp0.EntryLoV)
	if h.e.kern.table.Lookup(0x00400000) != 0 || h.e.kern.table.Lookup(0x00401000) != 0 || h.e.user.table.Lookup(0x00400000) != 0 {
		t.Error("old pair survived TLBWI")
	}
	if _, hit := h.e.host.Lookup(0x00400000, kASID); hit {
		t.Error("kernel host entry survived")
	}
	if _, hit := h.e.host.Lookup(0x00400000, uASID); hit {
		t.Error("user host entry survived")
	}
	if h.e.kern.table.Lookup(0x60002000) == 0 {
		t.Error("unrelated PTE cleared")
	}
	// Overwrite entry 2 (KSeg2/3): kernel table only.
	before := h.e.Stats.Flush[FlushTLBW]
	h.write(2, 0x60100000, 0x12000, 0x13000, 0)
	if h.e.kern.table.Lookup(0x60002000) != 0 {
		t.Error("KSeg2 PTE survived")
	}
	// Entry 2 is now invalid: overwriting it needs nothing.
	mid := h.e.Stats.Flush[FlushTLBW]
	h.write(2, 0x60200000, 0x12000, 0x13000, cp0.EntryLoV)
	if h.e.Stats.Flush[FlushTLBW].Count != mid.Count || mid.Count != before.Count+1 {
		t.Errorf("TLBW flush counts %d %d %d", before.Count, mid.Count, h.e.Stats.Flush[FlushTLBW].Count)
	}
	// An entry above 0x7fffffff needs nothing either.
	h.write(5, 0x90000000, 0x12000, 0x13000, cp0.EntryLoV)
	n := h.e.Stats.Flush[FlushTLBW].Count
	h.write(5, 0x00c00000, 0x12000, 0x13000, cp0.EntryLoV)
	if h.e.Stats.Flush[FlushTLBW].Count != n {
		t.Error("overwriting a host-kernel-address entry invalidated")
	}
}

func TestTLBWLargePageClearsWholeSpan(t *testing.T) {
	h := newHarness(t, Config{})
	// One 64K-page entry covers 32 host pages.
	h.mtc0(cp0.RegPageMask, 0x1e000)
	h.mtc0(cp0.RegEntryHi, 0x00400000)
	h.mtc0(cp0.RegEntryLo0, 0x20000>>12<<6|cp0.EntryLoV)
	h.mtc0(cp0.RegEntryLo1, 0x30000>>12<<6|cp0.EntryLoV)
	h.mtc0(cp0.RegIndex, 4)
	h.exec(cp0.Op{Kind: cp0.OpTLBWI})
	for va := uint32(0x00400000); va < 0x00420000; va += 0x5000 {
		h.mustDone(h.load(va))
	}
	h.write(4, 0x00800000, 0, 0, 0)
	var c gva.Counter
	h.e.kern.table.Walk(0x00400000, 0x00420000, &c)
	if c.Present != 0 {
		t.Errorf("%d PTEs of the 128K span survived", c.Present)
	}
}

func TestFullFlushClearsBothTablesAndKSeg0(t *testing.T) {
	h := newHarness(t, Config{})
	h.write(1, 0x00400000, 0x10000, 0x11000, cp0.EntryLoV|cp0.EntryLoD)
	h.mustDone(h.load(0x40030000))
	h.mustDone(h.load(0x00400000))
	h.user(0)
	h.mustDone(h.load(0x00400000))
	h.kernel()
	h.exec(cp0.Op{Kind: cp0.OpFlushAll})
	kt, ut := h.e.Tables()
	if kt.Live != 0 || ut.Live != 0 {
		t.Errorf("live PTE pages after full flush: kernel %d user %d", kt.Live, ut.Live)
	}
	f := h.e.Stats.Flush[FlushAll]
	if f.PagesFreed < 2 || f.PTEsCleared < 4 {
		t.Errorf("full flush stats %+v", f)
	}
}

func TestDirtyLoggingMapsCleanPagesReadOnly(t *testing.T) {
	h := newHarness(t, Config{DirtyLog: true})
	h.mustDone(h.load(0x40005000))
	p := h.e.kern.table.Lookup(0x40005000)
	if p&gva.V == 0 || p&gva.D != 0 || p&gva.Write == 0 {
		t.Fatalf("clean KSeg0 page PTE %#x, want valid, writable-later, not dirty", p)
	}
	h.mustDone(h.store(0x40005000, 1))
	if p := h.e.kern.table.Lookup(0x40005000); p&gva.D == 0 {
		t.Errorf("PTE %#x not dirty after a store", p)
	}
	if got := h.e.HarvestDirty(); len(got) != 1 || got[0] != 0x5000 {
		t.Errorf("dirty log %#x, want [0x5000]", got)
	}
	if p := h.e.kern.table.Lookup(0x40005000); p&gva.D != 0 {
		t.Errorf("PTE %#x still dirty after harvest", p)
	}
	h.mustDone(h.store(0x40005000, 2))
	if got := h.e.HarvestDirty(); len(got) != 1 {
		t.Errorf("store after harvest not logged: %#x", got)
	}
	if v := h.e.ReadGPA(0x5000); v != 2 {
		t.Errorf("guest memory holds %d", v)
	}
}

func TestTLBModifiedForwardedForCleanGuestPage(t *testing.T) {
	h := newHarness(t, Config{})
	h.write(1, 0x00400000, 0x10000, 0x11000, cp0.EntryLoV) // D=0
	h.mustDone(h.load(0x00400000))
	r := h.store(0x00400004, 5)
	if r.Outcome != cp0.Exception || r.Code != cp0.ExcMod || r.PC != 0x40000180 || r.BadVAddr != 0x00400004 {
		t.Errorf("got %v, want Mod at the general vector", r)
	}
	if h.e.Stats.Slow[SlowTLBModInject] != 1 {
		t.Errorf("tlbmod-inject %d", h.e.Stats.Slow[SlowTLBModInject])
	}
}

func TestKVMReadReportsFaultToInject(t *testing.T) {
	h := newHarness(t, Config{})
	r := h.exec(cp0.Op{Kind: cp0.OpKVMRead, VA: 0x00400000, PC: 0x00400000})
	if r.Outcome != cp0.Exception || r.Code != cp0.ExcTLBL || r.BadVAddr != 0x00400000 || r.EPC != 0x00400000 {
		t.Errorf("got %v, want an injected TLBL", r)
	}
	h.mtc0(cp0.RegStatus, 0)
	h.store(0x40006000, 0x1234)
	h.e.host.FlushAll()
	r = h.exec(cp0.Op{Kind: cp0.OpKVMRead, VA: 0x40006000, PC: 0x40006000})
	if r.Outcome != cp0.Done || r.Value != 0x1234 {
		t.Errorf("got %v", r)
	}
	if h.e.Stats.KVMAccesses != 2 || h.e.Stats.KVMFaults != 1 {
		t.Errorf("KVM accesses %d faults %d", h.e.Stats.KVMAccesses, h.e.Stats.KVMFaults)
	}
}

func TestCommpageInKernelModeOnly(t *testing.T) {
	h := newHarness(t, Config{})
	h.mtc0(cp0.RegKScratch, 0) // reg 31 sel 0
	h.exec(cp0.Op{Kind: cp0.OpMTC0, Reg: cp0.RegKScratch, Sel: 2, Value: 0xfeed})
	r := h.load(0x7000 + cp0.RegOffset(cp0.RegKScratch, 2))
	if r.Outcome != cp0.Done || r.Value != 0xfeed {
		t.Errorf("commpage read %v", r)
	}
	h.user(0)
	if r := h.load(0x7000); r.Outcome != cp0.Exception || r.Code != cp0.ExcTLBL {
		t.Errorf("user access to the commpage address: %v, want a guest TLB refill", r)
	}
}

func TestUserAccessToKernelSegmentsIsAddressError(t *testing.T) {
	h := newHarness(t, Config{})
	h.user(0)
	for _, va := range []uint32{0x40000000, 0x60000000, 0x80000000, 0xc0000000} {
		r := h.store(va, 0)
		if r.Outcome != cp0.Exception || r.Code != cp0.ExcAdES || r.BadVAddr != va {
			t.Errorf("user store %#x: %v, want AdES", va, r)
		}
		h.mtc0(cp0.RegStatus, cp0.StatusUM|cp0.StatusEXL)
		h.exec(cp0.Op{Kind: cp0.OpERET})
	}
}

func TestHostKSeg1IsMMIO(t *testing.T) {
	dev := &cp0.ScratchDevice{Base: 0x1f000000, Regs: make([]byte, 16)}
	h := newHarness(t, Config{MMIO: dev})
	if r := h.store(0xbf000004, 0x55); r.Outcome != cp0.MMIO {
		t.Errorf("store %v", r)
	}
	if r := h.load(0xbf000004); r.Outcome != cp0.MMIO || r.Value != 0x55 {
		t.Errorf("load %v", r)
	}
	if r := h.load(0xc0000000); r.Outcome != cp0.Internal {
		t.Errorf("host KSeg2 %v, want internal error", r)
	}
}

func TestHotPathsAllocFree(t *testing.T) {
	h := newHarness(t, Config{})
	h.write(1, 0x00400000, 0x10000, 0x11000, cp0.EntryLoV|cp0.EntryLoD)
	h.mustDone(h.load(0x00400000))
	op := cp0.Op{Kind: cp0.OpLoad, VA: 0x00400000, Size: 4, PC: 0x40001000}
	if n := testing.AllocsPerRun(200, func() {
		h.e.host.FlushAll()
		h.e.Exec(op) // miss, fast refill, hit
	}); n != 0 {
		t.Errorf("fast refill path: %v allocations", n)
	}
	if n := testing.AllocsPerRun(200, func() { h.e.fastRefill(0x00400000) }); n != 0 {
		t.Errorf("fastRefill: %v allocations", n)
	}
}

// TestMTC0RegisterFieldIsFiveBits: rd is 5 bits and sel 3, so register 42
// select 8 is EntryHi and an ASID change through it must flush.
func TestMTC0RegisterFieldIsFiveBits(t *testing.T) {
	h := newHarness(t, Config{})
	n := h.e.Stats.Flush[FlushASID].Count
	h.exec(cp0.Op{Kind: cp0.OpMTC0, Reg: cp0.RegEntryHi + 32, Sel: 8, Value: 9})
	if h.e.cp.ASID() != 9 || h.e.Stats.Flush[FlushASID].Count != n+1 {
		t.Errorf("ASID %d, flushes %d -> %d", h.e.cp.ASID(), n, h.e.Stats.Flush[FlushASID].Count)
	}
}

// TestSeriesMapsPagesWritableAtOnce: as the series left it, a guest KSeg0
// page is mapped dirty and writable on its first fault (pte_mkdirty on
// PAGE_SHARED in kvm_mips_handle_kseg0_tlb_fault), so a later store takes
// no exit, and there is no dirty log.
func TestSeriesMapsPagesWritableAtOnce(t *testing.T) {
	h := newHarness(t, Config{})
	h.mustDone(h.load(0x40005000))
	if p := h.e.kern.table.Lookup(0x40005000); p&gva.D == 0 || p&gva.Write == 0 {
		t.Fatalf("KSeg0 PTE %#x after a load, want writable and dirty", p)
	}
	exits := h.e.Stats.Slow
	h.mustDone(h.store(0x40005000, 1))
	if h.e.Stats.Slow != exits {
		t.Errorf("store to a mapped KSeg0 page exited: %v -> %v", exits, h.e.Stats.Slow)
	}
	if h.e.LogsDirty() || h.e.HarvestDirty() != nil || h.e.Stats.Flush[FlushDirty].Count != 0 {
		t.Error("the series' semantics keep a dirty log")
	}
}

// TestMappedFillSize: a guest-TLB fault fills only the faulting page in the
// series (kvm_mips_handle_mapped_seg_tlb_fault writes one GVA PTE), the
// pair with DirtyLog (Linux 4.11 also copies the buddy), and the pre-series
// scheme writes the pair into the host TLB.
func TestMappedFillSize(t *testing.T) {
	for _, c := range []struct {
		name      string
		cfg       Config
		wantBuddy bool
	}{{"series", Config{}, false}, {"dirtylog", Config{DirtyLog: true}, true}, {"pre-series", Config{Legacy: true}, true}} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.cfg)
			h.write(1, 0x00400000, 0x10000, 0x11000, cp0.EntryLoV|cp0.EntryLoD)
			h.mustDone(h.load(0x00400000))
			var buddy bool
			if c.cfg.Legacy {
				lo, hit := h.e.host.Lookup(0x00401000, h.e.hostASID)
				buddy = hit && lo&hosttlb.LoV != 0
			} else {
				buddy = h.e.kern.table.Lookup(0x00401000) != 0
			}
			if buddy != c.wantBuddy {
				t.Errorf("buddy mapped %v, want %v", buddy, c.wantBuddy)
			}
			mapped := h.e.Stats.Slow[SlowMapped]
			h.mustDone(h.load(0x00401000))
			if extra := h.e.Stats.Slow[SlowMapped] - mapped; (extra == 0) != c.wantBuddy {
				t.Errorf("the buddy's first access took %d fills", extra)
			}
		})
	}
}

// TestTLBModifiedSemantics: a host TLB Modified exception in a mapped
// segment is always the guest's in the series (kvm_mips_handle_tlbmod
// forwards it without looking at the guest TLB), while Linux 4.11 looks
// the guest entry up and, if it is dirty, remaps the page writable. A host
// entry left read-only after the guest made its entry dirty (the TLBW
// invalidation switched off) shows the difference.
func TestTLBModifiedSemantics(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want cp0.Outcome
	}{{"series", Config{}, cp0.Exception}, {"dirtylog", Config{DirtyLog: true}, cp0.Done}} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.cfg)
			h.write(1, 0x00400000, 0x10000, 0x11000, cp0.EntryLoV)
			h.mustDone(h.load(0x00400000))
			h.e.faults = faults{NoTLBWInvalidate: true}
			h.write(1, 0x00400000, 0x10000, 0x11000, cp0.EntryLoV|cp0.EntryLoD)
			r := h.store(0x00400000, 7)
			if r.Outcome != c.want || c.want == cp0.Exception && r.Code != cp0.ExcMod {
				t.Errorf("store: %v, want %v", r, c.want)
			}
		})
	}
}

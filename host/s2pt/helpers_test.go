package s2pt

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

const (
	kib = uint64(1) << 10
	mib = kib << 10
	gib = mib << 10
)

// tlbiRec is one recorded invalidation or memory event.
type event struct {
	kind  string // "write", "cas", "tlbi-ipa", "tlbi-range", "tlbi-vmid", "free"
	pa    mem.PA
	v     uint64
	ipa   uint64
	level int
	r     Range // tlbi-range
}

// recorder is a fake Invalidator (and memory watcher) that logs calls.
type recorder struct {
	mu      sync.Mutex
	log     []event
	watch   map[mem.PA]bool // descriptor addresses whose writes are logged
	nIPA    int
	nVMID   int
	nRanges int
	enable  bool
}

func (r *recorder) InvalidateIPA(ipa mem.IPA, level int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nIPA++
	if r.enable {
		r.log = append(r.log, event{kind: "tlbi-ipa", ipa: uint64(ipa), level: level})
	}
}

func (r *recorder) InvalidateRanges(rs []Range) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nRanges += len(rs)
	if r.enable {
		for _, x := range rs {
			r.log = append(r.log, event{kind: "tlbi-range", r: x})
		}
	}
}

func (r *recorder) InvalidateVMID() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nVMID++
	if r.enable {
		r.log = append(r.log, event{kind: "tlbi-vmid"})
	}
}

func (r *recorder) note(e event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.enable && (r.watch == nil || r.watch[e.pa] || e.kind == "free") {
		r.log = append(r.log, e)
	}
}

func (r *recorder) take() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.log
	r.log = nil
	return l
}

// recMem wraps FlatTables and logs descriptor writes to the recorder (the
// manager uses it through TableMemory, never the slice of words).
type recMem struct {
	TableMemory // a *FlatTables, used through the interface only (no direct words)
	rec         *recorder
}

func (m *recMem) Write64(pa mem.PA, v uint64) error {
	m.rec.note(event{kind: "write", pa: pa, v: v})
	return m.TableMemory.Write64(pa, v)
}

func (m *recMem) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	ok, mapped := m.TableMemory.CompareAndSwap64(pa, old, new)
	if ok {
		m.rec.note(event{kind: "cas", pa: pa, v: new})
	}
	return ok, mapped
}

func (m *recMem) FreeTable(pa mem.PA, size uint64) error {
	m.rec.note(event{kind: "free", pa: pa})
	return m.TableMemory.FreeTable(pa, size)
}

// rig is a VM over flat table memory with a hardware walker.
type rig struct {
	t    testing.TB
	vm   *VM
	tm   *FlatTables
	rec  *recorder
	c    *Cache
	regs vmsa.Regs
	w    vmsa.Walker
}

const tableBase = mem.PA(0x8000_0000)

func defaultCfg(ipa uint, g sysreg.Granule) Config {
	r := vmsa.DefaultRegs()
	return Config{IPABits: ipa, Granule: g, MMFR0: r.MMFR0, MMFR1: r.MMFR1}
}

func newRig(t testing.TB, cfg Config, tableMem uint64) *rig {
	return newRigOn(t, cfg, tableMem, false)
}

// newRigOn is newRig with the manager given the table memory's words
// (direct: the hot paths' way, the events of the descriptor writes not
// recorded) or only the TableMemory interface (watched by the recorder).
func newRigOn(t testing.TB, cfg Config, tableMem uint64, direct bool) *rig {
	t.Helper()
	tm, err := NewFlatTables(tableBase, tableMem)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	var m TableMemory = &recMem{tm, rec}
	if direct {
		m = tm
	}
	vm, err := New(cfg, m, rec)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, vm: vm, tm: tm, rec: rec, c: vm.NewCache()}
	r.regs = vmsa.DefaultRegs()
	r.regs.MMFR0, r.regs.MMFR1 = cfg.MMFR0, cfg.MMFR1
	vm.ApplyRegs(&r.regs)
	r.w.Mem = tm
	return r
}

func (r *rig) topup(n int) {
	r.t.Helper()
	if err := r.c.Topup(n); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) mapRange(ipa mem.IPA, pa mem.PA, size uint64, prot Prot, flags MapFlags) {
	r.t.Helper()
	r.topup(r.vm.MapPagesNeeded(ipa, pa, size, flags))
	if err := r.vm.Map(r.c, ipa, pa, size, prot, flags); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) unmap(ipa mem.IPA, size uint64) {
	r.t.Helper()
	if err := r.vm.Unmap(ipa, size); err != nil {
		r.t.Fatal(err)
	}
}

// leafSpan widens [s, e) to the whole leaves the hardware walker finds at
// its first and last granule: the range Unmap and WriteProtect act on,
// since they take a block the range covers only in part whole.
func (r *rig) leafSpan(s, e uint64) (uint64, uint64) {
	g := r.vm.layout.TableBytes
	if t := r.hw(s); !t.Fault.IsFault() {
		s &^= 1<<t.S2BlockBits - 1
	}
	if t := r.hw(e - g); !t.Fault.IsFault() {
		e = max(e, (e-g)&^(1<<t.S2BlockBits-1)+1<<t.S2BlockBits)
	}
	return s, e
}

// hw translates ipa with the hardware model (no permission check).
func (r *rig) hw(ipa uint64) vmsa.Translation {
	return r.w.TranslateS2(&r.regs, mem.IPA(ipa), vmsa.Access{Kind: vmsa.Read, EL: 1, NoPerm: true})
}

// checkCounts verifies every table's valid-entry count against memory and
// that accounting matches the tables recorded.
func (r *rig) checkCounts() {
	r.t.Helper()
	vm := r.vm
	vm.mu.Lock()
	defer vm.mu.Unlock()
	inUse, kept := 0, 0
	for pa, info := range vm.tables {
		if !info.inUse {
			continue // the reserve's
		}
		inUse++
		n := int32(0)
		for i := uint64(0); i < vm.layout.entries(); i++ {
			d, _ := vm.tm.Read64(pa + mem.PA(i*8))
			if d&1 != 0 {
				n++
			}
		}
		if n != info.live {
			r.t.Fatalf("table %#x level %d: count %d, memory holds %d valid entries", uint64(pa), info.level, info.live, n)
		}
		if info.kept {
			kept++ // listed: empty, or kept once and filled again by a map
			if !slices.Contains(vm.kept, info) {
				r.t.Fatalf("table %#x level %d marked kept, not in the VM's list", uint64(pa), info.level)
			}
		}
		if n == 0 && !info.kept {
			r.t.Fatalf("empty table %#x level %d left allocated (not kept)", uint64(pa), info.level)
		}
	}
	if kept != len(vm.kept) || kept > max(vm.keepCap, 0) || len(vm.evict) != 0 {
		r.t.Fatalf("%d tables kept, the VM lists %d (at most %d), %d displaced not detached", kept, len(vm.kept), vm.keepCap, len(vm.evict))
	}
	want := vm.layout.RootBytes + uint64(inUse)*vm.layout.TableBytes
	if vm.stats.TableBytes != want {
		r.t.Fatalf("TableBytes %d, want %d", vm.stats.TableBytes, want)
	}
}

// extent is one mapping in the reference model.
type extent struct {
	ipa, end, pa uint64
	prot         Prot
}

// refModel is the deliberately simple model: a list of extents.
type refModel struct{ ex []extent }

// carve splits extents at s and e so none straddles either.
func (m *refModel) carve(s, e uint64) {
	var out []extent
	for _, x := range m.ex {
		for _, cut := range []uint64{s, e} {
			if x.ipa < cut && cut < x.end {
				out = append(out, extent{x.ipa, cut, x.pa, x.prot})
				x.pa += cut - x.ipa
				x.ipa = cut
			}
		}
		out = append(out, x)
	}
	m.ex = out
}

func (m *refModel) remove(s, e uint64) {
	m.carve(s, e)
	out := m.ex[:0]
	for _, x := range m.ex {
		if x.end <= s || x.ipa >= e {
			out = append(out, x)
		}
	}
	m.ex = out
}

func (m *refModel) add(s, size, pa uint64, p Prot) {
	m.remove(s, s+size)
	m.ex = append(m.ex, extent{s, s + size, pa, p})
}

func (m *refModel) modify(s, e uint64, f func(Prot) Prot) {
	m.carve(s, e)
	for i := range m.ex {
		if m.ex[i].ipa >= s && m.ex[i].end <= e {
			m.ex[i].prot = f(m.ex[i].prot)
		}
	}
}

func (m *refModel) lookup(ipa uint64) (uint64, Prot, bool) {
	for _, x := range m.ex {
		if x.ipa <= ipa && ipa < x.end {
			return x.pa + ipa - x.ipa, x.prot, true
		}
	}
	return 0, 0, false
}

// compare checks the hardware walk of ipa against the reference model.
func (r *rig) compare(m *refModel, ipa uint64) error {
	t := r.hw(ipa)
	pa, prot, ok := m.lookup(ipa)
	if !ok {
		if t.Fault.Kind != vmsa.FaultTranslation {
			return fmt.Errorf("IPA %#x: unmapped in the model, hardware gives %v OA %#x", ipa, t.Fault, t.OA)
		}
		return nil
	}
	if t.Fault.IsFault() {
		return fmt.Errorf("IPA %#x: model maps to %#x, hardware faults: %v", ipa, pa, t.Fault)
	}
	if t.OA != mem.PA(pa) {
		return fmt.Errorf("IPA %#x: model OA %#x, hardware %#x", ipa, pa, t.OA)
	}
	p := t.Perms
	if p.R1 != (prot&ProtR != 0) || p.W1 != (prot&ProtW != 0) || p.X1 != (prot&ProtX != 0) || p.X0 != (prot&ProtX != 0) {
		return fmt.Errorf("IPA %#x: model prot %#x, hardware perms %+v", ipa, prot, p)
	}
	if dev := t.Attrs.Type == vmsa.Device; dev != (prot&ProtDevice != 0) {
		return fmt.Errorf("IPA %#x: model prot %#x, hardware memory type %v", ipa, prot, t.Attrs.Type)
	}
	return nil
}

// allTables lists the VM's table pages (root first), sorted.
func (r *rig) allTables() []mem.PA {
	var l []mem.PA
	for pa, t := range r.vm.tables {
		if t.inUse {
			l = append(l, pa)
		}
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return append([]mem.PA{r.vm.root.pa}, l...)
}

func randProt(rng *rand.Rand) Prot {
	p := Prot(rng.IntN(8))
	if rng.IntN(8) == 0 {
		p |= ProtDevice
	}
	return p
}

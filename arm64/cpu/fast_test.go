package cpu_test

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/mem"
)

// fastRead and fastWrite are how a caller uses the hit path: ReadHit, and
// Read when it was not done.
func fastRead(pe *cpu.PE, va mem.VA, size int) (uint64, cpu.Exception, bool) {
	if v, e, done := pe.ReadHit(va, size); done {
		if e != nil {
			return v, *e, true
		}
		return v, cpu.Exception{}, true
	}
	v, e := pe.Read(va, size, cpu.Insn{})
	return v, e, false
}

func fastWrite(pe *cpu.PE, va mem.VA, size int, v uint64) (cpu.Exception, bool) {
	if e, done := pe.WriteHit(va, size, v); done {
		if e != nil {
			return *e, true
		}
		return cpu.Exception{}, true
	}
	return pe.Write(va, size, v, cpu.Insn{}), false
}

// TestHitPathSameAsFullPath runs one random sequence of loads and stores
// (EL0 and EL1, PAN on and off, stage 1 on and off, aligned and unaligned,
// mapped, read-only, Device, unmapped, stage-2 holes and addresses outside
// memory) on two identical machines: one through Read/Write only, the
// other through ReadHit/WriteHit first. Every value, exception, PE and TLB
// counter must agree after every access, and the hit path must have
// completed most of the accesses.
func TestHitPathSameAsFullPath(t *testing.T) {
	ref, fast := newRig(t, true), newRig(t, true)
	vas := []mem.VA{vaData, vaRO, vaS2Hole, vaX1, vaPXN, vaDev, vaDevRO, vaS2Dev, vaExt, vaS2Ext, 0x7777_0000, 1 << 60}
	rng := rand.New(rand.NewPCG(3, 4))
	steps := twinSteps()
	hits := 0
	for i := 0; i < steps; i++ {
		el, pan := twinState(rng, ref, fast)
		va := vas[rng.IntN(len(vas))] + mem.VA(rng.IntN(64))*8
		if rng.IntN(2) == 0 {
			va = vaData + mem.VA(rng.IntN(64))*8
		}
		size := 1 << rng.IntN(4)
		if rng.IntN(10) == 0 {
			va += mem.VA(1 + rng.IntN(7)) // unaligned
		}
		var ve, vf uint64
		var ee, ef cpu.Exception
		var done bool
		if rng.IntN(2) == 0 {
			ve, ee = ref.pe.Read(va, size, cpu.Insn{})
			vf, ef, done = fastRead(fast.pe, va, size)
		} else {
			val := rng.Uint64()
			ee = ref.pe.Write(va, size, val, cpu.Insn{})
			ef, done = fastWrite(fast.pe, va, size, val)
		}
		if done {
			hits++
		}
		if ve != vf || ee != ef {
			t.Fatalf("step %d (EL%d PAN %v va %#x size %d): full path %#x %v, hit path %#x %v", i, el, pan, va, size, ve, ee, vf, ef)
		}
		twinAfter(t, i, ee.Taken(), ref, fast)
	}
	for off := uint64(0); off < 0x2000; off += 8 {
		a, _ := ref.ram.Read64(mem.PA(dataIPA + off))
		b, _ := fast.ram.Read64(mem.PA(dataIPA + off))
		if a != b {
			t.Fatalf("memory at %#x: %#x vs %#x", dataIPA+off, a, b)
		}
	}
	if hits < steps/4 {
		t.Errorf("the hit path completed %d of %d accesses", hits, steps)
	}
}

func TestHitPathAllocFree(t *testing.T) {
	m := newMachine(t, true)
	if e := m.pe.Write(vaData, 8, 1, cpu.Insn{}); e.Taken() {
		t.Fatal(e)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, _, done := m.pe.ReadHit(vaData, 8); !done {
			t.Fatal("not a hit")
		}
		if _, done := m.pe.WriteHit(vaData+8, 8, 2); !done {
			t.Fatal("not a hit")
		}
	}); n != 0 {
		t.Errorf("hit path allocates %v times", n)
	}
}

// BenchmarkReadHit: BenchmarkTLBHitLoad's load through ReadHit.
func BenchmarkReadHit(b *testing.B) {
	m := newMachine(b, true)
	pe := m.pe
	if _, e := pe.Read(vaData, 8, cpu.Insn{}); e.Taken() {
		b.Fatal(e)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, done := pe.ReadHit(vaData+8, 8); !done {
			b.Fatal("not a hit")
		}
	}
}

// BenchmarkWriteHit: an 8-byte store through WriteHit.
func BenchmarkWriteHit(b *testing.B) {
	m := newMachine(b, true)
	pe := m.pe
	if e := pe.Write(vaData, 8, 1, cpu.Insn{}); e.Taken() {
		b.Fatal(e)
	}
	b.ReportAllocs()
	v := uint64(0)
	for b.Loop() {
		if _, done := pe.WriteHit(vaData+8, 8, v); !done {
			b.Fatal("not a hit")
		}
		v++
	}
}

// The walk-length histogram counts each TLB-miss walk by its descriptor
// reads: (4+1)(4+1)-1 = 24 for a 4-level stage 1 over a 4-level stage 2
// with nothing cached, 4 for the stage 1 alone
// (shared/reference/performance-anchors.md). newMachine's stage 2 starts at
// level 1 (3 levels, 2M blocks): (4+1)(2+1)-1 = 14.
func TestWalkReadsHistogram(t *testing.T) {
	for _, c := range []struct {
		two  bool
		want uint64
	}{{false, 4}, {true, 14}} {
		m := newMachine(t, c.two)
		if _, e := m.pe.Read(vaData, 8, cpu.Insn{}); e.Taken() {
			t.Fatal(e)
		}
		if _, e := m.pe.Read(vaData+8, 8, cpu.Insn{}); e.Taken() { // a hit: no walk
			t.Fatal(e)
		}
		var h [cpu.WalkReadsBuckets]uint64
		h[c.want] = 1
		if m.pe.Stats.WalkReads != h {
			for i, n := range m.pe.Stats.WalkReads {
				if n != 0 {
					t.Errorf("two-stage=%v: %d walks of %d reads, want one of %d", c.two, n, i, c.want)
				}
			}
		}
	}
}

// frameChecked is a FrameCheckedMemory over mem.Flat: per-4K-frame
// reference counts, and every access to a frame whose count is not
// positive recorded, through Read and Write as through the hit path.
type frameChecked struct {
	*mem.Flat
	refs  []atomic.Int32
	stale []mem.PA
}

func (m *frameChecked) check(pa mem.PA) {
	if f := uint64(pa-ramBase) >> 12; f < uint64(len(m.refs)) && m.refs[f].Load() <= 0 {
		m.StaleAccess(pa, 1)
	}
}

func (m *frameChecked) Read(pa mem.PA, size int) (uint64, bool) {
	m.check(pa)
	return m.Flat.Read(pa, size)
}

func (m *frameChecked) Write(pa mem.PA, size int, v uint64) bool {
	m.check(pa)
	return m.Flat.Write(pa, size, v)
}

func (m *frameChecked) Words() (mem.PA, []uint64, bool) { return 0, nil, false }

func (m *frameChecked) CheckedWords() (mem.PA, []uint64, []atomic.Int32, uint, bool) {
	base, w, ok := m.Flat.Words()
	return base, w, m.refs, 12, ok
}

func (m *frameChecked) StaleAccess(pa mem.PA, _ uint64) { m.stale = append(m.stale, pa) }

// TestHitPathChecksFrames: with a FrameCheckedMemory the hit path still
// completes loads and stores from the words, and each one that reaches a
// frame whose reference count dropped to zero is reported (while the TLB
// still holds the translation: the hit path must not skip the check a
// call through Read would make), with the value the memory holds.
func TestHitPathChecksFrames(t *testing.T) {
	m := newMachine(t, true)
	fc := &frameChecked{Flat: m.ram, refs: make([]atomic.Int32, (128<<20)>>12)}
	for i := range fc.refs {
		fc.refs[i].Store(1)
	}
	m.pe.Mem = fc
	m.pe.RegsChanged()
	if e := m.pe.Write(vaData, 8, 0x1234, cpu.Insn{}); e.Taken() {
		t.Fatal(e)
	}
	if v, e, done := m.pe.ReadHit(vaData, 8); !done || e != nil || v != 0x1234 {
		t.Fatalf("live frame: ReadHit %#x %v %v", v, e, done)
	}
	if len(fc.stale) != 0 {
		t.Fatalf("live frame reported stale: %#x", fc.stale)
	}
	fc.refs[(dataIPA-ramBase)>>12].Store(0) // freed under the cached translation
	v, e, done := m.pe.ReadHit(vaData+4, 4)
	if !done || e != nil || v != 0 {
		t.Fatalf("freed frame: ReadHit %#x %v %v", v, e, done)
	}
	if e, done := m.pe.WriteHit(vaData+2, 2, 0xbeef); !done || e != nil {
		t.Fatalf("freed frame: WriteHit %v %v", e, done)
	}
	if want := []mem.PA{dataIPA + 4, dataIPA + 2}; len(fc.stale) != 2 || fc.stale[0] != want[0] || fc.stale[1] != want[1] {
		t.Errorf("stale accesses %#x, want %#x", fc.stale, want)
	}
	if n := testing.AllocsPerRun(100, func() {
		fc.refs[(dataIPA-ramBase)>>12].Store(1)
		if _, _, done := m.pe.ReadHit(vaData, 8); !done {
			t.Fatal("not a hit")
		}
	}); n != 0 {
		t.Errorf("checked hit path allocates %v times", n)
	}
}

// TestFetchHitSameAsFullPath runs one random sequence of instruction
// fetches (EL0 and EL1, PAN on and off, stage 1 on and off; executable,
// UXN, PXN, Device, read-only and unmapped pages, stage-2 XN and holes,
// misaligned PCs, addresses outside memory and outside the VA range) on
// two identical machines: one through FetchPA's full path only, the
// other through its hit path first. Every instruction word, PA,
// exception, PE and TLB counter must agree after every fetch, and the hit
// path must have completed a good share of them.
func TestFetchHitSameAsFullPath(t *testing.T) {
	ref, fast := newRig(t, true), newRig(t, true)
	vas := []mem.VA{vaX1, vaPXN, vaX1Dev, vaDev, vaData, vaRO, vaS2Hole, vaS2XN, vaExt, vaS2Ext, 0x7777_0000, 1<<56 | vaX1}
	rng := rand.New(rand.NewPCG(5, 6))
	steps := twinSteps()
	hits := 0
	for i := 0; i < steps; i++ {
		el, pan := twinState(rng, ref, fast)
		va := vas[rng.IntN(len(vas))] + mem.VA(rng.IntN(64))*4
		if rng.IntN(2) == 0 {
			va = vaX1 + mem.VA(rng.IntN(64))*4
		}
		if rng.IntN(10) == 0 {
			va += mem.VA(1 + rng.IntN(3)) // misaligned PC
		}
		we, pe, ee := ref.pe.FetchFull(va)
		wf, pf, ef, done := fast.pe.FetchHitPA(va)
		if done {
			hits++
		} else {
			wf, pf, ef = fast.pe.FetchFull(va)
		}
		if we != wf || pe != pf || ee != ef {
			t.Fatalf("step %d (EL%d PAN %v va %#x): full path %#x at %#x %v, hit path %#x at %#x %v", i, el, pan, va, we, pe, ee, wf, pf, ef)
		}
		twinAfter(t, i, ee.Taken(), ref, fast)
	}
	if hits < steps/5 {
		t.Errorf("the hit path completed %d of %d fetches", hits, steps)
	}
	t.Logf("%d of %d fetches on the hit path", hits, steps)
}

// twinSteps is the length of the twin-machine comparisons.
func twinSteps() int {
	if testing.Short() {
		return 8000
	}
	return 40000
}

// twinState draws the register state of a twin comparison's next step,
// the same on both machines: stage 1 toggled now and then, the EL and
// PSTATE.PAN.
func twinState(rng *rand.Rand, ref, fast *machine) (el uint8, pan bool) {
	if rng.IntN(500) == 0 { // stage 1 off or on again
		for _, m := range []*machine{ref, fast} {
			m.pe.Regs.SCTLR_EL1 ^= 1
			m.pe.RegsChanged()
		}
	}
	el, pan = uint8(rng.IntN(2)), rng.IntN(4) == 0
	for _, m := range []*machine{ref, fast} {
		m.pe.EL, m.pe.PAN = el, pan
		m.pe.RegsChanged()
	}
	return el, pan
}

// twinAfter checks that step i left the twins' PE and TLB counters and
// LastPA equal and, when the step took an exception, returns from it on
// both (ERET).
func twinAfter(t *testing.T, i int, taken bool, ref, fast *machine) {
	t.Helper()
	if ref.pe.Stats != fast.pe.Stats || ref.pe.TLB.Stats != fast.pe.TLB.Stats || ref.pe.LastPA != fast.pe.LastPA {
		t.Fatalf("step %d: counters differ:\n full %+v %+v\n hit  %+v %+v", i, ref.pe.Stats, ref.pe.TLB.Stats, fast.pe.Stats, fast.pe.TLB.Stats)
	}
	if taken {
		for _, m := range []*machine{ref, fast} {
			if x := m.pe.ERET(); x.Taken() {
				t.Fatal(x)
			}
		}
	}
}

package nested

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// refMap is a deliberately simple model of the reverse map: for each
// shadow, which L1 page each L2 page derives from, page by page, and
// which shadows are untracked.
type refMap struct {
	pages     []map[NestedIPA]mem.IPA
	untracked []bool
}

const refPage = 4096

func newRefMap(shadows int) *refMap {
	m := &refMap{pages: make([]map[NestedIPA]mem.IPA, shadows), untracked: make([]bool, shadows)}
	for i := range m.pages {
		m.pages[i] = map[NestedIPA]mem.IPA{}
	}
	return m
}

func (m *refMap) trim(sh int, l2 NestedIPA, size uint64) {
	for a := uint64(0); a < size; a += refPage {
		delete(m.pages[sh], l2+NestedIPA(a))
	}
}

func (m *refMap) insert(sh int, l2 NestedIPA, l1 mem.IPA, size uint64) {
	if m.untracked[sh] {
		return
	}
	m.trim(sh, l2, size)
	for a := uint64(0); a < size; a += refPage {
		m.pages[sh][l2+NestedIPA(a)] = l1 + mem.IPA(a)
	}
}

func (m *refMap) clear(sh int) { m.pages[sh], m.untracked[sh] = map[NestedIPA]mem.IPA{}, false }

type derivation struct {
	sh int
	l2 NestedIPA
	l1 mem.IPA
}

// query lists, page by page, what derives from L1 [lo, hi).
func (m *refMap) query(lo, hi mem.IPA) []derivation {
	var out []derivation
	for sh, p := range m.pages {
		for l2, l1 := range p {
			if l1 >= lo && l1 < hi {
				out = append(out, derivation{sh, l2, l1})
			}
		}
	}
	sortDerivations(out)
	return out
}

func sortDerivations(d []derivation) {
	sort.Slice(d, func(a, b int) bool {
		if d[a].sh != d[b].sh {
			return d[a].sh < d[b].sh
		}
		return d[a].l2 < d[b].l2
	})
}

func rmapQuery(r *rmap, lo, hi mem.IPA) []derivation {
	var out []derivation
	r.forL1(lo, hi, func(n *rnode, l1 mem.IPA, l2 NestedIPA, size uint64) {
		for a := uint64(0); a < size; a += refPage {
			out = append(out, derivation{int(n.sh), l2 + NestedIPA(a), l1 + mem.IPA(a)})
		}
	})
	sortDerivations(out)
	return out
}

// rmapOp is one step of the differential test, decoded from 16 bytes.
type rmapOp struct {
	kind      uint8 // 0-5 insert, 6 trim, 7 clear, 8-9 query
	sh        int
	l2page    uint64
	l1page    uint64
	sizeClass uint8 // 4K, 8K .. 64K runs, 2 MiB
}

func decodeRmapOp(b []byte, shadows int) rmapOp {
	x := binary.LittleEndian.Uint64(b)
	y := binary.LittleEndian.Uint64(b[8:])
	return rmapOp{kind: uint8(x % 10), sh: int(x>>8) % shadows, l2page: (x >> 16) % 2048, l1page: (y >> 8) % 2048, sizeClass: uint8(y % 6)}
}

// runRmapDiff applies ops to the reverse map and the model and compares
// them: every query's answer, the map's structure, and in the end the
// whole content.
func runRmapDiff(t *testing.T, data []byte, shadows, capacity int) {
	r := &rmap{}
	r.init(true, shadows, capacity)
	m := newRefMap(shadows)
	sync := func() {
		// An overflow untracks shadows in the map: the model follows.
		for sh := range r.sh {
			if r.sh[sh].untracked && !m.untracked[sh] {
				m.pages[sh], m.untracked[sh] = map[NestedIPA]mem.IPA{}, true
			}
		}
	}
	for len(data) >= 16 {
		op := decodeRmapOp(data, shadows)
		data = data[16:]
		size := uint64(refPage) << op.sizeClass
		if op.sizeClass == 5 {
			size = 2 << 20
		}
		l2 := NestedIPA(op.l2page*refPage) &^ NestedIPA(size-1)
		l1 := mem.IPA(op.l1page*refPage) &^ mem.IPA(size-1)
		switch {
		case op.kind <= 5:
			r.insert(op.sh, l2, l1, size, 1, s2pt.ProtR)
			m.insert(op.sh, l2, l1, size)
		case op.kind == 6:
			if r.reserve(op.sh, 1) {
				r.trim(op.sh, l2, l2+NestedIPA(size))
			}
			m.trim(op.sh, l2, size)
		case op.kind == 7:
			r.clear(op.sh)
			m.clear(op.sh)
		default:
			sync()
			lo, hi := l1, l1+mem.IPA(size)
			if got, want := rmapQuery(r, lo, hi), m.query(lo, hi); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("query L1 [%#x, %#x): map %v, model %v", uint64(lo), uint64(hi), got, want)
			}
		}
		sync()
		if errs := r.check(); errs != nil {
			t.Fatalf("after %+v: %v", op, errs)
		}
	}
	if got, want := rmapQuery(r, 0, 1<<40), m.query(0, 1<<40); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("final content: map %d pages, model %d", len(got), len(want))
	}
}

// TestReverseMapAgainstModel: random inserts (page runs and 2 MiB blocks,
// overlapping, aliasing L1 pages in several shadows), trims, clears and
// queries give the same derivations as the page-by-page model, with a
// roomy pool and with one so small that shadows get untracked.
func TestReverseMapAgainstModel(t *testing.T) {
	n := 5000
	if testing.Short() {
		n = 1000
	}
	for _, c := range []struct{ shadows, capacity int }{{4, 1 << 14}, {4, 16}, {3, 40}} {
		t.Run(fmt.Sprintf("%d shadows, %d extents", c.shadows, c.capacity), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(c.capacity), 1))
			data := make([]byte, 16*n)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			runRmapDiff(t, data, c.shadows, c.capacity)
		})
	}
}

// FuzzReverseMap: the reverse map against the model for any sequence of
// operations (the addresses come from guest-controlled mappings).
func FuzzReverseMap(f *testing.F) {
	f.Add(make([]byte, 64))
	f.Add([]byte("\x00\x00\x01\x00\x00\x00\x00\x00\x05\x01\x02\x00\x00\x00\x00\x00" +
		"\x06\x00\x01\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" +
		"\x08\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		runRmapDiff(t, data, 3, 16)
	})
}

// TestReverseMapMerges: pages installed one by one over a contiguous L1
// range become one extent per 2 MiB L1 chunk; a page punched out of the
// middle splits it.
func TestReverseMapMerges(t *testing.T) {
	r := &rmap{}
	r.init(true, 1, 64)
	for p := uint64(0); p < 1024; p++ { // 4 MiB, L2 0x8000_0000 -> L1 0x4010_0000
		r.insert(0, 0x8000_0000+NestedIPA(p*4096), 0x4010_0000+mem.IPA(p*4096), 4096, 3, s2pt.ProtR)
	}
	// L1 0x4010_0000-0x4050_0000 touches chunks 0x402, 0x403, 0x404 (1 MiB, 2 MiB, 1 MiB).
	if r.used != 3 {
		t.Errorf("%d extents for 4 MiB over three L1 chunks, want 3", r.used)
	}
	if !r.reserve(0, 1) {
		t.Fatal("reserve")
	}
	r.trim(0, 0x8020_0000, 0x8020_1000)
	if r.used != 4 {
		t.Errorf("%d extents after a hole, want 4", r.used)
	}
	if errs := r.check(); errs != nil {
		t.Error(errs)
	}
}

// TestReverseMapInsertDoesNotAllocate: recording a shadow entry, the
// shadow-fault path's part, allocates nothing.
func TestReverseMapInsertDoesNotAllocate(t *testing.T) {
	r := &rmap{}
	r.init(true, 2, 1<<12)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		p := uint64(i%512) * 2 // every other page: no merging
		r.insert(i%2, 0x8000_0000+NestedIPA(p*4096), 0x4000_0000+mem.IPA(p*4096), 4096, 3, s2pt.ProtR)
		i++
	})
	if allocs != 0 {
		t.Errorf("insert allocates %v times", allocs)
	}
}

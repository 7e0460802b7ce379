package hostmm

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nestmmu/nestmmu/host/hostmem"
	"github.com/nestmmu/nestmmu/mem"
)

func newKernel(t testing.TB, size, page uint64) *Kernel {
	t.Helper()
	a, err := hostmem.New(hostmem.Config{Size: size, PageSize: page})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	k, err := NewKernel(a, Config{})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// call is one recorded notifier call.
type call struct {
	Op         string // start, end, change, clear-young, clear-flush-young, test-young, release
	Start, End HVA
	Event      Event
	PA         mem.PA
}

func (c call) String() string {
	return fmt.Sprintf("%s %v [%#x,%#x) pa=%#x", c.Op, c.Event, uint64(c.Start), uint64(c.End), uint64(c.PA))
}

// recorder is a Notifier that records every call and answers young
// queries with young.
type recorder struct {
	mu    sync.Mutex
	calls []call
	young bool
}

func (r *recorder) add(c call) {
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
}
func (r *recorder) take() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}
func (r *recorder) InvalidateRangeStart(x Range) {
	r.add(call{Op: "start", Start: x.Start, End: x.End, Event: x.Event})
}
func (r *recorder) InvalidateRangeEnd(x Range) {
	r.add(call{Op: "end", Start: x.Start, End: x.End, Event: x.Event})
}
func (r *recorder) ChangePTE(hva HVA, pa mem.PA) { r.add(call{Op: "change", Start: hva, PA: pa}) }
func (r *recorder) ClearYoung(s, e HVA) bool {
	r.add(call{Op: "clear-young", Start: s, End: e})
	return r.young
}
func (r *recorder) ClearFlushYoung(s, e HVA) bool {
	r.add(call{Op: "clear-flush-young", Start: s, End: e})
	return r.young
}
func (r *recorder) TestYoung(s, e HVA) bool {
	r.add(call{Op: "test-young", Start: s, End: e})
	return r.young
}
func (r *recorder) Release() { r.add(call{Op: "release"}) }

// protocol is a Notifier that checks the ordering guarantees of the
// notifier protocol and counts violations: every End matches an earlier
// Start of the same range, ChangePTE falls inside a started range, and
// nothing follows Release.
type protocol struct {
	mu       sync.Mutex
	open     map[Range]int
	released bool
	bad      []string
}

func newProtocol() *protocol { return &protocol{open: map[Range]int{}} }

func (p *protocol) fail(f string, a ...any) {
	if len(p.bad) < 10 {
		p.bad = append(p.bad, fmt.Sprintf(f, a...))
	}
}
func (p *protocol) InvalidateRangeStart(r Range) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		p.fail("start %v after release", r)
	}
	if r.Start >= r.End {
		p.fail("empty range %v", r)
	}
	p.open[r]++
}
func (p *protocol) InvalidateRangeEnd(r Range) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[r] == 0 {
		p.fail("end %v without start", r)
		return
	}
	if p.open[r]--; p.open[r] == 0 {
		delete(p.open, r)
	}
}
func (p *protocol) ChangePTE(hva HVA, _ mem.PA) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for r := range p.open {
		if hva >= r.Start && hva < r.End {
			return
		}
	}
	p.fail("change_pte %#x outside any started range", uint64(hva))
}
func (p *protocol) ClearYoung(s, e HVA) bool      { return false }
func (p *protocol) ClearFlushYoung(s, e HVA) bool { return false }
func (p *protocol) TestYoung(s, e HVA) bool       { return false }
func (p *protocol) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		p.fail("second release")
	}
	p.released = true
}
func (p *protocol) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.bad {
		t.Error("notifier protocol:", b)
	}
	if len(p.open) != 0 {
		t.Errorf("notifier protocol: ranges still open: %v", p.open)
	}
}

// softMMU is a deliberately simple secondary MMU: a map from page HVA to
// frame, the way a stage-2 manager would use this package. Accesses run
// with the MMU lock held shared (like a TLB hit: an invalidation's
// flush waits for them); faults use Invalidation.Fault; invalidations drop
// entries with the lock held exclusively.
type softMMU struct {
	as       *AddressSpace
	page     uint64
	mu       sync.RWMutex
	inv      Invalidation
	tlb      map[HVA]*smEntry
	stale    atomic.Int64 // installs of a frame the host no longer maps
	released atomic.Bool
	faults   atomic.Int64
}

type smEntry struct {
	pa       mem.PA
	writable bool
	young    atomic.Bool
}

func newSoftMMU(t testing.TB, as *AddressSpace) *softMMU {
	m := &softMMU{as: as, page: as.k.pageSize, tlb: map[HVA]*smEntry{}}
	if _, err := as.RegisterNotifier(m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *softMMU) drop(s, e HVA) {
	if uint64(e-s)/m.page <= uint64(len(m.tlb)) {
		for a := s; a < e; a += HVA(m.page) {
			delete(m.tlb, a)
		}
		return
	}
	for a := range m.tlb {
		if a >= s && a < e {
			delete(m.tlb, a)
		}
	}
}

func (m *softMMU) InvalidateRangeStart(r Range) {
	m.mu.Lock()
	m.inv.Begin(r.Start, r.End)
	m.drop(r.Start, r.End)
	m.mu.Unlock()
}
func (m *softMMU) InvalidateRangeEnd(r Range) {
	m.mu.Lock()
	m.inv.End(r.Start, r.End)
	m.mu.Unlock()
}
func (m *softMMU) ChangePTE(hva HVA, pa mem.PA) {
	m.mu.Lock()
	m.tlb[hva] = &smEntry{pa: pa, writable: false}
	m.mu.Unlock()
}
func (m *softMMU) young(s, e HVA, clear bool) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	y := false
	for a := s; a < e; a += HVA(m.page) {
		if en := m.tlb[a]; en != nil {
			if clear {
				y = en.young.Swap(false) || y
			} else {
				y = en.young.Load() || y
			}
		}
	}
	return y
}
func (m *softMMU) ClearYoung(s, e HVA) bool      { return m.young(s, e, true) }
func (m *softMMU) ClearFlushYoung(s, e HVA) bool { return m.young(s, e, true) }
func (m *softMMU) TestYoung(s, e HVA) bool       { return m.young(s, e, false) }
func (m *softMMU) Release() {
	m.mu.Lock()
	m.tlb = map[HVA]*smEntry{}
	m.released.Store(true)
	m.mu.Unlock()
}

// access performs a guest access through the secondary MMU.
func (m *softMMU) access(hva HVA, write bool, size int, val uint64) (uint64, error) {
	page := hva &^ HVA(m.page-1)
	off := mem.PA(hva - page)
	ar := m.as.k.arena
	for {
		m.mu.RLock()
		if en := m.tlb[page]; en != nil && (!write || en.writable) {
			en.young.Store(true)
			var v uint64
			if write {
				ar.Write(en.pa+off, size, val)
			} else {
				v, _ = ar.Read(en.pa+off, size)
			}
			m.mu.RUnlock()
			return v, nil
		}
		m.mu.RUnlock()
		if err := m.fault(hva, write); err != nil {
			return 0, err
		}
	}
}

func (m *softMMU) fault(hva HVA, write bool) error {
	m.faults.Add(1)
	page := hva &^ HVA(m.page-1)
	var got Mapping
	resolve := func() error {
		var err error
		got, err = m.as.FaultIn(hva, write)
		return err
	}
	install := func() error {
		if cur, ok := m.as.Translate(hva); !ok || cur.PA != got.PA {
			m.stale.Add(1)
		}
		if !m.released.Load() {
			m.tlb[page] = &smEntry{pa: got.PA &^ mem.PA(m.page-1), writable: got.Writable}
		}
		return nil
	}
	return m.inv.Fault(&m.mu, hva, resolve, install)
}

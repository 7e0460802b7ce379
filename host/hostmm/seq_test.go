package hostmm

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestInvalidationRetry(t *testing.T) {
	const hva HVA = 0x10_3000
	type step struct {
		begin      bool
		start, end HVA
	}
	for _, c := range []struct {
		name  string
		steps []step // applied after the fault read the sequence
		want  bool
	}{
		{"no invalidation", nil, false},
		{"invalidation ended meanwhile", []step{{true, 0x10_0000, 0x20_0000}, {false, 0x10_0000, 0x20_0000}}, true},
		{"unrelated invalidation ended meanwhile: seq moved", []step{{true, 0x50_0000, 0x60_0000}, {false, 0x50_0000, 0x60_0000}}, true},
		{"in progress covering hva", []step{{true, 0x10_3000, 0x10_4000}}, true},
		{"in progress elsewhere", []step{{true, 0x10_4000, 0x10_5000}}, false},
		{"range end is exclusive", []step{{true, 0x10_2000, 0x10_3000}}, false},
		{"union of two in progress covers hva", []step{{true, 0x10_0000, 0x10_1000}, {true, 0x10_8000, 0x10_9000}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var v Invalidation
			seq := v.Seq()
			for _, s := range c.steps {
				if s.begin {
					v.Begin(s.start, s.end)
				} else if err := v.End(s.start, s.end); err != nil {
					t.Fatal(err)
				}
			}
			if got := v.Retry(seq, hva); got != c.want {
				t.Errorf("Retry = %v, want %v", got, c.want)
			}
		})
	}
	var v Invalidation
	if err := v.End(0, 1); err == nil || v.Seq() != 0 || v.InProgress() != 0 {
		t.Errorf("End without Begin: err %v seq %d", err, v.Seq())
	}
}

// TestStaleFrameCaught: a fault that resolved the page before a migration
// finished must retry, and the frame it resolved is indeed stale.
func TestStaleFrameCaught(t *testing.T) {
	k := newKernel(t, 8<<20, 4096)
	as := k.NewAddressSpace()
	h, _ := as.Mmap(1<<20, 0)
	m := newSoftMMU(t, as)
	as.Write(h, 8, 1)
	seq := m.inv.Seq()
	got, err := as.FaultIn(h, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := as.Migrate(h); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	retry := m.inv.Retry(seq, h)
	m.mu.Unlock()
	cur, _ := as.Translate(h)
	if !retry {
		t.Error("fault across a migration passed Retry")
	}
	if cur.PA == got.PA {
		t.Error("negative control: the resolved frame is not stale")
	}
	if k.arena.Ref(got.PA) != 0 {
		t.Error("the stale frame is still allocated")
	}
}

// blocker is a notifier whose InvalidateRangeStart waits for a signal.
type blocker struct {
	started chan struct{}
	goOn    chan struct{}
	protocol
}

func (b *blocker) InvalidateRangeStart(r Range) {
	b.started <- struct{}{}
	<-b.goOn
}
func (b *blocker) InvalidateRangeEnd(r Range) {}

// TestFaultDuringInvalidation: while a migration is between Start and its
// entry change, a fault resolves the old frame; the in-progress count makes
// it retry, and the retried fault installs the new frame.
func TestFaultDuringInvalidation(t *testing.T) {
	k := newKernel(t, 8<<20, 4096)
	as := k.NewAddressSpace()
	h, _ := as.Mmap(1<<20, 0)
	m := newSoftMMU(t, as)
	bl := &blocker{started: make(chan struct{}), goOn: make(chan struct{})}
	as.RegisterNotifier(bl)
	as.Write(h, 8, 1)
	old, _ := as.Translate(h)
	done := make(chan error)
	go func() { done <- as.Migrate(h) }()
	<-bl.started // softMMU has begun; the host entry is unchanged
	seq := m.inv.Seq()
	got, err := as.FaultIn(h, false) // lock-free hit: the old frame
	if err != nil || got.PA != old.PA {
		t.Fatalf("FaultIn during invalidation: %+v %v", got, err)
	}
	m.mu.Lock()
	if !m.inv.Retry(seq, h) {
		t.Error("Retry false while an invalidation covering hva is in progress")
	}
	m.mu.Unlock()
	close(bl.goOn)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := m.access(h, false, 8, 0); err != nil {
		t.Fatal(err)
	}
	now, _ := as.Translate(h)
	m.mu.RLock()
	en := m.tlb[h]
	m.mu.RUnlock()
	if en == nil || en.pa != now.PA || now.PA == old.PA || m.stale.Load() != 0 {
		t.Errorf("installed %+v, host maps %#x (old %#x), stale %d", en, uint64(now.PA), uint64(old.PA), m.stale.Load())
	}
}

// TestFaultInvalidateRace runs secondary-MMU faults against migrations,
// swap-outs, KSM merges and splits of the same few pages. Every install
// is checked under the MMU lock against the host entry: no stale frame may
// ever be installed, and every guest value must read back.
func TestFaultInvalidateRace(t *testing.T) {
	k := newKernel(t, 64<<20, 4096)
	as := k.NewAddressSpace()
	h, _ := as.Mmap(4<<20, MapHuge|MapMergeable)
	m := newSoftMMU(t, as)
	pc := newProtocol()
	as.RegisterNotifier(pc)
	pages := []HVA{h, h + 4096, h + HugeSize, h + HugeSize + 8192}
	iters, minEvents := 100000, int64(20000)
	if raceEnabled {
		iters, minEvents = 10000, 1000
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var events atomic.Int64
	hostDone := make(chan struct{})
	go func() { // the host moving pages
		defer close(hostDone)
		for i := 0; !stop.Load(); i++ {
			p := pages[i%len(pages)]
			switch i % 5 {
			case 0:
				as.Migrate(p)
			case 1:
				as.SwapOut(p)
			case 2:
				k.KSMScan(16)
			case 3:
				if i%2 == 0 {
					as.SplitHuge(p)
				} else {
					as.Collapse(p)
				}
			case 4:
				as.Age(p, true)
			}
			events.Add(1)
			runtime.Gosched() // let the guests touch the page again
		}
	}()
	const g = 3
	errs := make(chan string, g)
	for w := 0; w < g; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			last := make([]uint64, len(pages))
			for i := 0; i < iters || events.Load() < minEvents; i++ {
				if i%8 == 0 {
					runtime.Gosched() // give the host goroutine its share
				}
				j := i % len(pages)
				a := pages[j] + HVA(8*w)
				if i%3 == 2 {
					v, err := m.access(a, false, 8, 0)
					if err != nil || v != last[j] {
						errs <- "read mismatch"
						return
					}
					continue
				}
				// The same value for every page in a round, so the
				// pages are often identical and KSM merges them.
				last[j] = uint64(w)<<32 | uint64(i/len(pages)/3)
				if _, err := m.access(a, true, 8, last[j]); err != nil {
					errs <- err.Error()
					return
				}
			}
		}(w)
	}
	wg.Wait()
	stop.Store(true)
	<-hostDone
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if s := m.stale.Load(); s != 0 {
		t.Errorf("%d stale frames installed", s)
	}
	pc.check(t)
	if err := k.Check(); err != nil {
		t.Error(err)
	}
	if st := k.Stats(); st.SwapOuts == 0 || st.Migrations == 0 || st.KSMMerged == 0 || st.COWBreaks == 0 {
		t.Errorf("the race did not exercise every event: %+v", st)
	}
	t.Logf("events %d, secondary faults %d, stats %+v", events.Load(), m.faults.Load(), k.Stats())
}

package te

import (
	"time"

	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/gva"
)

// The invalidation rules of the series, one function each:
//
//   - asidChange: a guest ASID change (MTC0 EntryHi, TLBR) flushes the
//     kernel table's useg and KSeg2/3 at once and takes a new host ASID for
//     it ("Invalidate GVA PTs on ASID changes").
//   - flushUser: the user table is flushed lazily, on entry to guest user
//     mode with a guest ASID other than the one it was filled for
//     (reenter, kvm_trap_emul_vcpu_reenter).
//   - invalidateEntry: before TLBWI/TLBWR overwrite a valid entry below
//     2 GiB, the PTEs it mapped are cleared in the kernel table (and the
//     user table for useg) and the matching host TLB entries invalidated
//     ("Invalidate stale GVA PTEs on TLBW").
//   - flushAll: a full flush clears both tables including KSeg0.
//
// Every flush frees the PTE pages its range covers fully.

// epoch is the origin of now.
var epoch = time.Now()

// now is the monotonic clock that times the flushes: one clock read,
// where time.Now reads the wall clock too.
func now() time.Duration { return time.Since(epoch) }

// mtc0 emulates MTC0.
func (e *Engine) mtc0(reg, sel uint8, v uint32) {
	if reg == cp0.RegEntryHi && sel == 0 && uint8(v) != e.cp.ASID() {
		e.asidChange()
	}
	e.cp.MTC0(reg, sel, v)
}

// tlbr emulates TLBR, which can change EntryHi.ASID.
func (e *Engine) tlbr() {
	hi := e.cp.TLB.E[e.cp.Get(cp0.RegIndex, 0)&cp0.IndexMask].Hi
	if uint8(hi) != e.cp.ASID() {
		e.asidChange()
	}
	e.cp.TLBR()
}

// tlbw emulates TLBWI/TLBWR at index i.
func (e *Engine) tlbw(i int, random bool) {
	old := e.cp.TLB.E[i]
	e.invalidateEntry(&old)
	e.cp.TLBWrite(i, random)
}

// flushRange clears [start, end) of t, freeing covered PTE pages. The
// visitor lives in the engine so that the walk does not allocate.
func (e *Engine) flushRange(t *gva.Table, start, end uint64, fs *FlushStats) {
	e.flusher = gva.Flusher{}
	t.Walk(start, end, &e.flusher)
	fs.PTEsCleared += uint64(e.flusher.Cleared)
	fs.PagesFreed += uint64(e.flusher.Freed)
}

func (e *Engine) asidChange() {
	t0 := now()
	fs := &e.Stats.Flush[FlushASID]
	fs.Count++
	if !e.cfg.Legacy && !e.faults.NoKernelFlushOnASIDChange {
		e.flushRange(e.kern.table, 0, cp0.GuestUSegEnd, fs)
		e.flushRange(e.kern.table, cp0.GuestKSeg23, cp0.HostKSeg0, fs)
	}
	if !e.faults.NoNewKernelASIDOnChange {
		e.newContext(&e.kern)
	}
	fs.Time += now() - t0
}

func (e *Engine) flushUser() {
	t0 := now()
	fs := &e.Stats.Flush[FlushUser]
	fs.Count++
	if !e.cfg.Legacy {
		e.flushRange(e.user.table, 0, cp0.GuestUSegEnd, fs)
	}
	e.user.ctx = 0
	fs.Time += now() - t0
}

func (e *Engine) invalidateEntry(old *cp0.Entry) {
	// Entries that were not valid never produced a mapping; entries at or
	// above 2 GiB are host kernel addresses, never in the GVA tables.
	if !old.Valid() || old.Hi > 0x7fffffff || e.faults.NoTLBWInvalidate {
		return
	}
	t0 := now()
	fs := &e.Stats.Flush[FlushTLBW]
	fs.Count++
	start, end := old.Span()
	end = min(end, cp0.HostKSeg0)
	user := start < cp0.GuestUSegEnd
	if !e.cfg.Legacy {
		e.flushRange(e.kern.table, start, end, fs)
		if user {
			e.flushRange(e.user.table, start, min(end, cp0.GuestUSegEnd), fs)
		}
	}
	if !e.faults.NoTLBWHostInvalidate {
		k, u := e.HostASIDs()
		if k != 0 {
			fs.HostEntries += uint64(e.invalidateHost(start, end, k))
		}
		if user && u != 0 {
			fs.HostEntries += uint64(e.invalidateHost(start, min(end, cp0.GuestUSegEnd), u))
		}
	}
	fs.Time += now() - t0
}

// invalidateHost removes the host TLB entries of asid in [start, end):
// probe pair by pair for small ranges, scan the TLB for large ones.
func (e *Engine) invalidateHost(start, end uint64, asid uint8) int {
	pair := uint64(2 * e.pageSize)
	if (end-start)/pair > uint64(e.host.Len()) {
		return e.host.InvalidateRange(start, end, asid)
	}
	n := 0
	for va := start &^ (pair - 1); va < end; va += pair {
		if e.host.InvalidateVA(uint32(va), asid) {
			n++
		}
	}
	return n
}

// flushAll is a full flush request: both tables, KSeg0 included, and new
// host ASIDs for both.
func (e *Engine) flushAll() {
	t0 := now()
	fs := &e.Stats.Flush[FlushAll]
	fs.Count++
	if !e.cfg.Legacy {
		if e.faults.NoFullFlushKSeg0 {
			e.flushRange(e.kern.table, 0, cp0.GuestKSeg0, fs)
			e.flushRange(e.kern.table, cp0.GuestKSeg23, cp0.HostKSeg0, fs)
		} else {
			e.flushRange(e.kern.table, 0, cp0.HostKSeg0, fs)
		}
		e.flushRange(e.user.table, 0, cp0.HostKSeg0, fs)
	}
	e.kern.ctx, e.user.ctx = 0, 0
	e.migrate()
	e.reenter()
	fs.Time += now() - t0
}

// FlushAll performs a full flush request and re-enters the guest. The
// model's reason for one is host page migration (an MMU-notifier style
// event): every guest page that has a host frame moves to another frame,
// so any mapping a flush forgot reads another page's bytes.
func (e *Engine) FlushAll() { e.flushAll() }

// migrate rotates the host frames of all guest pages that have one,
// keeping each page's contents.
func (e *Engine) migrate() {
	var pages []int
	for gp, f := range e.frameOfGPA {
		if f >= 0 {
			pages = append(pages, gp)
		}
	}
	n := len(pages)
	if n < 2 {
		return
	}
	saved := make([]byte, n*int(e.pageSize))
	for i, gp := range pages {
		copy(saved[i*int(e.pageSize):], e.frames[e.frameOfGPA[gp]])
	}
	first := e.frameOfGPA[pages[0]]
	for i := 0; i < n-1; i++ {
		e.frameOfGPA[pages[i]] = e.frameOfGPA[pages[i+1]]
	}
	e.frameOfGPA[pages[n-1]] = first
	for i, gp := range pages {
		copy(e.frames[e.frameOfGPA[gp]], saved[i*int(e.pageSize):(i+1)*int(e.pageSize)])
	}
}

// LogsDirty reports whether the engine keeps a dirty log (Config.DirtyLog).
func (e *Engine) LogsDirty() bool { return e.cfg.DirtyLog }

// HarvestDirty returns the guest physical addresses of the pages written
// since the last harvest, clears the log and write-protects both GVA
// tables so the next store to each page is logged again. Without DirtyLog
// there is no log (the series never marked guest pages dirty): it returns
// nil and changes nothing.
func (e *Engine) HarvestDirty() []uint32 {
	if !e.cfg.DirtyLog {
		return nil
	}
	t0 := now()
	var pages []uint32
	for gp, d := range e.dirty {
		if d {
			pages = append(pages, uint32(gp)<<e.pageShift)
			e.dirty[gp] = false
		}
	}
	fs := &e.Stats.Flush[FlushDirty]
	fs.Count++
	if !e.cfg.Legacy {
		e.cleaner = gva.Cleaner{}
		e.kern.table.Walk(0, cp0.HostKSeg0, &e.cleaner)
		e.user.table.Walk(0, cp0.GuestUSegEnd, &e.cleaner)
		fs.PTEsCleared += uint64(e.cleaner.Cleaned)
	}
	e.kern.ctx, e.user.ctx = 0, 0
	e.reenter()
	fs.Time += now() - t0
	return pages
}

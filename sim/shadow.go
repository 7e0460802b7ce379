package sim

import (
	"unsafe"

	"github.com/nestmmu/nestmmu/mem"
	"github.com/nestmmu/nestmmu/workload"
)

// shadow is the integrity checker's copy of a process's memory: the last
// value stored to every word. Pages are shared copy-on-write between a
// parent and the children it forks, as the guest's own pages are; a page
// never stored to reads as zero.
type shadow struct {
	pgShift uint
	pool    *pagePool
	// regions[i][page] for the workload's regions; abs for absolute
	// addresses (traces), by page number.
	regions [maxRegions][]sref
	abs     map[uint64]*spage
	// last absolute page looked up
	lastVPN  uint64
	lastPage *spage
}

const maxRegions = 2

type spage struct {
	refs int32
	w    []uint64
}

// sref is a region's reference to a page, with the page's words beside
// it so that a checked load reads the reference and the word, not the
// page's header in between (nil: never stored to). own records that the
// region holds the page's only reference (p.refs == 1), so that a store
// need not read the header either; fork clears it.
type sref struct {
	w   []uint64
	p   *spage
	own bool
}

func newShadow(pool *pagePool) *shadow {
	return &shadow{pgShift: pool.pgShift, pool: pool, abs: map[uint64]*spage{}, lastVPN: ^uint64(0)}
}

// fork returns a copy sharing every page.
func (s *shadow) fork() *shadow {
	c := newShadow(s.pool)
	for r := range s.regions {
		if s.regions[r] != nil {
			for i := range s.regions[r] {
				s.regions[r][i].own = false
			}
			c.regions[r] = append([]sref(nil), s.regions[r]...)
			for _, e := range c.regions[r] {
				if e.p != nil {
					e.p.refs++
				}
			}
		}
	}
	for k, p := range s.abs {
		c.abs[k] = p
		p.refs++
	}
	return c
}

// release drops every page.
func (s *shadow) release() {
	for r := range s.regions {
		s.unmap(r)
	}
	for _, p := range s.abs {
		s.drop(p)
	}
	s.abs = map[uint64]*spage{}
	s.lastVPN, s.lastPage = ^uint64(0), nil
}

// mapRegion starts region r of size bytes, all zero.
func (s *shadow) mapRegion(r int, size uint64) {
	s.unmap(r)
	s.regions[r] = make([]sref, (size+1<<s.pgShift-1)>>s.pgShift)
}

func (s *shadow) unmap(r int) {
	for _, e := range s.regions[r] {
		if e.p != nil {
			s.drop(e.p)
		}
	}
	s.regions[r] = nil
}

// drop drops a reference to p; the last one gives its words back to the
// pool.
func (s *shadow) drop(p *spage) {
	if p.refs--; p.refs == 0 {
		s.pool.put(p.w)
		p.w = nil
	}
}

// load returns the value a load of size bytes at byte offset off of page
// i in region r must return.
func (s *shadow) load(r int, i, off uint64, size uint8) uint64 {
	var words []uint64
	if r >= 0 {
		words = s.regions[r][i].w
	} else if p := s.absPage(i); p != nil {
		words = p.w
	}
	if words == nil {
		return 0
	}
	w := words[off>>3]
	if size == 8 {
		return w
	}
	sh := (off & 7) * 8
	return w >> sh & (1<<(uint(size)*8) - 1)
}

// hint returns the shadow word a region access will check or store, for
// kvm.BatchAccess.Hint (the batch loads it beside the access, so that the
// two cache misses overlap), or nil: an absolute address (traces), a page
// never stored to, or an offset beyond the region. A store before the
// check may still copy the page (copy-on-write): the hint is only a load
// ahead, the check looks the word up again.
func (s *shadow) hint(a *workload.Access) *uint64 {
	r := int(a.Region)
	if r < 0 || r >= maxRegions {
		return nil
	}
	refs := s.regions[r]
	if pg := a.Off >> s.pgShift; pg < uint64(len(refs)) {
		w := refs[pg].w
		if k := (a.Off & (1<<s.pgShift - 1)) >> 3; k < uint64(len(w)) {
			return &w[k]
		}
	}
	return nil
}

func (s *shadow) absPage(i uint64) *spage {
	if i == s.lastVPN {
		return s.lastPage
	}
	p := s.abs[i]
	s.lastVPN, s.lastPage = i, p
	return p
}

// store records a store of size bytes of v at byte offset off of page i
// in region r.
func (s *shadow) store(r int, i, off uint64, size uint8, v uint64) {
	var w []uint64
	if r >= 0 {
		e := &s.regions[r][i]
		if !e.own {
			p := e.p
			if p == nil || p.refs > 1 {
				p = s.copyPage(p)
			}
			*e = sref{p.w, p, true}
		}
		w = e.w
	} else {
		p := s.absPage(i)
		if p == nil || p.refs > 1 {
			p = s.copyPage(p)
			s.abs[i] = p
			s.lastVPN, s.lastPage = i, p
		}
		w = p.w
	}
	if size == 8 {
		w[off>>3] = v
		return
	}
	sh := (off & 7) * 8
	mask := uint64(1)<<(uint(size)*8) - 1
	x := &w[off>>3]
	*x = *x&^(mask<<sh) | (v&mask)<<sh
}

// copyPage returns a page of the shadow's own with p's words (zeros for
// nil), dropping its reference to p.
func (s *shadow) copyPage(p *spage) *spage {
	np := &spage{refs: 1, w: s.pool.get()}
	if p != nil {
		copy(np.w, p.w)
		p.refs--
	}
	return np
}

// pagePool hands out the shadow pages of one vCPU's processes (used by
// one goroutine at a time), reusing those no shadow holds any more. New
// pages come from chunks whose 2 MiB-aligned parts are marked for the
// host's transparent huge pages (a hint: the checker reads its pages at
// random, and with each page in its own 4K host page most checked loads
// cost the real machine a TLB miss).
type pagePool struct {
	pgShift uint
	free    [][]uint64
	chunk   []uint64
}

// poolChunk is the size of a pagePool's chunks in bytes.
const poolChunk = 8 << 20

func newPagePool(pgShift uint) *pagePool { return &pagePool{pgShift: pgShift} }

// get returns a page of zeros.
func (pp *pagePool) get() []uint64 {
	if n := len(pp.free); n > 0 {
		w := pp.free[n-1]
		pp.free = pp.free[:n-1]
		clear(w)
		return w
	}
	n := 1 << (pp.pgShift - 3)
	if len(pp.chunk) < n {
		pp.chunk = make([]uint64, poolChunk/8)
		mem.AdviseHugePages(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(pp.chunk))), poolChunk))
	}
	w := pp.chunk[:n:n]
	pp.chunk = pp.chunk[n:]
	return w
}

// put takes back a page nothing refers to.
func (pp *pagePool) put(w []uint64) { pp.free = append(pp.free, w) }

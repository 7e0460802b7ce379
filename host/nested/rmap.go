package nested

import (
	"fmt"
	"sort"
	"unsafe"

	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// The reverse map: which shadow entries derive from which L1 IPAs.
//
// Every shadow leaf maps an L2 range to host frames through one
// contiguous L1 IPA range of the same size (the guest leaf and the host
// mapping are both contiguous). The map keeps, for each shadow, extents
// "L2 [l2, l2+size) derives from L1 [l1, l1+size)", merged while they
// stay contiguous in both spaces and split so that none crosses an
// aligned 2 MiB L1 boundary. An extent is indexed twice: by its L1 2 MiB
// chunk (a host change of an L1 range visits the chunks it touches) and by
// its shadow and L2 2 MiB chunk (an install, or L1's TLBI, trims the
// extents of an L2 range). Extents of one shadow never overlap in L2 space
// and every valid leaf of a tracked shadow is covered by extents with its
// L1 offset (Check verifies both). An extent may cover L2 addresses that
// are no longer mapped (a host invalidation unmaps the leaves but keeps
// the extent, so a later change_pte can map the page again): acting on
// them is harmless, and they go when the L2 range is mapped again, when L1
// invalidates it, or when the shadow is emptied.
//
// The extents come from a pool preallocated when the VM is made (bounded
// memory, nothing allocated on a shadow fault). When it runs out, the
// shadow holding the most extents becomes untracked: its extents return
// to the pool and, until the shadow is next emptied, a host change that
// touches the L1 range its entries came from empties it (unmap) or
// write-protects it (permissions) whole, as mainline KVM does for every
// shadow; aging skips it. Config.NoReverseMap treats every shadow so and
// without the range test: mainline's behaviour, for comparison.

const (
	// rmapChunkShift: no extent crosses an aligned 2 MiB L1 boundary.
	rmapChunkShift = 21
	rmapChunk      = 1 << rmapChunkShift
	nilNode        = int32(-1)
	// rmapPerShadow is the default pool size per shadow MMU, up to
	// rmapMaxDefault in all; rmapMaxExtents bounds Config.ReverseMapExtents.
	rmapPerShadow  = 4096
	rmapMaxDefault = 1 << 18
	rmapMaxExtents = 1 << 24
)

// rnode is one extent.
type rnode struct {
	l1   mem.IPA
	l2   NestedIPA
	size uint32
	sh   uint16    // the shadow's index in VM.shadows
	sw   uint8     // the guest leaf level + 2, as in the descriptors' software bits
	prot s2pt.Prot // R, X and Device as the guest allows them (for change_pte)
	// Chains: h1 (L1 chunk), h2 (shadow, L2 chunk of l2), s (the shadow's
	// extents; the free list when unused).
	h1n, h1p, h2n, h2p, sn, sp int32
}

// rmapShadow is the map's record of one shadow.
type rmapShadow struct {
	head      int32
	count     int32
	untracked bool
	// lo, hi bound the L1 IPAs the shadow's entries derived from since it
	// was last emptied (the untracked fallback's range test).
	lo, hi mem.IPA
}

// rmap is the reverse map of a VM's shadows. It is guarded by the VM's
// MMU lock.
type rmap struct {
	on     bool
	nodes  []rnode
	free   int32
	used   int
	h1, h2 []int32
	bits1  uint
	bits2  uint
	sh     []rmapShadow
	st     rmapCounters
}

type rmapCounters struct {
	inserts, merges, overflows                   uint64
	coarseFlushes, coarseProtects, ageSkipped    uint64
	unmapped, protected, aged, young, changedPTE uint64
}

// RmapStats is the reverse map's accounting (VM.RmapStats).
type RmapStats struct {
	// Enabled is false with Config.NoReverseMap.
	Enabled bool
	// Extents in use, and Capacity, the preallocated bound.
	Extents, Capacity int
	// Bytes is the memory the map holds (extents and hash buckets), all
	// allocated when the VM was made.
	Bytes uint64
	// Inserts are shadow entries recorded; Merges those that extended an
	// extent instead of taking one.
	Inserts, Merges uint64
	// Overflows: times the pool was full and a shadow became untracked.
	// Untracked is how many shadows are untracked now.
	Overflows uint64
	Untracked int
	// CoarseFlushes and CoarseProtects are shadows emptied or
	// write-protected whole by a host change because they were untracked
	// (or the map is off); AgeSkipped are aging calls that could not look
	// into an untracked shadow.
	CoarseFlushes, CoarseProtects, AgeSkipped uint64
	// Unmapped, WriteProtected and Aged count shadow ranges the map sent a
	// host change to (Young: aged ranges found young); ChangedPTEs are
	// shadow pages mapped read-only by change_pte.
	Unmapped, WriteProtected, Aged, Young, ChangedPTEs uint64
}

// init sizes the map: capacity extents (0: rmapPerShadow per shadow).
func (r *rmap) init(on bool, shadows, capacity int) {
	r.on = on
	r.sh = make([]rmapShadow, shadows)
	for i := range r.sh {
		r.sh[i].head = nilNode
	}
	if !on {
		return
	}
	if capacity <= 0 {
		capacity = min(rmapPerShadow*shadows, rmapMaxDefault)
	}
	capacity = max(capacity, 16)
	r.nodes = make([]rnode, capacity)
	for i := range r.nodes {
		r.nodes[i].sn = int32(i + 1)
	}
	r.nodes[capacity-1].sn = nilNode
	r.free = 0
	r.bits1 = 6
	for 1<<r.bits1 < capacity {
		r.bits1++
	}
	r.bits2 = r.bits1
	r.h1 = make([]int32, 1<<r.bits1)
	r.h2 = make([]int32, 1<<r.bits2)
	for i := range r.h1 {
		r.h1[i] = nilNode
	}
	for i := range r.h2 {
		r.h2[i] = nilNode
	}
}

func (r *rmap) bytes() uint64 {
	return uint64(len(r.nodes))*uint64(unsafe.Sizeof(rnode{})) + uint64(len(r.h1)+len(r.h2))*4 +
		uint64(len(r.sh))*uint64(unsafe.Sizeof(rmapShadow{}))
}

const hashMul = 0x9e3779b97f4a7c15

func (r *rmap) hash1(chunk uint64) int { return int(chunk * hashMul >> (64 - r.bits1)) }

func (r *rmap) hash2(sh uint16, chunk uint64) int {
	return int((chunk ^ uint64(sh)<<44) * hashMul >> (64 - r.bits2))
}

func chunkOf[A mem.IPA | NestedIPA](a A) uint64 { return uint64(a) >> rmapChunkShift }

// link puts node i on its three chains.
func (r *rmap) link(i int32) {
	n := &r.nodes[i]
	b1 := r.hash1(chunkOf(n.l1))
	n.h1p, n.h1n = nilNode, r.h1[b1]
	if n.h1n != nilNode {
		r.nodes[n.h1n].h1p = i
	}
	r.h1[b1] = i
	b2 := r.hash2(n.sh, chunkOf(n.l2))
	n.h2p, n.h2n = nilNode, r.h2[b2]
	if n.h2n != nilNode {
		r.nodes[n.h2n].h2p = i
	}
	r.h2[b2] = i
	s := &r.sh[n.sh]
	n.sp, n.sn = nilNode, s.head
	if n.sn != nilNode {
		r.nodes[n.sn].sp = i
	}
	s.head = i
	s.count++
}

// unlink takes node i off its chains (its fields still name them).
func (r *rmap) unlink(i int32) {
	n := &r.nodes[i]
	if n.h1p != nilNode {
		r.nodes[n.h1p].h1n = n.h1n
	} else {
		r.h1[r.hash1(chunkOf(n.l1))] = n.h1n
	}
	if n.h1n != nilNode {
		r.nodes[n.h1n].h1p = n.h1p
	}
	if n.h2p != nilNode {
		r.nodes[n.h2p].h2n = n.h2n
	} else {
		r.h2[r.hash2(n.sh, chunkOf(n.l2))] = n.h2n
	}
	if n.h2n != nilNode {
		r.nodes[n.h2n].h2p = n.h2p
	}
	s := &r.sh[n.sh]
	if n.sp != nilNode {
		r.nodes[n.sp].sn = n.sn
	} else {
		s.head = n.sn
	}
	if n.sn != nilNode {
		r.nodes[n.sn].sp = n.sp
	}
	s.count--
}

func (r *rmap) release(i int32) {
	r.unlink(i)
	r.nodes[i] = rnode{sn: r.free}
	r.free = i
	r.used--
}

func (r *rmap) alloc() int32 {
	i := r.free
	if i != nilNode {
		r.free = r.nodes[i].sn
		r.used++
	}
	return i
}

// clear forgets every extent of shadow sh: it was emptied, and is tracked
// again.
func (r *rmap) clear(sh int) {
	s := &r.sh[sh]
	for s.head != nilNode {
		r.release(s.head)
	}
	s.untracked, s.lo, s.hi = false, 0, 0
}

// untrack gives the extents of shadow sh back to the pool; host changes
// treat it coarsely until it is emptied.
func (r *rmap) untrack(sh int) {
	s := &r.sh[sh]
	for s.head != nilNode {
		r.release(s.head)
	}
	s.untracked = true
	r.st.overflows++
}

// reserve makes n extents free, untracking the shadows that hold the most
// while they are not: false when sh itself had to be untracked.
func (r *rmap) reserve(sh int, n int) bool {
	for len(r.nodes)-r.used < n {
		victim, most := -1, int32(0)
		for i := range r.sh {
			if c := r.sh[i].count; c > most {
				victim, most = i, c
			}
		}
		if victim < 0 {
			return false // cannot happen: the pool holds at least 16
		}
		r.untrack(victim)
		if victim == sh {
			return false
		}
	}
	return true
}

// tracked reports whether shadow sh's extents are exact.
func (r *rmap) tracked(sh int) bool { return r.on && !r.sh[sh].untracked }

// note widens shadow sh's L1 bounds to [l1, l1+size).
func (r *rmap) note(sh int, l1 mem.IPA, size uint64) {
	s := &r.sh[sh]
	end := l1 + mem.IPA(size)
	if s.lo == s.hi {
		s.lo, s.hi = l1, end
		return
	}
	s.lo, s.hi = min(s.lo, l1), max(s.hi, end)
}

// mayDerive reports whether shadow sh may hold entries derived from L1
// [lo, hi) (its bounds meet the range).
func (r *rmap) mayDerive(sh int, lo, hi mem.IPA) bool {
	s := &r.sh[sh]
	return s.lo < hi && lo < s.hi
}

// l2Chunks returns the L2 chunks whose extents of sh may overlap [lo, hi)
// (an extent starts at most one chunk before it ends), and whether
// walking the shadow's list is cheaper.
func (r *rmap) l2Chunks(sh int, lo, hi NestedIPA) (first, last uint64, byList bool) {
	first, last = chunkOf(lo), chunkOf(hi-1)
	if first > 0 {
		first--
	}
	return first, last, last-first+1 > uint64(r.sh[sh].count)
}

// trim removes [lo, hi) from the extents of shadow sh (the shadow's
// entries there are being replaced or removed). It may split one extent,
// so the caller reserves one free extent first.
func (r *rmap) trim(sh int, lo, hi NestedIPA) {
	if r.sh[sh].count == 0 || hi <= lo {
		return
	}
	first, last, byList := r.l2Chunks(sh, lo, hi)
	if byList {
		for i := r.sh[sh].head; i != nilNode; {
			next := r.nodes[i].sn
			r.trimNode(i, lo, hi)
			i = next
		}
		return
	}
	for c := first; c <= last; c++ {
		for i := r.h2[r.hash2(uint16(sh), c)]; i != nilNode; {
			n := &r.nodes[i]
			next := n.h2n
			if int(n.sh) == sh && chunkOf(n.l2) == c {
				r.trimNode(i, lo, hi)
			}
			i = next
		}
	}
}

// trimNode removes [lo, hi) from extent i.
func (r *rmap) trimNode(i int32, lo, hi NestedIPA) {
	n := &r.nodes[i]
	s, e := n.l2, n.l2+NestedIPA(n.size)
	if e <= lo || hi <= s {
		return
	}
	switch {
	case lo <= s && e <= hi:
		r.release(i)
	case lo <= s: // keep [hi, e)
		r.unlink(i)
		d := hi - s
		n.l2, n.l1, n.size = hi, n.l1+mem.IPA(d), n.size-uint32(d)
		r.link(i)
	case e <= hi: // keep [s, lo)
		n.size = uint32(lo - s)
	default: // keep [s, lo) and [hi, e)
		j := r.alloc()
		tail := *n
		n.size = uint32(lo - s)
		if j == nilNode {
			return // cannot happen: reserved; the tail is then forgotten, which Check reports
		}
		d := hi - s
		tail.l2, tail.l1, tail.size = hi, tail.l1+mem.IPA(d), uint32(e-hi)
		r.nodes[j] = tail
		r.link(j)
	}
}

// find returns the extent of sh whose L2 range starts at l2 (want
// start) or ends at l2, and whose L1 range starts or ends at l1
// correspondingly, with the same guest level and rights; nilNode if none.
func (r *rmap) find(sh int, l2 NestedIPA, l1 mem.IPA, start bool, sw uint8, prot s2pt.Prot) int32 {
	probe := l2
	if !start {
		probe = l2 - 1
	}
	c := chunkOf(probe)
	for k := 0; k < 2; k++ {
		if k == 1 {
			if c == 0 {
				break
			}
			c--
		}
		for i := r.h2[r.hash2(uint16(sh), c)]; i != nilNode; i = r.nodes[i].h2n {
			n := &r.nodes[i]
			if int(n.sh) != sh || chunkOf(n.l2) != c || n.sw != sw || n.prot != prot {
				continue
			}
			if start && n.l2 == l2 && n.l1 == l1 || !start && n.l2+NestedIPA(n.size) == l2 && n.l1+mem.IPA(n.size) == l1 {
				return i
			}
		}
	}
	return nilNode
}

// insert records that shadow sh maps L2 [l2, l2+size) through L1 [l1,
// l1+size) (a leaf just installed, replacing whatever was there). The MMU
// lock is held; nothing is allocated.
func (r *rmap) insert(sh int, l2 NestedIPA, l1 mem.IPA, size uint64, sw uint8, prot s2pt.Prot) {
	r.note(sh, l1, size)
	if !r.tracked(sh) {
		return
	}
	for size > 0 {
		n := min(size, rmapChunk-uint64(l1)&(rmapChunk-1))
		// Two extents: one for a split in trim, one for the new extent.
		if !r.reserve(sh, 2) {
			return
		}
		r.trim(sh, l2, l2+NestedIPA(n))
		r.add(sh, l2, l1, n, sw, prot)
		l2, l1, size = l2+NestedIPA(n), l1+mem.IPA(n), size-n
	}
}

// add records an extent within one L1 chunk, merging it with the extents
// of sh it continues or that continue it.
func (r *rmap) add(sh int, l2 NestedIPA, l1 mem.IPA, size uint64, sw uint8, prot s2pt.Prot) {
	r.st.inserts++
	c1 := chunkOf(l1)
	left := r.find(sh, l2, l1, false, sw, prot)
	if left != nilNode && chunkOf(r.nodes[left].l1) != c1 {
		left = nilNode
	}
	right := r.find(sh, l2+NestedIPA(size), l1+mem.IPA(size), true, sw, prot)
	if right != nilNode && chunkOf(r.nodes[right].l1) != c1 {
		right = nilNode
	}
	switch {
	case left != nilNode:
		r.st.merges++
		ln := &r.nodes[left]
		ln.size += uint32(size)
		if right != nilNode {
			ln.size += r.nodes[right].size
			r.release(right)
		}
	case right != nilNode:
		r.st.merges++
		r.unlink(right)
		rn := &r.nodes[right]
		rn.l2, rn.l1, rn.size = l2, l1, rn.size+uint32(size)
		r.link(right)
	default:
		i := r.alloc()
		if i == nilNode {
			return // cannot happen: reserved
		}
		r.nodes[i] = rnode{l1: l1, l2: l2, size: uint32(size), sh: uint16(sh), sw: sw, prot: prot}
		r.link(i)
	}
}

// forL1 calls f for every extent that overlaps L1 [lo, hi), with the part
// that does, as L1 and L2 start and length. f must not change the map.
func (r *rmap) forL1(lo, hi mem.IPA, f func(n *rnode, l1 mem.IPA, l2 NestedIPA, size uint64)) {
	if r.used == 0 || hi <= lo {
		return
	}
	visit := func(n *rnode) {
		s, e := max(lo, n.l1), min(hi, n.l1+mem.IPA(n.size))
		if s < e {
			f(n, s, n.l2+NestedIPA(s-n.l1), uint64(e-s))
		}
	}
	first, last := chunkOf(lo), chunkOf(hi-1)
	if last-first+1 > uint64(r.used) {
		for sh := range r.sh {
			for i := r.sh[sh].head; i != nilNode; i = r.nodes[i].sn {
				visit(&r.nodes[i])
			}
		}
		return
	}
	for c := first; c <= last; c++ {
		for i := r.h1[r.hash1(c)]; i != nilNode; i = r.nodes[i].h1n {
			if n := &r.nodes[i]; chunkOf(n.l1) == c {
				visit(n)
			}
		}
	}
}

// check verifies the map's structure: the chains agree with the pool, no
// extent crosses an L1 chunk, and the extents of a shadow do not overlap
// in L2 space.
func (r *rmap) check() []error {
	if !r.on {
		return nil
	}
	var errs []error
	seen := 0
	for sh := range r.sh {
		s := &r.sh[sh]
		n := int32(0)
		for i := s.head; i != nilNode && n <= int32(len(r.nodes)); i = r.nodes[i].sn {
			nd := &r.nodes[i]
			n++
			if int(nd.sh) != sh || nd.size == 0 || chunkOf(nd.l1) != chunkOf(nd.l1+mem.IPA(nd.size)-1) {
				errs = append(errs, fmt.Errorf("nested: reverse map extent %d (shadow %d): %+v is malformed", i, sh, *nd))
			}
		}
		if n != s.count {
			errs = append(errs, fmt.Errorf("nested: reverse map shadow %d counts %d extents, its list holds %d", sh, s.count, n))
			continue
		}
		if s.untracked && n != 0 {
			errs = append(errs, fmt.Errorf("nested: reverse map: untracked shadow %d holds %d extents", sh, n))
		}
		ext := r.extents(sh)
		for a := 1; a < len(ext); a++ {
			if p := &ext[a-1]; p.l2+NestedIPA(p.size) > ext[a].l2 {
				errs = append(errs, fmt.Errorf("nested: reverse map: shadow %d extents overlap at L2 %#x and %#x", sh, uint64(p.l2), uint64(ext[a].l2)))
			}
		}
		seen += int(n)
	}
	if seen != r.used {
		errs = append(errs, fmt.Errorf("nested: reverse map: %d extents in use, %d on the shadows' lists", r.used, seen))
	}
	in1, in2 := 0, 0
	for _, h := range r.h1 {
		for i := h; i != nilNode; i = r.nodes[i].h1n {
			in1++
		}
	}
	for _, h := range r.h2 {
		for i := h; i != nilNode; i = r.nodes[i].h2n {
			in2++
		}
	}
	if in1 != r.used || in2 != r.used {
		errs = append(errs, fmt.Errorf("nested: reverse map: %d extents in use, %d and %d on the hash chains", r.used, in1, in2))
	}
	return errs
}

// extents returns a copy of the extents of shadow sh sorted by L2, for
// Check (never nil).
func (r *rmap) extents(sh int) []rnode {
	out := make([]rnode, 0, r.sh[sh].count)
	for i := r.sh[sh].head; i != nilNode; i = r.nodes[i].sn {
		out = append(out, r.nodes[i])
	}
	sort.Slice(out, func(a, b int) bool { return out[a].l2 < out[b].l2 })
	return out
}

// Package workload generates the memory accesses and the address-space
// events of a guest process: synthetic patterns (sequential, uniform
// random, Zipf, pointer chase, GUPS-style updates), fork/exec/exit churn
// and mmap/munmap churn, with a configurable working-set size and
// read/write mix. A Stream is deterministic for its seed.
//
// Accesses are relative to regions the stream asks its process to map
// (EventMmap): an Access names the region and the offset in it, and the
// driver adds the region's address. Trace replays (package trace) produce
// absolute addresses instead (Region < 0).
package workload

import (
	"fmt"
	"math"
	"math/bits"
)

// Kind names a synthetic pattern.
type Kind string

// The patterns.
const (
	Sequential   Kind = "sequential"
	Random       Kind = "random"
	Zipf         Kind = "zipf"
	PointerChase Kind = "pointer-chase"
	GUPS         Kind = "gups"
	ForkChurn    Kind = "fork-churn"
	MmapChurn    Kind = "mmap-churn"
)

// Kinds lists every synthetic pattern.
var Kinds = []Kind{Sequential, Random, Zipf, PointerChase, GUPS, ForkChurn, MmapChurn}

// Spec configures a synthetic stream.
type Spec struct {
	Kind Kind
	// WorkingSet is the size in bytes of the region the accesses cover.
	WorkingSet uint64
	// Writes is the fraction of accesses that are stores (0 to 1); GUPS
	// and the pointer chase have their own mix.
	Writes float64
	// Stride is the sequential pattern's step in bytes (0: 8).
	Stride uint64
	// ZipfS is the Zipf exponent over pages (0: 1.0).
	ZipfS float64
	// ChurnEvery is the number of accesses between churn events (fork, or
	// mmap/munmap) (0: 20000).
	ChurnEvery int
	// ChurnPages is how many pages a forked child or an mmap churn region
	// touches (0: 32).
	ChurnPages int
	// PageSize is the guest page size (for Zipf pages and churn).
	PageSize uint64
	Seed     uint64
}

// AccessKind is a load, a store or an instruction fetch.
type AccessKind uint8

// Access kinds.
const (
	Load AccessKind = iota
	Store
	Fetch
)

// Access is one memory access of a process.
type Access struct {
	// Off is the offset in Region, or the VA itself when Region < 0.
	Off uint64
	// Val is the value a store writes.
	Val    uint64
	Region int8
	Size   uint8
	Kind   AccessKind
}

// EventKind is an address-space event a stream asks for.
type EventKind uint8

// Events.
const (
	// EventNone: the stream has more accesses.
	EventNone EventKind = iota
	// EventMmap: map Size bytes as region Region (read/write).
	EventMmap
	// EventMmapAll: map the whole user address space as region 0 (read,
	// write, execute), for absolute-address streams.
	EventMmapAll
	// EventMunmap: unmap region Region.
	EventMunmap
	// EventFork: fork; the child runs Child.
	EventFork
	// EventExec: exec (every region is gone).
	EventExec
	// EventExit: the process exits.
	EventExit
	// EventEnd: the stream has nothing more (a trace at its end).
	EventEnd
)

// Event is an address-space event.
type Event struct {
	Kind   EventKind
	Region int8
	Size   uint64
	Child  Stream
}

// Stream is a process's behaviour: accesses, interrupted by events.
type Stream interface {
	// Fill writes the next accesses to b and returns how many. It returns
	// fewer than len(b) (possibly 0) when an event comes next: then Event
	// returns it, and the next Fill continues after it.
	Fill(b []Access) int
	// Event returns the pending event (EventNone if none) and clears it.
	Event() Event
}

// rng is xorshift64* (fast, good enough for access patterns).
type rng uint64

func newRNG(seed uint64) rng {
	s := rng(seed*0x9e3779b97f4a7c15 + 0x7f4a7c159e3779b9)
	if s == 0 {
		s = 1
	}
	return s
}

func (r *rng) next() uint64 {
	x := uint64(*r)
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*r = rng(x)
	return x * 0x2545f4914f6cdd1d
}

// below returns a value in [0, n).
func (r *rng) below(n uint64) uint64 {
	hi, _ := bits.Mul64(r.next(), n)
	return hi
}

// SpecError is a bad Spec field: Field names it ("Kind", "WorkingSet",
// "Writes", "Stride", "ZipfS", "ChurnEvery", "ChurnPages").
type SpecError struct {
	Field string
	Msg   string
}

func (e *SpecError) Error() string { return "workload: " + e.Msg }

// Validate checks a spec and fills in defaults.
func (s *Spec) Validate() error {
	if s.PageSize == 0 {
		s.PageSize = 4096
	}
	known := false
	for _, k := range Kinds {
		known = known || k == s.Kind
	}
	if !known {
		return &SpecError{"Kind", fmt.Sprintf("unknown pattern %q (want one of %v)", s.Kind, Kinds)}
	}
	if s.WorkingSet < s.PageSize || s.WorkingSet > 1<<40 {
		return &SpecError{"WorkingSet", fmt.Sprintf("working set %d bytes: want a page (%d) to 1 TiB", s.WorkingSet, s.PageSize)}
	}
	if s.Writes < 0 || s.Writes > 1 || math.IsNaN(s.Writes) {
		return &SpecError{"Writes", fmt.Sprintf("write fraction %v is not between 0 and 1", s.Writes)}
	}
	if s.Stride == 0 {
		s.Stride = 8
	}
	if s.Stride%8 != 0 || s.Stride >= s.WorkingSet {
		return &SpecError{"Stride", fmt.Sprintf("stride %d is not a multiple of 8 below the working set", s.Stride)}
	}
	if s.ZipfS == 0 {
		s.ZipfS = 1
	}
	if s.ZipfS < 0 || s.ZipfS > 10 || math.IsNaN(s.ZipfS) {
		return &SpecError{"ZipfS", fmt.Sprintf("Zipf exponent %v: want 0 to 10", s.ZipfS)}
	}
	if s.ChurnEvery == 0 {
		s.ChurnEvery = 20000
	}
	if s.ChurnPages == 0 {
		s.ChurnPages = 32
	}
	if s.ChurnEvery < 0 {
		return &SpecError{"ChurnEvery", fmt.Sprintf("churn every %d accesses: want a positive number", s.ChurnEvery)}
	}
	if s.ChurnPages < 0 || uint64(s.ChurnPages)*s.PageSize > 1<<32 {
		return &SpecError{"ChurnPages", fmt.Sprintf("%d churn pages: want a positive number (at most 4 GiB of pages)", s.ChurnPages)}
	}
	return nil
}

// New returns the stream for s (validated).
func New(s Spec) (Stream, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	words := s.WorkingSet / 8
	b := base{spec: s, r: newRNG(s.Seed), words: words, writes: threshold(s.Writes)}
	switch s.Kind {
	case Sequential:
		return &sequential{base: b}, nil
	case Random:
		return &random{base: b}, nil
	case Zipf:
		return &zipf{base: b, pages: newAlias(int(s.WorkingSet/s.PageSize), s.ZipfS)}, nil
	case PointerChase:
		return newChase(b), nil
	case GUPS:
		return &gups{base: b}, nil
	case ForkChurn:
		return &forkChurn{base: b}, nil
	case MmapChurn:
		return &mmapChurn{base: b}, nil
	}
	return nil, fmt.Errorf("workload: unknown pattern %q", s.Kind)
}

// base holds what every synthetic stream has: the spec, the generator,
// the first event (map the working set) and the pending event.
type base struct {
	spec    Spec
	r       rng
	words   uint64
	writes  uint64 // a store when r.next() < writes
	started bool
	ev      Event
}

// start returns true when the stream first needs its region mapped.
func (b *base) start() bool {
	if b.started {
		return false
	}
	b.started = true
	b.ev = Event{Kind: EventMmap, Region: 0, Size: b.spec.WorkingSet}
	return true
}

func (b *base) Event() Event {
	e := b.ev
	b.ev = Event{}
	return e
}

// threshold converts a probability to a bound on a uniform 64-bit value.
func threshold(p float64) uint64 {
	if p >= 1 {
		return math.MaxUint64
	}
	return uint64(p * (1 << 64))
}

// access makes a a load or a store (by the write fraction) of word w.
func (b *base) access(a *Access, w uint64) {
	if v := b.r.next(); v < b.writes {
		*a = Access{Off: w * 8, Val: v ^ w, Size: 8, Kind: Store}
		return
	}
	*a = Access{Off: w * 8, Size: 8, Kind: Load}
}

type sequential struct {
	base
	pos uint64
}

func (s *sequential) Fill(b []Access) int {
	if s.start() {
		return 0
	}
	step := s.spec.Stride / 8
	for i := range b {
		s.access(&b[i], s.pos)
		s.pos += step
		if s.pos >= s.words {
			s.pos -= s.words
		}
	}
	return len(b)
}

type random struct{ base }

func (s *random) Fill(b []Access) int {
	if s.start() {
		return 0
	}
	for i := range b {
		s.access(&b[i], s.r.below(s.words))
	}
	return len(b)
}

type zipf struct {
	base
	pages *alias
}

func (s *zipf) Fill(b []Access) int {
	if s.start() {
		return 0
	}
	wpp := s.spec.PageSize / 8
	for i := range b {
		p := uint64(s.pages.sample(&s.r))
		s.access(&b[i], p*wpp+s.r.below(wpp))
	}
	return len(b)
}

// gups: read-modify-write of random words (a load and a store of a new
// value to the same word), the HPC Challenge RandomAccess pattern.
type gups struct {
	base
	pending bool
	last    uint64
}

func (s *gups) Fill(b []Access) int {
	if s.start() {
		return 0
	}
	for i := range b {
		if s.pending {
			b[i] = Access{Off: s.last * 8, Val: s.r.next(), Size: 8, Kind: Store}
		} else {
			s.last = s.r.below(s.words)
			b[i] = Access{Off: s.last * 8, Size: 8, Kind: Load}
		}
		s.pending = !s.pending
	}
	return len(b)
}

// chase: a pointer chase over one pointer per 64-byte line, in a random
// cyclic order. The stream first stores every line's pointer (the offset
// of the next line), then follows them: each load's address is the value
// the previous load returns (the driver's integrity check holds it to
// that).
type chase struct {
	base
	next  []uint32 // next[line] = line after it in the cycle
	init  uint64   // lines stored so far
	cur   uint32
	lines uint64
}

const lineWords = 8

func newChase(b base) *chase {
	n := b.words / lineWords
	if n == 0 {
		n = 1
	}
	c := &chase{base: b, lines: n, next: make([]uint32, n)}
	// Sattolo's algorithm: a random single cycle.
	perm := make([]uint32, n)
	for i := range perm {
		perm[i] = uint32(i)
	}
	for i := n - 1; i > 0; i-- {
		j := c.r.below(i)
		perm[i], perm[j] = perm[j], perm[i]
	}
	for i := range perm {
		c.next[i] = perm[i]
	}
	return c
}

func (s *chase) Fill(b []Access) int {
	if s.start() {
		return 0
	}
	for i := range b {
		if s.init < s.lines {
			l := s.init
			b[i] = Access{Off: l * 64, Val: uint64(s.next[l]) * 64, Size: 8, Kind: Store}
			s.init++
			continue
		}
		b[i] = Access{Off: uint64(s.cur) * 64, Size: 8, Kind: Load}
		s.cur = s.next[s.cur]
	}
	return len(b)
}

// forkChurn: uniform random accesses over the working set; every
// ChurnEvery accesses the process forks. The child reads and writes
// ChurnPages random pages of the inherited memory (copy-on-write), execs,
// maps and touches ChurnPages fresh pages, and exits.
type forkChurn struct {
	base
	n int
}

func (s *forkChurn) Fill(b []Access) int {
	if s.start() {
		return 0
	}
	for i := range b {
		if s.n == s.spec.ChurnEvery {
			s.n = 0
			s.ev = Event{Kind: EventFork, Child: &churnChild{spec: s.spec, r: newRNG(s.r.next()), words: s.words}}
			return i
		}
		s.n++
		s.access(&b[i], s.r.below(s.words))
	}
	return len(b)
}

// churnChild is a forked child's life: touch inherited pages, exec, touch
// new pages, exit.
type churnChild struct {
	spec  Spec
	r     rng
	words uint64
	phase int
	n     int
	ev    Event
}

func (c *churnChild) Event() Event {
	e := c.ev
	c.ev = Event{}
	return e
}

func (c *churnChild) Fill(b []Access) int {
	wpp := c.spec.PageSize / 8
	pages := c.words / wpp
	for i := range b {
		switch c.phase {
		case 0, 2: // touch pages: a load then a store in each
			if c.n == 2*c.spec.ChurnPages {
				c.phase++
				c.n = 0
				if c.phase == 1 {
					c.ev = Event{Kind: EventExec}
				} else {
					c.ev = Event{Kind: EventExit}
				}
				return i
			}
			var off uint64
			if c.phase == 0 {
				off = c.r.below(pages)*c.spec.PageSize + c.r.below(wpp)*8
			} else {
				off = uint64(c.n/2) * c.spec.PageSize
			}
			if c.n%2 == 0 {
				b[i] = Access{Off: off, Size: 8, Kind: Load}
			} else {
				b[i] = Access{Off: off, Val: c.r.next(), Size: 8, Kind: Store}
			}
			c.n++
		case 1:
			c.phase = 2
			c.ev = Event{Kind: EventMmap, Region: 0, Size: uint64(c.spec.ChurnPages) * c.spec.PageSize}
			return i
		default:
			return i
		}
	}
	return len(b)
}

// mmapChurn: uniform random accesses over the working set (region 0);
// every ChurnEvery accesses it maps region 1 of ChurnPages pages, writes
// and reads every page of it, and unmaps it.
type mmapChurn struct {
	base
	n     int
	phase int // 0: working set, 1: touching region 1
	k     int
}

func (s *mmapChurn) Fill(b []Access) int {
	if s.start() {
		return 0
	}
	np := s.spec.ChurnPages
	for i := range b {
		switch s.phase {
		case 0:
			if s.n == s.spec.ChurnEvery {
				s.n, s.phase, s.k = 0, 1, 0
				s.ev = Event{Kind: EventMmap, Region: 1, Size: uint64(np) * s.spec.PageSize}
				return i
			}
			s.n++
			s.access(&b[i], s.r.below(s.words))
		case 1:
			if s.k == 2*np {
				s.phase = 0
				s.ev = Event{Kind: EventMunmap, Region: 1}
				return i
			}
			off := uint64(s.k%np) * s.spec.PageSize
			if s.k < np {
				b[i] = Access{Off: off, Region: 1, Val: s.r.next(), Size: 8, Kind: Store}
			} else {
				b[i] = Access{Off: off, Region: 1, Size: 8, Kind: Load}
			}
			s.k++
		}
	}
	return len(b)
}

// alias is Walker's alias method for sampling n outcomes with Zipf
// weights 1/(i+1)^s in O(1).
type alias struct {
	prob  []float64
	other []uint32
}

func newAlias(n int, s float64) *alias {
	if n < 1 {
		n = 1
	}
	w := make([]float64, n)
	var sum float64
	for i := range w {
		w[i] = math.Pow(float64(i+1), -s)
		sum += w[i]
	}
	a := &alias{prob: make([]float64, n), other: make([]uint32, n)}
	var small, large []int
	for i := range w {
		w[i] *= float64(n) / sum
		if w[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		l, g := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.prob[l], a.other[l] = w[l], uint32(g)
		w[g] -= 1 - w[l]
		if w[g] < 1 {
			large = large[:len(large)-1]
			small = append(small, g)
		}
	}
	for _, i := range append(small, large...) {
		a.prob[i], a.other[i] = 1, uint32(i)
	}
	return a
}

func (a *alias) sample(r *rng) int {
	i := r.below(uint64(len(a.prob)))
	if float64(r.next()>>11)*(1.0/(1<<53)) < a.prob[i] {
		return int(i)
	}
	return int(a.other[i])
}

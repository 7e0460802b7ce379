package memslot

import (
	"errors"
	"testing"

	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/mem"
)

// refSlots is a deliberately simple model of a slot set: a map by ID, with
// the acceptance rules written out one by one.
type refSlots struct {
	page, top uint64 // page size; first GPA past the IPA space
	slots     map[int]Slot
}

func (r *refSlots) valid(n Slot, skip int) bool {
	gpa, hva := uint64(n.GPA), uint64(n.HVA)
	if n.ID < 0 || n.Size == 0 || gpa%r.page != 0 || n.Size%r.page != 0 || hva%r.page != 0 {
		return false
	}
	if n.Flags&^(ReadOnly|LogDirty) != 0 || n.Size/r.page > MaxPages {
		return false
	}
	if gpa >= r.top || n.Size > r.top-gpa { // GPA+Size <= 2^ipaBits
		return false
	}
	if n.Size > ^uint64(0)-hva { // HVA+Size <= 2^64-1
		return false
	}
	for id, o := range r.slots {
		if id == skip {
			continue
		}
		if id == n.ID && skip < 0 {
			return false
		}
		if og := uint64(o.GPA); gpa < og+o.Size && og < gpa+n.Size {
			return false
		}
	}
	return true
}

func (r *refSlots) lookup(gpa uint64) (Slot, bool) {
	for _, o := range r.slots {
		if og := uint64(o.GPA); gpa >= og && gpa < og+o.Size {
			return o, true
		}
	}
	return Slot{}, false
}

// FuzzSlotOps drives a Set with random VMM requests (add, delete, move,
// set flags, lookup) and checks every decision and lookup against
// refSlots, and after each step that the published slots are sorted,
// disjoint, inside the IPA space and have a dirty bitmap exactly when
// logging.
func FuzzSlotOps(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 2, 1, 1, 0, 3, 0, 1, 4, 0})
	f.Add([]byte{0xff, 0x10, 0x80, 0x7f, 0x01, 0x02, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45})
	f.Fuzz(func(t *testing.T, data []byte) {
		const page = 4096
		const ipaBits = 32
		s, err := NewSet(page, ipaBits)
		if err != nil {
			t.Fatal(err)
		}
		ref := &refSlots{page: page, top: 1 << ipaBits, slots: map[int]Slot{}}
		next := func() uint64 {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return uint64(b)
		}
		// addr draws a GPA or HVA: usually page-aligned in a small window
		// so slots collide, sometimes odd or near the top of the space.
		addr := func() uint64 {
			v := next()
			switch v >> 6 {
			case 0, 1:
				return v % 32 * page
			case 2:
				return 1<<ipaBits - (v%8)*page
			default:
				return ^uint64(0) - v%4*page + 1 - page*(v>>2&1) + v&1
			}
		}
		size := func() uint64 {
			v := next()
			if v == 0xff {
				return 1 << 44
			}
			return v % 8 * page / (1 + v>>7) // sometimes half a page
		}
		for steps := 0; len(data) > 0 && steps < 64; steps++ {
			op, id := next()%5, int(next()%6)-1
			switch op {
			case 0: // add
				n := Slot{ID: id, GPA: mem.IPA(addr()), Size: size(), HVA: hostmm.HVA(addr()), Flags: Flags(next() % 5)}
				want := ref.valid(n, -1)
				err := s.Add(n)
				if (err == nil) != want {
					t.Fatalf("Add(%+v) = %v, reference accepts: %v", n, err, want)
				}
				if err == nil {
					ref.slots[id] = n
				}
			case 1: // delete
				r, err := s.Delete(id)
				o, ok := ref.slots[id]
				if (err == nil) != ok || ok && r != (Range{o.GPA, o.GPA + mem.IPA(o.Size)}) {
					t.Fatalf("Delete(%d) = %v, %v; reference has %+v (%v)", id, r, err, o, ok)
				}
				if !ok && !errors.Is(err, ErrNoSlot) {
					t.Fatalf("Delete(%d) of no slot: %v", id, err)
				}
				delete(ref.slots, id)
			case 2: // move
				g := addr()
				o, ok := ref.slots[id]
				n := o
				n.GPA = mem.IPA(g)
				want := ok && ref.valid(n, id)
				_, err := s.Move(id, mem.IPA(g))
				if (err == nil) != want {
					t.Fatalf("Move(%d, %#x) = %v, reference accepts: %v", id, g, err, want)
				}
				if want {
					ref.slots[id] = n
				}
			case 3: // flags
				fl := Flags(next())
				o, ok := ref.slots[id]
				n := o
				n.Flags = fl
				want := ok && ref.valid(n, id)
				_, err := s.SetFlags(id, fl)
				if (err == nil) != want {
					t.Fatalf("SetFlags(%d, %#x) = %v, reference accepts: %v", id, fl, err, want)
				}
				if want {
					ref.slots[id] = n
				}
			case 4: // lookup
				g := addr() + next()
				got := s.Lookup(mem.IPA(g))
				o, ok := ref.lookup(g)
				if (got != nil) != ok || ok && (got.ID != o.ID || uint64(got.HVAOf(mem.IPA(g))) != uint64(o.HVA)+(g-uint64(o.GPA))) {
					t.Fatalf("Lookup(%#x) = %+v, reference %+v (%v)", g, got, o, ok)
				}
			}
			sl := s.Slots()
			if len(sl) != len(ref.slots) {
				t.Fatalf("%d slots, reference %d", len(sl), len(ref.slots))
			}
			for i, x := range sl {
				o := ref.slots[x.ID]
				if x.GPA != o.GPA || x.Size != o.Size || x.HVA != o.HVA || x.Flags != o.Flags {
					t.Fatalf("slot %+v, reference %+v", *x, o)
				}
				if i > 0 && sl[i-1].End() > x.GPA {
					t.Fatalf("slots %+v and %+v unsorted or overlapping", *sl[i-1], *x)
				}
				if x.End() > 1<<ipaBits {
					t.Fatalf("slot %+v beyond the IPA space", *x)
				}
				if logging := x.Flags&LogDirty != 0; logging != (x.Dirty != nil) || logging && x.Dirty.Len() != x.Size/page {
					t.Fatalf("slot %+v: dirty bitmap does not match LogDirty", *x)
				}
			}
		}
	})
}

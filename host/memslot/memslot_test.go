package memslot

import (
	"errors"
	"sync"
	"testing"

	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/mem"
)

func TestAddRejects(t *testing.T) {
	s, err := NewSet(4096, 40)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(Slot{ID: 1, GPA: 0x8000_0000, Size: 0x100_0000, HVA: 0x7000_0000}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		slot Slot
		is   error
	}{
		{"overlap at start", Slot{ID: 2, GPA: 0x7fff_f000, Size: 0x2000, HVA: 0}, ErrOverlap},
		{"overlap inside", Slot{ID: 2, GPA: 0x8010_0000, Size: 0x1000, HVA: 0}, ErrOverlap},
		{"misaligned GPA", Slot{ID: 2, GPA: 0x9000_0800, Size: 0x1000, HVA: 0}, ErrAlignment},
		{"misaligned size", Slot{ID: 2, GPA: 0x9000_0000, Size: 0x1800, HVA: 0}, ErrAlignment},
		{"misaligned HVA", Slot{ID: 2, GPA: 0x9000_0000, Size: 0x1000, HVA: 0x10}, ErrAlignment},
		{"empty", Slot{ID: 2, GPA: 0x9000_0000, Size: 0, HVA: 0}, ErrAlignment},
		{"beyond IPA space", Slot{ID: 2, GPA: 1<<40 - 0x1000, Size: 0x2000, HVA: 0}, nil},
		{"duplicate id", Slot{ID: 1, GPA: 0xa000_0000, Size: 0x1000, HVA: 0}, nil},
		{"negative id", Slot{ID: -1, GPA: 0xa000_0000, Size: 0x1000, HVA: 0}, nil},
		{"unknown flag", Slot{ID: 2, GPA: 0xa000_0000, Size: 0x1000, Flags: 0x80}, nil},
		{"more than KVM_MEM_MAX_NR_PAGES", Slot{ID: 2, GPA: 0, Size: 1 << 43}, nil},
		{"HVA range wraps", Slot{ID: 2, GPA: 0xa000_0000, Size: 0x2000, HVA: 1<<64 - 0x1000}, nil},
	}
	for _, c := range cases {
		err := s.Add(c.slot)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.is)
		}
	}
	// Ending exactly at the top of the IPA space is fine.
	if err := s.Add(Slot{ID: 3, GPA: 1<<40 - 0x1000, Size: 0x1000}); err != nil {
		t.Errorf("slot ending at the top of the IPA space: %v", err)
	}
}

func TestLookupMoveDelete(t *testing.T) {
	s, _ := NewSet(4096, 40)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Add(Slot{ID: 1, GPA: 0x1000, Size: 0x3000, HVA: 0x10_0000}))
	must(s.Add(Slot{ID: 2, GPA: 0x10000, Size: 0x1000, HVA: 0x20_0000}))
	for _, c := range []struct {
		gpa  uint64
		id   int
		hva  uint64
		none bool
	}{{0x0fff, 0, 0, true}, {0x1000, 1, 0x10_0000, false}, {0x3fff, 1, 0x10_2fff, false}, {0x4000, 0, 0, true}, {0x10008, 2, 0x20_0008, false}} {
		sl := s.Lookup(mem.IPA(c.gpa))
		if c.none {
			if sl != nil {
				t.Errorf("Lookup(%#x) = slot %d, want none", c.gpa, sl.ID)
			}
			continue
		}
		if sl == nil || sl.ID != c.id || sl.HVAOf(mem.IPA(c.gpa)) != hostmm.HVA(c.hva) {
			t.Errorf("Lookup(%#x) = %+v, want slot %d hva %#x", c.gpa, sl, c.id, c.hva)
		}
	}
	r, err := s.Move(1, 0x20000)
	must(err)
	if r != (Range{0x1000, 0x4000}) {
		t.Errorf("Move returned %v, want the old range", r)
	}
	if s.Lookup(0x1000) != nil || s.Lookup(0x20000) == nil {
		t.Error("Move did not take effect")
	}
	if _, err := s.Move(1, 0x10000); !errors.Is(err, ErrOverlap) {
		t.Errorf("Move onto slot 2: %v", err)
	}
	r, err = s.Delete(2)
	must(err)
	if r != (Range{0x10000, 0x11000}) || s.Lookup(0x10000) != nil {
		t.Errorf("Delete: %v", r)
	}
	if _, err := s.Delete(2); !errors.Is(err, ErrNoSlot) {
		t.Errorf("second Delete: %v", err)
	}
}

func TestBitmapConcurrent(t *testing.T) {
	b := NewBitmap(1000)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := uint64(g); i < 1000; i += 4 {
				b.Set(i)
			}
		}(g)
	}
	wg.Wait()
	got := b.GetAndClear()
	if len(got) != 1000 {
		t.Fatalf("%d bits set, want 1000", len(got))
	}
	for i, v := range got {
		if v != uint64(i) {
			t.Fatalf("bit %d reported as %d", i, v)
		}
	}
	if len(b.GetAndClear()) != 0 || b.Test(5) {
		t.Fatal("GetAndClear did not clear")
	}
	b.Set(5000) // out of range: ignored
}

func TestLogDirtyFlag(t *testing.T) {
	s, _ := NewSet(16<<10, 48)
	if err := s.Add(Slot{ID: 7, GPA: 0, Size: 64 << 10, Flags: LogDirty}); err != nil {
		t.Fatal(err)
	}
	sl := s.Lookup(0)
	if sl.Dirty == nil || sl.Dirty.Len() != 4 {
		t.Fatalf("dirty bitmap %v, want 4 bits", sl.Dirty)
	}
	sl, err := s.SetFlags(7, 0)
	if err != nil || sl.Dirty != nil {
		t.Fatalf("disabling logging: %v %v", sl, err)
	}
	if _, err := NewSet(8192, 40); err == nil {
		t.Error("8K page size accepted")
	}
}

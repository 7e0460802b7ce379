package refmodel

import (
	"testing"

	"github.com/nestmmu/nestmmu/mips/cp0"
)

func newModel(t *testing.T) *Model {
	t.Helper()
	m, err := New(4096, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Exec(cp0.Op{Kind: cp0.OpMTC0, Reg: cp0.RegStatus, Value: 0})
	return m
}

func mtc0(m *Model, reg, sel uint8, v uint32) {
	m.Exec(cp0.Op{Kind: cp0.OpMTC0, Reg: reg, Sel: sel, Value: v})
}

// TestMTC0AgreesWithCP0 compares the model's register write masks with
// package cp0's independent implementation over many values.
func TestMTC0AgreesWithCP0(t *testing.T) {
	m := newModel(t)
	s, _ := cp0.NewState(4096)
	s.Set(cp0.RegStatus, 0, 0)
	x := uint64(88172645463325252)
	for i := 0; i < 20000; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		reg, sel, v := uint8(x%32), uint8(x>>8%8), uint32(x>>32)
		if reg == cp0.RegStatus && sel == 0 {
			v &^= cp0.StatusUM // stay in kernel mode
		}
		mtc0(m, reg, sel, v)
		s.MTC0(reg, sel, v)
		for r := uint8(0); r < 32; r++ {
			for sl := uint8(0); sl < 8; sl++ {
				if a, b := m.CP0(r, sl), s.Get(r, sl); a != b {
					t.Fatalf("after MTC0 $%d,%d <- %#x: $%d,%d model %#x cp0 %#x", reg, sel, v, r, sl, a, b)
				}
			}
		}
	}
}

func TestTranslation(t *testing.T) {
	m := newModel(t)
	// 16K pages at 0x00400000: even -> GPA 0x10000, odd -> 0x14000 (D=0).
	mtc0(m, cp0.RegPageMask, 0, 0x6000)
	mtc0(m, cp0.RegEntryHi, 0, 0x00400000|2)
	mtc0(m, cp0.RegEntryLo0, 0, 0x10<<6|cp0.EntryLoV|cp0.EntryLoD)
	mtc0(m, cp0.RegEntryLo1, 0, 0x14<<6|cp0.EntryLoV)
	mtc0(m, cp0.RegIndex, 0, 7)
	m.Exec(cp0.Op{Kind: cp0.OpTLBWI})
	m.ram[0x10000+0x3ffc] = 0x5a
	cases := []struct {
		name string
		op   cp0.Op
		want cp0.Result
	}{
		{"even page last word", cp0.Op{Kind: cp0.OpLoad, VA: 0x00403ffc, Size: 1}, cp0.Result{Value: 0x5a}},
		{"odd page store to D=0", cp0.Op{Kind: cp0.OpStore, VA: 0x00404000, Size: 4, PC: 0x100},
			cp0.Result{Outcome: cp0.Exception, Code: cp0.ExcMod, PC: 0x40000180, BadVAddr: 0x00404000, EntryHi: 0x00404002, EPC: 0x100, Cause: 1 << 2}},
	}
	for _, c := range cases {
		got := m.Exec(c.op)
		if got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSegments(t *testing.T) {
	m := newModel(t)
	m.ram[0x2000] = 0x77
	if r := m.Exec(cp0.Op{Kind: cp0.OpLoad, VA: 0x40002000, Size: 1}); r.Value != 0x77 {
		t.Errorf("KSeg0 read %v", r)
	}
	mtc0(m, cp0.RegKScratch, 3, 0xabcdef01)
	if r := m.Exec(cp0.Op{Kind: cp0.OpLoad, VA: 0x7000 + cp0.RegOffset(cp0.RegKScratch, 3) + 2, Size: 2}); r.Value != 0xabcd {
		t.Errorf("commpage halfword read %v", r)
	}
	if r := m.Exec(cp0.Op{Kind: cp0.OpLoad, VA: 0x40100000, Size: 4}); r.Outcome != cp0.Internal {
		t.Errorf("KSeg0 beyond RAM: %v, want internal", r)
	}
	if r := m.Exec(cp0.Op{Kind: cp0.OpLoad, VA: 0xbf000000, Size: 4}); r.Outcome != cp0.MMIO {
		t.Errorf("host KSeg1: %v, want MMIO", r)
	}
	if r := m.Exec(cp0.Op{Kind: cp0.OpFetch, VA: 0xbf000000}); r.Outcome != cp0.Internal {
		t.Errorf("fetch from MMIO: %v, want internal", r)
	}
	mtc0(m, cp0.RegStatus, 0, cp0.StatusUM)
	if r := m.Exec(cp0.Op{Kind: cp0.OpLoad, VA: 0x40002000, Size: 1, PC: 0x400}); r.Outcome != cp0.Exception || r.Code != cp0.ExcAdEL || r.BadVAddr != 0x40002000 {
		t.Errorf("user KSeg0 read %v, want AdEL", r)
	}
}

package vmsa_test

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// TestWalkParamsFollowRegs: a Walker keeps the walk parameters it derived
// from the registers of its last translation; a translation after any
// register changed must be what a new Walker (nothing kept) gives. Two
// identical memories, one per walker, so that hardware updates stay alike.
func TestWalkParamsFollowRegs(t *testing.T) {
	ramKept, base := benchMachine(t, true)
	ramNew, _ := benchMachine(t, true)
	kept := &vmsa.Walker{Mem: ramKept}
	acc := vmsa.Access{Kind: vmsa.Read, EL: 1}
	translate := func(w *vmsa.Walker, r *vmsa.Regs, regime vmsa.Regime, va uint64, acc vmsa.Access) vmsa.Translation {
		return w.Translate(r, regime, mem.VA(va), acc, vmsa.TranslateOptions{})
	}
	// Warm the kept walker on the base registers.
	r0 := base
	if tr := translate(kept, &r0, vmsa.RegimeEL10, benchVA, acc); tr.Fault.IsFault() || tr.OA != benchIPA {
		t.Fatalf("base translation: %+v", tr)
	}
	translate(&vmsa.Walker{Mem: ramNew}, &r0, vmsa.RegimeEL10, benchVA, acc)
	baseTr := translate(&vmsa.Walker{Mem: ramNew}, &r0, vmsa.RegimeEL10, benchVA, acc)

	// Each change alters the translation of benchVA through a parameter
	// the walk derives from that register (checked: a new Walker's
	// result differs from the base one).
	empty := uint64(benchRAM + 0x20_0000) // a zeroed page inside stage 2's identity map
	for _, c := range []struct {
		name string
		set  func(r *vmsa.Regs)
	}{
		{"TCR_EL1.EPD0", func(r *vmsa.Regs) { r.TCR_EL1 |= 1 << 7 }},
		{"TCR_EL1.T0SZ", func(r *vmsa.Regs) { r.TCR_EL1 = r.TCR_EL1&^0x3f | 20 }},
		{"TTBR0_EL1", func(r *vmsa.Regs) { r.TTBR0_EL1 = sysreg.TTBR(empty) }},
		{"MAIR_EL1", func(r *vmsa.Regs) { r.MAIR_EL1 = 0 }},
		{"SCTLR_EL1.C", func(r *vmsa.Regs) { r.SCTLR_EL1 &^= 1 << 2 }},
		{"VTCR_EL2.SL0", func(r *vmsa.Regs) { r.VTCR_EL2 = r.VTCR_EL2&^(3<<6) | 1<<6 }},
		{"VTCR_EL2.T0SZ", func(r *vmsa.Regs) { r.VTCR_EL2 = r.VTCR_EL2&^0x3f | 25 }},
		{"VTTBR_EL2", func(r *vmsa.Regs) { r.VTTBR_EL2 = sysreg.VTTBR(empty) }},
		{"SCTLR_EL2.EE", func(r *vmsa.Regs) { r.SCTLR_EL2 |= 1 << 25 }},
		{"MMFR0.TGran4", func(r *vmsa.Regs) { r.MMFR0 = r.MMFR0&^(0xf<<28) | 0xf<<28 }},
		{"MMFR0.PARange", func(r *vmsa.Regs) { r.MMFR0 &^= 0xf }},
	} {
		r := base
		c.set(&r)
		want := translate(&vmsa.Walker{Mem: ramNew}, &r, vmsa.RegimeEL10, benchVA, acc)
		if reflect.DeepEqual(want, baseTr) {
			t.Errorf("%s: the change does not alter the translation; the case tests nothing", c.name)
			continue
		}
		if got := translate(kept, &r, vmsa.RegimeEL10, benchVA, acc); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: kept walker %+v, new walker %+v", c.name, got, want)
		}
		// And back: the base registers' translation again.
		if got := translate(kept, &r0, vmsa.RegimeEL10, benchVA, acc); !reflect.DeepEqual(got, baseTr) {
			t.Errorf("%s undone: kept walker %+v, want %+v", c.name, got, baseTr)
		}
	}

	// Random changes of every register of Regs (a bit flipped or a random
	// value), translations in every regime and both VA ranges.
	rng := rand.New(rand.NewPCG(11, 12))
	rv := reflect.ValueOf(&r0).Elem()
	regimes := []vmsa.Regime{vmsa.RegimeEL10, vmsa.RegimeEL20, vmsa.RegimeEL2}
	for i := 0; i < 4000; i++ {
		if i%16 == 0 {
			r0 = base
		}
		f := rv.Field(rng.IntN(rv.NumField()))
		v := f.Uint() ^ 1<<rng.IntN(64)
		if rng.IntN(4) == 0 {
			v = rng.Uint64()
		}
		f.SetUint(v)
		for k := 0; k < 3; k++ {
			va := uint64(benchVA)
			switch rng.IntN(3) {
			case 1:
				va |= 0xffff << 48
			case 2:
				va = rng.Uint64()
			}
			regime := regimes[rng.IntN(len(regimes))]
			a := vmsa.Access{Kind: vmsa.AccessKind(rng.IntN(3)), EL: uint8(rng.IntN(2)), PAN: rng.IntN(2) == 0}
			if regime != vmsa.RegimeEL10 {
				a.EL = 2
			}
			r := r0
			want := translate(&vmsa.Walker{Mem: ramNew}, &r, regime, va, a)
			if got := translate(kept, &r, regime, va, a); !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d, %s = %#x, %v %#x %+v: kept walker %+v, new walker %+v",
					i, rv.Type().Field(indexOf(rv, f)).Name, v, regime, va, a, got, want)
			}
		}
	}
}

// indexOf returns the index of field f of the struct value v.
func indexOf(v, f reflect.Value) int {
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).UnsafeAddr() == f.UnsafeAddr() {
			return i
		}
	}
	return -1
}

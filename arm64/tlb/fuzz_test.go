package tlb

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// FuzzInvalidate executes an arbitrary op and operand in an arbitrary
// context on the fixture: it must not panic, must reject invalid ops and
// EL2 ops at EL1 with an error, and must leave no entry that the
// reference scope says it had to remove.
func FuzzInvalidate(f *testing.F) {
	for _, c := range scopeCases {
		f.Add(uint8(c.op), c.xt, c.ctx.EL, c.ctx.VMID, uint64(c.ctx.HCR), uint8(0), false)
	}
	f.Add(uint8(0xff), ^uint64(0), uint8(9), uint16(0xffff), ^uint64(0), uint8(0xff), true)
	f.Fuzz(func(t *testing.T, op uint8, xt uint64, el uint8, vmid uint16, hcr uint64, flags uint8, strict bool) {
		c := Context{EL: el, VMID: vmid, HCR: sysreg.HCR(hcr), ASID16: flags&1 != 0, DS: flags&2 != 0,
			VDS: flags&4 != 0, LPA2: flags&8 != 0, EL2ASID16: flags&16 != 0, EL2DS: flags&32 != 0}
		tl := MustNew(Config{StrictHints: strict, Sets: 8, Ways: 2})
		fx := fillFixture(t, tl)
		_ = fx
		n, err := tl.Invalidate(Op(op), xt, c)
		if err != nil {
			if Op(op).Valid() && el >= Op(op).opEL() && el <= 2 {
				t.Fatalf("valid TLBI %v at EL%d refused: %v", Op(op), el, err)
			}
			return
		}
		if n < 0 || n > tl.Capacity() {
			t.Fatalf("removed %d", n)
		}
		for _, e := range tl.Entries(nil) {
			if refRequired(Op(op), xt, c, &e) {
				t.Fatalf("TLBI %v %#x %+v left %+v", Op(op), xt, c, e)
			}
		}
	})
}

// FuzzDecodeRange checks the range arithmetic: the range is never empty
// for a valid TG and its length is exactly (NUM+1)*2^(5*SCALE+1) granules.
func FuzzDecodeRange(f *testing.F) {
	f.Add(uint64(1<<46|1<<39|0x400), false, false)
	f.Add(^uint64(0), true, true)
	f.Fuzz(func(t *testing.T, xt uint64, ds, sext bool) {
		r := DecodeRange(xt, ds, sext, true)
		if r.GranuleBits == 0 {
			if xt>>46&3 != 0 || r.Length != 0 {
				t.Fatalf("bad reserved decode %+v", r)
			}
			return
		}
		pages := r.Length >> r.GranuleBits
		if pages != (uint64(r.Num)+1)<<(5*uint(r.Scale)+1) || pages < 2 || pages > 1<<21 {
			t.Fatalf("%#x: %d pages", xt, pages)
		}
		if !sext && r.Start>>53 != 0 {
			t.Fatalf("%#x: start %#x beyond 2^53", xt, r.Start)
		}
	})
}

package vmsa_test

import (
	"encoding/binary"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// source turns fuzz bytes into values; it yields zeros when exhausted.
type source struct{ b []byte }

func (s *source) u64() uint64 {
	if len(s.b) < 8 {
		var buf [8]byte
		copy(buf[:], s.b)
		s.b = nil
		return binary.LittleEndian.Uint64(buf[:])
	}
	v := binary.LittleEndian.Uint64(s.b)
	s.b = s.b[8:]
	return v
}

// legalFSC lists the fault status codes a translation may report.
var legalFSC = map[uint8]bool{
	0b101001: true, 0b000000: true, 0b000001: true, 0b000010: true, 0b000011: true, // address size
	0b101011: true, 0b000100: true, 0b000101: true, 0b000110: true, 0b000111: true, // translation
	0b001000: true, 0b001001: true, 0b001010: true, 0b001011: true, // access flag
	0b001100: true, 0b001101: true, 0b001110: true, 0b001111: true, // permission
	0b010011: true, 0b010100: true, 0b010101: true, 0b010110: true, 0b010111: true, // SEA on walk
}

const fuzzRAMBase = 0x4000_0000
const fuzzRAMSize = 0x0010_0000

// FuzzTranslate gives the walker random registers and random table memory.
// Descriptors are biased to point back into the small RAM so that walks go
// deep. Every translation must terminate without panicking and satisfy the
// architecture's invariants.
func FuzzTranslate(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 256))
	seed := make([]byte, 0, 512)
	for _, v := range []uint64{0x30d00805, 0x8580190019, fuzzRAMBase, 0xff, 0x80000000, 0x1234,
		fuzzRAMBase + 0x1003, fuzzRAMBase + 0x2003, fuzzRAMBase + 0x3703} {
		seed = binary.LittleEndian.AppendUint64(seed, v)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &source{b: data}
		ram, err := mem.NewFlat(fuzzRAMBase, fuzzRAMSize)
		if err != nil {
			t.Fatal(err)
		}
		r := vmsa.DefaultRegs()
		r.SCTLR_EL1 = sysreg.SCTLR(s.u64())
		r.TCR_EL1 = sysreg.TCR(s.u64())
		r.TTBR0_EL1 = sysreg.TTBR(fuzzRAMBase + s.u64()%fuzzRAMSize)
		r.TTBR1_EL1 = sysreg.TTBR(s.u64())
		r.MAIR_EL1 = sysreg.MAIR(s.u64())
		r.SCTLR_EL2 = sysreg.SCTLR(s.u64())
		r.TCR_EL2 = s.u64()
		r.TTBR0_EL2 = sysreg.TTBR(fuzzRAMBase + s.u64()%fuzzRAMSize)
		r.TTBR1_EL2 = sysreg.TTBR(s.u64())
		r.MAIR_EL2 = sysreg.MAIR(s.u64())
		r.HCR_EL2 = sysreg.HCR(s.u64())
		r.VTCR_EL2 = sysreg.VTCR(s.u64())
		r.VTTBR_EL2 = sysreg.VTTBR(fuzzRAMBase + s.u64()%fuzzRAMSize)
		if sel := s.u64(); sel&1 == 1 {
			r.MMFR0 = sysreg.MMFR0(s.u64())
			r.MMFR1 = sysreg.MMFR1(s.u64())
			r.MMFR2 = sysreg.MMFR2(s.u64())
		}
		n := int(s.u64() % 64)
		for i := 0; i < n; i++ {
			addr := fuzzRAMBase + (s.u64()%(fuzzRAMSize/8))*8
			v := s.u64()
			if v&0x100 == 0 { // usually an address inside RAM
				v = v&^0x0000_ffff_ffff_f000 | (fuzzRAMBase+(v>>12)%fuzzRAMSize)&^0xfff
			}
			_ = ram.Write64(mem.PA(addr), v)
		}
		w := &vmsa.Walker{Mem: ram}
		for k := 0; k < 8; k++ {
			va := s.u64()
			op := at.Op(s.u64() % uint64(len(at.Ops())))
			el := uint8(1 + s.u64()%2)
			before := w.Stats.DescReads
			res := at.Execute(w, &r, at.PSTATE{EL: el, PAN: va&1 == 1}, op, va, 0)
			// A walk reads at most (5+1)*(5+1) descriptors, plus retries
			// of hardware updates.
			if reads := w.Stats.DescReads - before; reads > 36*17 {
				t.Fatalf("%s %#x: %d descriptor reads", op, va, reads)
			}
			tr := res.Translation
			flt := tr.Fault
			if flt.IsFault() {
				if !legalFSC[flt.FSC()] {
					t.Fatalf("%s %#x: illegal FSC %#b for %s", op, va, flt.FSC(), flt)
				}
				if flt.Level < -1 || flt.Level > 3 {
					t.Fatalf("%s %#x: fault level %d", op, va, flt.Level)
				}
				if flt.S1PTW && !flt.Stage2 {
					t.Fatalf("%s %#x: S1PTW without a stage-2 fault", op, va)
				}
				if !res.Taken && (!res.PAR.F() || res.PAR.FST() != flt.FSC()) {
					t.Fatalf("%s %#x: PAR %#x does not report %s", op, va, uint64(res.PAR), flt)
				}
				continue
			}
			if res.Taken {
				continue // UNDEFINED or trapped: no walk
			}
			if res.PAR.F() {
				t.Fatalf("%s %#x: PAR %#x has F=1 without a fault", op, va, uint64(res.PAR))
			}
			out := tr.Output()
			if out>>52 != 0 {
				t.Fatalf("%s %#x: output address %#x beyond 52 bits", op, va, out)
			}
			// The offset inside the leaf comes from the input address.
			if tr.BlockBits > 0 && !tr.S2 {
				m := uint64(1)<<tr.BlockBits - 1
				if out&m != va&m {
					t.Fatalf("%s %#x: OA %#x does not keep the %d-bit offset", op, va, out, tr.BlockBits)
				}
			}
			if tr.Level != -2 && (tr.Level < -1 || tr.Level > 3) {
				t.Fatalf("%s %#x: leaf level %d", op, va, tr.Level)
			}
			if sh := res.PAR.SH(); sh == 1 && vmsa.PARShareability(tr.Attrs) != 1 {
				t.Fatalf("%s %#x: PAR.SH reserved value", op, va)
			}
		}
	})
}

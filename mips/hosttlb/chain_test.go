package hosttlb

import (
	"encoding/binary"
	"testing"
)

// scanProbe is the reference: compare every entry from index 0, as TLBP
// is specified, with nothing but Entry.
func scanProbe(t *TLB, va uint32, asid uint8) int {
	for i := 0; i < t.Len(); i++ {
		e := t.Entry(i)
		g := e.Lo0&e.Lo1&LoG != 0
		if (e.Hi^va)&t.vpn2Mask == 0 && (g || uint8(e.Hi) == asid) {
			return i
		}
	}
	return -1
}

// runOps applies the operations encoded in data to a TLB of n entries and
// checks, after each, Probe and Lookup against a scan of all entries for
// addresses near the ones written (hits, misses, other ASIDs, the parked
// unique entries).
func runOps(t *testing.T, n int, pageSize uint32, data []byte) {
	tl, err := New(n, pageSize, 7)
	if err != nil {
		t.Fatal(err)
	}
	var vas []uint32
	for len(data) >= 7 {
		op, i := data[0]%6, int(data[1])%n
		va := binary.LittleEndian.Uint32(data[2:6]) &^ (3 << 30) // below 1 GiB: some pairs collide
		va &= 0x3f<<tl.pageShift | 0x7 | 0xff<<20
		asid := data[6] % 4
		data = data[7:]
		lo := uint32(va>>4)&LoPFN | LoV
		switch op {
		case 0:
			tl.WriteRandom(Entry{Hi: va | uint32(asid), Lo0: lo, Lo1: lo | LoD})
		case 1: // may duplicate a live entry: Probe must still answer as the scan
			g := uint32(0)
			if asid == 3 {
				g = LoG
			}
			tl.WriteIndexed(i, Entry{Hi: va | uint32(asid), Lo0: lo | g, Lo1: g})
		case 2:
			tl.Invalidate(i)
		case 3:
			tl.InvalidateVA(va, asid)
		case 4:
			tl.InvalidateRange(uint64(va), uint64(va)+uint64(i)<<tl.pageShift, asid)
		case 5:
			if i == 0 {
				tl.FlushAll()
			}
		}
		vas = append(vas, va, va^1<<tl.pageShift, va+2<<tl.pageShift, uniqueBase+uint32(i)<<(tl.pageShift+1))
		for _, v := range vas[max(0, len(vas)-64):] {
			for a := uint8(0); a < 4; a++ {
				want := scanProbe(tl, v, a)
				if got := tl.Probe(v, a); got != want {
					t.Fatalf("Probe(%#x, %d) = %d, a scan of the entries finds %d", v, a, got, want)
				}
				lo, hit := tl.Lookup(v, a)
				if hit != (want >= 0) {
					t.Fatalf("Lookup(%#x, %d) hit %v, scan finds %d", v, a, hit, want)
				}
				if hit {
					e := tl.Entry(want)
					if wl := map[bool]uint32{false: e.Lo0, true: e.Lo1}[v>>tl.pageShift&1 == 1]; lo != wl {
						t.Fatalf("Lookup(%#x, %d) = %#x, entry %d gives %#x", v, a, lo, want, wl)
					}
				}
			}
		}
	}
}

// TestChainsAnswerAsScan: the chains find what comparing every entry
// finds, over random writes, invalidations and flushes.
func TestChainsAnswerAsScan(t *testing.T) {
	r := uint64(12345)
	data := make([]byte, 7*1000)
	for i := range data {
		r ^= r << 13
		r ^= r >> 7
		r ^= r << 17
		data[i] = byte(r)
	}
	for _, c := range []struct {
		n, ops int
		ps     uint32
	}{{64, 1000, 4096}, {16, 1000, 16384}, {1, 300, 4096}, {1024, 100, 65536}} {
		runOps(t, c.n, c.ps, data[:7*c.ops])
	}
}

func FuzzChains(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0x40, 0, 0, 1, 3, 0, 0, 0x40, 0, 0, 1})
	f.Add([]byte{1, 5, 0, 0x20, 0, 0, 3, 1, 6, 0, 0x20, 0, 0, 2, 2, 5, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		runOps(t, 8, 4096, data)
	})
}

package s2pt

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// diffCfg is one layout for the differential test, with the IPA window the
// random operations work in.
type diffCfg struct {
	ipa    uint
	g      sysreg.Granule
	concat int
	window uint64 // window size; it is centred on winMid
	winMid uint64
}

func diffCfgs() []diffCfg {
	return []diffCfg{
		// 4K/40: two concatenated level-1 tables; the window straddles
		// 512 GiB, the boundary between them.
		{40, sysreg.Granule4K, 0, 256 * mib, 512 * gib},
		{48, sysreg.Granule4K, 0, 256 * mib, 1 << 47},
		{52, sysreg.Granule4K, 0, 256 * mib, 1 << 48},
		{32, sysreg.Granule4K, 0, 64 * mib, 2 * gib},
		{48, sysreg.Granule16K, 0, 256 * mib, 1 << 47},
		{52, sysreg.Granule16K, 0, 256 * mib, 1 << 47},
		{42, sysreg.Granule64K, 0, 4 * gib, 1 << 41},
		{52, sysreg.Granule64K, 0, 4 * gib, 1 << 48},
	}
}

// TestDifferential runs random operations and after each compares the
// hardware walk of sampled IPAs with a plain reference model.
func TestDifferential(t *testing.T) {
	ops := 400
	if testing.Short() || raceOn {
		ops = 80
	}
	for i, dc := range diffCfgs() {
		// The manager on table memory whose words it uses directly (its
		// one-leaf paths), and through the interface alone.
		for _, direct := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v-%d/direct=%v", dc.g, dc.ipa, direct), func(t *testing.T) {
				runDifferential(t, dc, ops, uint64(i+1), direct)
			})
		}
	}
}

func runDifferential(t *testing.T, dc diffCfg, nops int, seed uint64, direct bool) {
	cfg := defaultCfg(dc.ipa, dc.g)
	cfg.HA = true
	cfg.MaxConcat = dc.concat
	r := newRigOn(t, cfg, 256*mib, direct)
	l := r.vm.Layout()
	g := l.TableBytes
	rng := rand.New(rand.NewPCG(seed, 99))
	lo := dc.winMid - dc.window/2
	hi := lo + dc.window
	blocks := l.BlockSizes()
	paTop := uint64(1) << l.PABits
	// A random range: pages, around a block, or a whole block.
	randRange := func() (uint64, uint64) {
		switch rng.IntN(4) {
		case 0, 1:
			n := 1 + rng.Uint64N(64)
			if rng.IntN(3) == 0 {
				n = 1 // one page: Map's one-leaf fast path when tables exist
			}
			s := lo + rng.Uint64N((hi-lo)/g-n)*g
			return s, n * g
		default:
			var bs uint64
			for _, b := range blocks {
				if b <= dc.window/4 && b/g <= 1<<14 {
					bs = b
					break
				}
			}
			if bs == 0 {
				bs = 16 * g
			}
			s := lo + rng.Uint64N((hi-lo)/bs-2)*bs
			size := bs * (1 + rng.Uint64N(2))
			if rng.IntN(2) == 0 { // ragged ends
				s += rng.Uint64N(bs/g) * g
				size -= rng.Uint64N(bs/g) * g
			}
			return s, size
		}
	}
	var m refModel
	mapped := 0
	for op := 0; op < nops; op++ {
		s, size := randRange()
		var desc string
		switch k := rng.IntN(10); {
		case k < 4:
			flags := MapFlags(0)
			if rng.IntN(3) != 0 {
				flags |= MapBlocks
			}
			var pa uint64
			big := uint64(1) << 30
			if len(blocks) > 0 {
				big = blocks[0]
			}
			if rng.IntN(3) != 0 { // congruent with the IPA modulo the largest block
				pa = rng.Uint64N(paTop/big-1)*big + s%big
			} else {
				pa = rng.Uint64N(paTop/g-size/g) * g
			}
			if pa+size > paTop {
				pa = paTop - size - s%g
			}
			p := randProt(rng)
			desc = fmt.Sprintf("map %#x+%#x -> %#x prot %#x flags %d", s, size, pa, p, flags)
			r.mapRange(mem.IPA(s), mem.PA(pa), size, p, flags)
			m.add(s, size, pa, p)
		case k < 5:
			desc = fmt.Sprintf("unmap %#x+%#x", s, size)
			ws, we := r.leafSpan(s, s+size)
			r.unmap(mem.IPA(s), size)
			m.remove(ws, we)
		case k < 6:
			desc = fmt.Sprintf("unmap exactly %#x+%#x", s, size)
			r.topup(r.vm.EdgePagesNeeded(mem.IPA(s), size))
			if err := r.vm.UnmapExact(r.c, mem.IPA(s), size); err != nil {
				t.Fatal(desc, err)
			}
			m.remove(s, s+size)
		case k < 7:
			desc = fmt.Sprintf("wrprotect %#x+%#x", s, size)
			ws, we := r.leafSpan(s, s+size)
			if err := r.vm.WriteProtect(mem.IPA(s), size); err != nil {
				t.Fatal(desc, err)
			}
			m.modify(ws, we, func(p Prot) Prot { return p &^ ProtW })
		case k < 8:
			p := Prot(rng.IntN(8))
			desc = fmt.Sprintf("relax %#x+%#x %#x", s, size, p)
			r.topup(r.vm.EdgePagesNeeded(mem.IPA(s), size))
			if err := r.vm.Relax(r.c, mem.IPA(s), size, p); err != nil {
				t.Fatal(desc, err)
			}
			m.modify(s, s+size, func(q Prot) Prot { return q | p })
		case k < 9:
			if rng.IntN(2) == 0 {
				desc = fmt.Sprintf("split %#x+%#x", s, size)
				r.topup(r.vm.SplitPagesNeeded(mem.IPA(s), size))
				if err := r.vm.Split(r.c, mem.IPA(s), size); err != nil {
					t.Fatal(desc, err)
				}
			} else {
				desc = fmt.Sprintf("collapse %#x+%#x", s, size)
				if _, err := r.vm.Collapse(mem.IPA(s), size); err != nil {
					t.Fatal(desc, err)
				}
			}
		default:
			desc = fmt.Sprintf("mkold %#x+%#x", s, size)
			if _, err := r.vm.MkOld(mem.IPA(s), size); err != nil {
				t.Fatal(desc, err)
			}
		}
		// Samples: the range's edges and a few random IPAs in the window.
		samples := []uint64{s, s + size - 8, s + size, s - 1, s + size/2}
		for j := 0; j < 24; j++ {
			samples = append(samples, lo+rng.Uint64N(hi-lo))
		}
		for _, ipa := range samples {
			if ipa < lo || ipa >= hi {
				continue
			}
			if _, _, ok := m.lookup(ipa); ok {
				mapped++
			}
			if err := r.compare(&m, ipa); err != nil {
				t.Fatalf("op %d (%s): %v", op, desc, err)
			}
			// Lookup finds the leaf (or the invalid entry) the
			// hardware walk ends at.
			tr := r.hw(ipa)
			d, lvl, err := r.vm.Lookup(mem.IPA(ipa))
			if err != nil || tr.Fault.IsFault() != (d&1 == 0) || !tr.Fault.IsFault() && (int8(lvl) != tr.S2Level || l.Format.LeafOA(d, lvl) != uint64(tr.OA)&^(1<<tr.S2BlockBits-1)) {
				t.Fatalf("op %d (%s): IPA %#x: Lookup %#x level %d, %v; hardware %v OA %#x level %d", op, desc, ipa, d, lvl, err, tr.Fault, tr.OA, tr.S2Level)
			}
		}
		r.checkCounts()
	}
	if mapped < nops/20 {
		t.Fatalf("only %d of %d samples were mapped: the test is not exercising mappings", mapped, nops)
	}
	// Unmapping the window returns the memory to the root alone, once
	// the tables kept empty are trimmed.
	r.unmap(mem.IPA(lo), hi-lo)
	r.checkCounts()
	// Left: the tables kept empty and the tables above them.
	if st, above := r.vm.Stats(), 2-l.StartLevel; st.EmptyTables > keepDefault || st.Tables > st.EmptyTables*(1+above) {
		t.Fatalf("after unmapping everything: %d tables, %d of them kept empty (at most %d, with %d tables above each)", st.Tables, st.EmptyTables, keepDefault, above)
	}
	if _, err := r.vm.Trim(); err != nil {
		t.Fatal(err)
	}
	r.checkCounts()
	if st := r.vm.Stats(); st.Tables != 0 || st.TableBytes != l.RootBytes {
		t.Fatalf("after unmapping everything: %d tables, %d bytes; want 0 and the root's %d", st.Tables, st.TableBytes, l.RootBytes)
	}
	if err := r.c.Release(); err != nil {
		t.Fatal(err)
	}
	st := r.vm.Stats()
	if st.ReserveBytes > reserveMax*l.TableBytes {
		t.Fatalf("reserve %d bytes, more than %d pages", st.ReserveBytes, reserveMax)
	}
	if got := r.tm.InUse(); got != l.RootBytes+st.ReserveBytes {
		t.Fatalf("table memory in use %d, want the root's %d and the reserve's %d", got, l.RootBytes, st.ReserveBytes)
	}
	t.Logf("%d mapped samples, %d BBM, %d TLBIs", mapped, r.vm.Stats().BBM, r.vm.Stats().TLBIs)
	if err := r.vm.Destroy(); err != nil {
		t.Fatal(err)
	}
	if got := r.tm.InUse(); got != 0 {
		t.Fatalf("table memory in use after Destroy: %d", got)
	}
}

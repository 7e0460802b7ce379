package s2pt

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// Expectations from AArch64.S2InconsistentSL / S2StartLevel and the rule
// "fewest levels with at most 16 concatenated tables, at least two levels".
func TestLayout(t *testing.T) {
	const (
		g4  = sysreg.Granule4K
		g16 = sysreg.Granule16K
		g64 = sysreg.Granule64K
	)
	cases := []struct {
		ipa     uint
		g       sysreg.Granule
		concat  int
		start   int
		entries uint64
		tables  int
		sl0     uint
		sl2, ds bool
		tg0enc  uint64
	}{
		{32, g4, 0, 2, 2048, 4, 0, false, false, 0},
		{36, g4, 0, 1, 64, 1, 1, false, false, 0},
		{39, g4, 0, 1, 512, 1, 1, false, false, 0},
		{40, g4, 0, 1, 1024, 2, 1, false, false, 0},
		{42, g4, 0, 1, 4096, 8, 1, false, false, 0},
		{43, g4, 0, 1, 8192, 16, 1, false, false, 0},
		{44, g4, 0, 0, 32, 1, 2, false, false, 0},
		{48, g4, 0, 0, 512, 1, 2, false, false, 0},
		{52, g4, 0, 0, 8192, 16, 2, false, true, 0},
		{52, g4, 1, -1, 16, 1, 0, true, true, 0},
		{40, g4, 1, 0, 2, 1, 2, false, false, 0},
		{36, g16, 0, 2, 2048, 1, 1, false, false, 2},
		{40, g16, 0, 2, 32768, 16, 1, false, false, 2},
		{42, g16, 0, 1, 64, 1, 2, false, false, 2},
		{48, g16, 0, 1, 4096, 2, 2, false, false, 2},
		{52, g16, 0, 0, 32, 1, 3, false, true, 2},
		{32, g64, 0, 2, 8, 1, 1, false, false, 1},
		{42, g64, 0, 2, 8192, 1, 1, false, false, 1},
		{46, g64, 0, 2, 131072, 16, 1, false, false, 1},
		{48, g64, 0, 1, 64, 1, 2, false, false, 1},
		{52, g64, 0, 1, 1024, 1, 2, false, false, 1},
	}
	for _, tc := range cases {
		cfg := defaultCfg(tc.ipa, tc.g)
		cfg.MaxConcat = tc.concat
		l, err := NewLayout(cfg)
		if err != nil {
			t.Errorf("%v/%d: %v", tc.g, tc.ipa, err)
			continue
		}
		v := l.VTCR
		if l.StartLevel != tc.start || l.RootEntries != tc.entries || l.RootTables != tc.tables ||
			v.SL0() != tc.sl0 || v.SL2() != tc.sl2 || v.DS() != tc.ds || v.T0SZ() != 64-tc.ipa || v.TG0() != tc.g {
			t.Errorf("%v/%d concat %d: start %d entries %d tables %d SL0 %d SL2 %v DS %v T0SZ %d TG0 %v; want start %d entries %d tables %d SL0 %d SL2 %v DS %v",
				tc.g, tc.ipa, tc.concat, l.StartLevel, l.RootEntries, l.RootTables, v.SL0(), v.SL2(), v.DS(), v.T0SZ(), v.TG0(),
				tc.start, tc.entries, tc.tables, tc.sl0, tc.sl2, tc.ds)
		}
		if uint64(v)>>14&3 != tc.tg0enc || v.SH0() != 3 || uint64(v)>>8&0xf != 5 || uint64(v)>>31&1 != 1 {
			t.Errorf("%v/%d: VTCR %#x: TG0/SH0/IRGN0/ORGN0/RES1 wrong", tc.g, tc.ipa, uint64(v))
		}
		if ps, _ := sysreg.PASizeBits(v.PS()); ps != l.PABits || (tc.ds && ps != 52) {
			t.Errorf("%v/%d: PS %d bits, PABits %d", tc.g, tc.ipa, ps, l.PABits)
		}
	}
}

func TestLayoutRejects(t *testing.T) {
	noLPA2 := defaultCfg(52, sysreg.Granule4K)
	noLPA2.MMFR0 = noLPA2.MMFR0&^(0xf<<40) | 2<<40 // TGran4_2 = 2: 4K without LPA2
	pa48 := defaultCfg(48, sysreg.Granule4K)
	pa48.MMFR0 = pa48.MMFR0&^0xf | 5
	no64 := defaultCfg(40, sysreg.Granule64K)
	no64.MMFR0 = no64.MMFR0&^(0xf<<36) | 1<<36 // TGran64_2 = 1
	noHA := defaultCfg(40, sysreg.Granule4K)
	noHA.MMFR1 &^= 0xf
	noHA.HA = true
	hdNoHA := defaultCfg(40, sysreg.Granule4K)
	hdNoHA.HD = true
	pa40 := defaultCfg(44, sysreg.Granule4K)
	pa40.MMFR0 = pa40.MMFR0&^0xf | 2
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"ipa31", defaultCfg(31, sysreg.Granule4K), "31 bits"},
		{"ipa53", defaultCfg(53, sysreg.Granule4K), "53 bits"},
		{"52 without LPA2", noLPA2, "52 bits exceeds"},
		{"52 with PARange 48", func() Config { c := pa48; c.IPABits = 52; return c }(), "52 bits exceeds"},
		{"PA 52 with PARange 48", func() Config { c := pa48; c.PABits = 52; return c }(), "PA size 52"},
		{"PA 50", func() Config { c := defaultCfg(40, sysreg.Granule4K); c.PABits = 50; return c }(), "PA size 50"},
		{"64K not at stage 2", no64, "64K granule is not implemented"},
		{"HA without HAFDBS", noHA, "HAFDBS is 0"},
		{"HD without HA", hdNoHA, "HD requested"},
		{"IPA above PARange", pa40, "44 bits exceeds"},
		{"MaxConcat 3", func() Config { c := defaultCfg(40, sysreg.Granule4K); c.MaxConcat = 3; return c }(), "MaxConcat 3"},
		{"granule", Config{IPABits: 40, Granule: sysreg.GranuleInvalid}, "granule 0"},
	}
	for _, tc := range cases {
		_, err := NewLayout(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

// TestLayoutWalkable maps pages at the bottom, the top and across the root's
// concatenation boundary of every layout and checks the hardware model
// translates them with the VM's VTCR/VTTBR.
func TestLayoutWalkable(t *testing.T) {
	cfgs := []struct {
		ipa    uint
		g      sysreg.Granule
		concat int
	}{
		{32, sysreg.Granule4K, 0}, {40, sysreg.Granule4K, 0}, {43, sysreg.Granule4K, 0}, {48, sysreg.Granule4K, 0},
		{52, sysreg.Granule4K, 0}, {52, sysreg.Granule4K, 1}, {36, sysreg.Granule16K, 0}, {40, sysreg.Granule16K, 0},
		{48, sysreg.Granule16K, 0}, {52, sysreg.Granule16K, 0}, {32, sysreg.Granule64K, 0}, {46, sysreg.Granule64K, 0},
		{48, sysreg.Granule64K, 0}, {52, sysreg.Granule64K, 0},
	}
	for _, c := range cfgs {
		cfg := defaultCfg(c.ipa, c.g)
		cfg.MaxConcat = c.concat
		r := newRig(t, cfg, 64*mib)
		l := r.vm.Layout()
		g := l.TableBytes
		top := uint64(1)<<c.ipa - g
		// First entry of the second concatenated root table, if any.
		second := uint64(0)
		if l.RootTables > 1 {
			second = uint64(1) << (l.leafBits(l.StartLevel) + l.Format.Stride())
		}
		pa := uint64(1)<<l.PABits - 16*g // exercises the high OA bits
		for i, ipa := range []uint64{0, top, second, second + g} {
			opa := pa + uint64(i)*g
			r.mapRange(mem.IPA(ipa), mem.PA(opa), g, ProtR|ProtW, 0)
			tr := r.hw(ipa + 8)
			if tr.Fault.IsFault() || tr.OA != mem.PA(opa+8) || !tr.Perms.W1 || tr.Perms.X1 {
				t.Errorf("%v/%d concat %d: IPA %#x: %v OA %#x perms %+v, want OA %#x RW", c.g, c.ipa, c.concat, ipa, tr.Fault, tr.OA, tr.Perms, opa+8)
			}
		}
		if l.RootTables > 1 {
			// The page mapped at 'second' lives in the second root table.
			d, _ := r.tm.Read64(r.vm.Root() + mem.PA(l.TableBytes))
			if d&1 == 0 {
				t.Errorf("%v/%d: IPA %#x not under the second concatenated table", c.g, c.ipa, second)
			}
		}
		r.checkCounts()
	}
}

// TestTableOA holds the manager's branch-free output-address extraction
// and insertion to desc.Format's, in every layout, for random descriptors.
func TestTableOA(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, cfg := range []Config{
		defaultCfg(40, sysreg.Granule4K), defaultCfg(52, sysreg.Granule4K), defaultCfg(48, sysreg.Granule16K),
		defaultCfg(52, sysreg.Granule16K), defaultCfg(42, sysreg.Granule64K), defaultCfg(52, sysreg.Granule64K),
	} {
		tm, err := NewFlatTables(tableBase, 1*mib)
		if err != nil {
			t.Fatal(err)
		}
		vm, err := New(cfg, tm, nil)
		if err != nil {
			t.Fatal(err)
		}
		f := vm.layout.Format
		for i := 0; i < 10000; i++ {
			d := rng.Uint64()
			if got, want := vm.tableOA(d), mem.PA(f.TableOA(d)); got != want {
				t.Fatalf("%+v: tableOA(%#x) = %#x, want %#x", f, d, uint64(got), uint64(want))
			}
			oa := rng.Uint64() & (1<<vm.layout.PABits - 1) &^ (vm.layout.TableBytes - 1)
			if got, want := vm.withOA(d, oa), f.WithOA(d, oa); got != want {
				t.Fatalf("%+v: withOA(%#x, %#x) = %#x, want %#x", f, d, oa, got, want)
			}
		}
	}
}

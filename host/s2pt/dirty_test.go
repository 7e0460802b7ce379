package s2pt

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

func hdCfg() Config {
	cfg := defaultCfg(40, sysreg.Granule4K)
	cfg.HA, cfg.HD = true, true
	return cfg
}

// TestClearDirty: pages mapped writable-clean (MapClean) are written by
// the hardware walker without a fault, which sets S2AP[1]; ClearDirty
// reports exactly those pages, makes them clean again (with the
// invalidation a removed write permission needs), and a second harvest
// reports nothing until they are written again. A writable page mapped
// without DBM is reported (its writes are untracked) and starts being
// tracked.
func TestClearDirty(t *testing.T) {
	r := newRig(t, hdCfg(), 16*mib)
	const base, n = 0x4000_0000, 64
	r.mapRange(base, 0x8000_0000, n*4096, ProtR|ProtW, MapClean)
	r.mapRange(base+n*4096, 0x9000_0000, 4096, ProtR|ProtW, 0) // untracked
	r.mapRange(base+(n+1)*4096, 0x9000_1000, 4096, ProtR, 0)   // read-only
	write := func(ipa uint64) vmsa.Translation {
		return r.w.TranslateS2(&r.regs, mem.IPA(ipa), vmsa.Access{Kind: vmsa.Write, EL: 1})
	}
	harvest := func() []uint64 {
		t.Helper()
		var got []uint64
		cnt, err := r.vm.ClearDirty(base, (n+2)*4096, func(ipa mem.IPA, size uint64) { got = append(got, (uint64(ipa)-base)/4096) })
		if err != nil || cnt != len(got) {
			t.Fatalf("ClearDirty: %d, %v (reported %v)", cnt, err, got)
		}
		return got
	}
	if got := harvest(); len(got) != 1 || got[0] != n {
		t.Fatalf("first harvest %v, want the untracked page %d", got, n)
	}
	for _, p := range []uint64{3, 17, 63, n} {
		if tr := write(base + p*4096); tr.Fault.IsFault() {
			t.Fatalf("write to clean page %d faulted: %v", p, tr.Fault)
		}
	}
	if tr := write(base + (n+1)*4096); tr.Fault.Kind != vmsa.FaultPermission {
		t.Fatalf("write to the read-only page: %v, want a permission fault", tr.Fault)
	}
	r.rec.take()
	r.rec.enable = true
	got := harvest()
	r.rec.enable = false
	if want := []uint64{3, 17, 63, n}; !equal(got, want) {
		t.Fatalf("harvest %v, want %v", got, want)
	}
	tlbis := 0
	for _, e := range r.rec.take() {
		if e.kind == "tlbi-range" {
			tlbis++
		}
	}
	if tlbis == 0 {
		t.Error("cleaning dirty pages issued no invalidation")
	}
	for _, p := range []uint64{3, 17} {
		d, _, _ := r.vm.Lookup(mem.IPA(base + p*4096))
		if d&desc.S2APWriteBit != 0 || d&desc.DBMBit == 0 {
			t.Errorf("page %d after harvest: %#x, want writable-clean", p, d)
		}
	}
	if got := harvest(); len(got) != 0 {
		t.Fatalf("second harvest %v, want none", got)
	}
	write(base + 17*4096)
	if got := harvest(); !equal(got, []uint64{17}) {
		t.Fatalf("harvest after one write %v, want [17]", got)
	}
	r.checkCounts()

	// Without HD both are refused.
	r2 := newRig(t, defaultCfg(40, sysreg.Granule4K), 4*mib)
	r2.topup(8)
	if err := r2.vm.Map(r2.c, 0, 0, 4096, ProtR|ProtW, MapClean); err == nil {
		t.Error("MapClean accepted without HD")
	}
	if _, err := r2.vm.ClearDirty(0, 4096, nil); err == nil {
		t.Error("ClearDirty accepted without HD")
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// BenchmarkDirtyTracking compares the two ways of finding the pages a
// guest wrote, per page written (the guest writes every page of 4 MiB of
// 4K pages once per round, through the modelled walker; no TLB):
//
//   - write-protect: harvest by WriteProtect of the range; each first
//     write takes a permission fault, which the hypervisor resolves by
//     Relax of the page (and records), then the write walks again;
//   - dbm: hardware dirty state (VTCR_EL2.HD, MapClean): each write sets
//     S2AP[1] in its walk; harvest by ClearDirty of the range.
//
// The model charges no exception entry and return for a fault (on
// hardware the larger part of its cost), so the figure understates what
// DBM saves.
func BenchmarkDirtyTracking(b *testing.B) {
	const base, pages = 0x4000_0000, 1024
	for _, mode := range []string{"write-protect", "dbm"} {
		b.Run(mode, func(b *testing.B) {
			r := newRig(b, hdCfg(), 16*mib)
			flags := MapFlags(0)
			if mode == "dbm" {
				flags = MapClean
			}
			r.mapRange(base, 0x8000_0000, pages*4096, ProtR|ProtW, flags)
			r.topup(8)
			dirty := make([]bool, pages)
			mark := func(ipa mem.IPA, size uint64) { dirty[(uint64(ipa)-base)/4096] = true }
			wr := vmsa.Access{Kind: vmsa.Write, EL: 1}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if mode == "dbm" {
					if _, err := r.vm.ClearDirty(base, pages*4096, mark); err != nil {
						b.Fatal(err)
					}
				} else if err := r.vm.WriteProtect(base, pages*4096); err != nil {
					b.Fatal(err)
				}
				for p := uint64(0); p < pages; p++ {
					ipa := mem.IPA(base + p*4096)
					tr := r.w.TranslateS2(&r.regs, ipa, wr)
					if tr.Fault.Kind == vmsa.FaultPermission {
						if err := r.vm.Relax(r.c, ipa, 4096, ProtW); err != nil {
							b.Fatal(err)
						}
						mark(ipa, 4096)
						tr = r.w.TranslateS2(&r.regs, ipa, wr)
					}
					if tr.Fault.IsFault() {
						b.Fatal(tr.Fault)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pages), "ns/page")
		})
	}
}

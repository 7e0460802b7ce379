package nested

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// Shadows populated for the invalidation benchmark: each maps L2 IPAs
// [invL2, invL2+invSpan) with 4K leaves derived from the same L1 IPAs
// [invL1, invL1+invSpan) (L1 runs N VMs, or N stage-2 contexts, over one
// memory: the worst case for the reverse map, since a host change of one
// L1 page reaches every shadow), whose host frames are invPA onwards.
const (
	invL2   = 0x8000_0000
	invL1   = 0x4000_0000
	invPA   = 0x1_0000_0000
	invSpan = 1 << 30
)

type invRig struct {
	h   *kvm.Host
	k   *kvm.VM
	vm  *VM
	shs []*shadowMMU
}

func newInvRig(b *testing.B, n int, on bool) *invRig {
	b.Helper()
	must := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	h, err := kvm.NewHost(kvm.Config{CPUs: 2, MemBytes: uint64(n+4) * 4 << 20})
	must(err)
	k, err := h.NewVM(kvm.VMConfig{IPABits: 40})
	must(err)
	vm, err := New(k, Config{VCPUs: (n + 1) / 2, ShadowsPerVCPU: 2, NoReverseMap: !on})
	must(err)
	ir := &invRig{h: h, k: k, vm: vm}
	b.Cleanup(func() {
		_ = vm.Close()
		_ = k.Destroy()
		_ = h.Close()
	})
	l, err := s2pt.NewLayout(s2pt.Config{IPABits: 40, Granule: sysreg.Granule4K, MMFR0: h.ID().MMFR0, MMFR1: h.ID().MMFR1})
	must(err)
	for i := 0; i < n; i++ {
		g := guestRegs{vtcr: l.VTCR, vttbr: sysreg.VTTBR(uint64(i+1)<<48 | 0x4300_0000), hcr: sysreg.HCR_VM, id: vm.ids}
		sh, err := vm.acquire(&g)
		must(err)
		vm.release(sh)
		ir.shs = append(ir.shs, sh)
		ir.populate(b, sh)
	}
	return ir
}

// populate maps the shadow's whole span with 4K leaves (one Map: the
// cost is not the benchmark's) and records it in the reverse map as the
// shadow faults would have (2 MiB extents).
func (ir *invRig) populate(b *testing.B, sh *shadowMMU) {
	b.Helper()
	if err := cacheFor(sh, 0).Topup(sh.s2.MapPagesNeeded(invL2, invPA, invSpan, 0)); err != nil {
		b.Fatal(err)
	}
	ir.vm.k.LockMMU()
	defer ir.vm.k.UnlockMMU()
	if err := sh.s2.Map(cacheFor(sh, 0), invL2, invPA, invSpan, s2pt.ProtR|s2pt.ProtW|s2pt.ProtX, s2pt.MapSW(4)); err != nil {
		b.Fatal(err)
	}
	ir.vm.pool.rmap.insert(sh.idx, invL2, invL1, invSpan, 4, s2pt.ProtR|s2pt.ProtX)
}

// refill maps the page at L1 IPA l1 back into every shadow (after the
// reverse map's invalidation removed it there).
func (ir *invRig) refill(b *testing.B, l1 mem.IPA) {
	off := uint64(l1 - invL1)
	for _, sh := range ir.shs {
		if err := cacheFor(sh, 0).Topup(sh.s2.MapPagesNeeded(mem.IPA(invL2+off), mem.PA(invPA+off), 4096, 0)); err != nil {
			b.Fatal(err)
		}
		ir.vm.k.LockMMU()
		err := sh.s2.Map(cacheFor(sh, 0), mem.IPA(invL2+off), mem.PA(invPA+off), 4096, s2pt.ProtR|s2pt.ProtW|s2pt.ProtX, s2pt.MapSW(4))
		ir.vm.pool.rmap.insert(sh.idx, NestedIPA(invL2+off), l1, 4096, 4, s2pt.ProtR|s2pt.ProtX)
		ir.vm.k.UnlockMMU()
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHostInvalidate4K: the nested part of one 4K MMU-notifier
// invalidation of an L1 page (kvm.NestedHooks.CanonicalUnmapped, under the
// MMU lock) with N shadow MMUs each populated over 1 GiB of 4K leaves
// derived from that page's GiB: with the reverse map (the N leaves derived
// from the page go) against full unmap (mainline: every shadow emptied).
// The shadows are restored between iterations, not timed.
func BenchmarkHostInvalidate4K(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		for _, on := range []bool{true, false} {
			name := "reverse map"
			if !on {
				name = "full unmap"
			}
			b.Run(fmt.Sprintf("N=%d/%s", n, name), func(b *testing.B) {
				ir := newInvRig(b, n, on)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					l1 := mem.IPA(invL1 + uint64(i*4097)%(invSpan>>12)<<12)
					ir.vm.k.LockMMU()
					ir.vm.CanonicalUnmapped(l1, 4096)
					ir.vm.k.UnlockMMU()
					b.StopTimer()
					if err := ir.vm.Err(); err != nil {
						b.Fatal(err)
					}
					for _, sh := range ir.shs {
						if d, _, _ := sh.s2.Lookup(mem.IPA(invL2 + (l1 - invL1))); d&1 != 0 {
							b.Fatalf("a shadow still maps the invalidated page")
						}
					}
					if on {
						ir.refill(b, l1)
					} else {
						for _, sh := range ir.shs {
							ir.populate(b, sh)
						}
					}
					b.StartTimer()
				}
			})
		}
	}
}

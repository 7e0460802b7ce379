package hostmm

import (
	"fmt"

	"github.com/nestmmu/nestmmu/mem"
)

// Check verifies the kernel's invariants and returns the first violation.
// Call it while no event, fault or access runs. It checks that every
// present entry holds one reference on its frame and the stable tree one
// on each KSM page (so the arena's count for each such frame is exactly
// the number counted), that huge entries form whole, aligned, contiguous
// blocks, that KSM entries are read-only, and that every swap slot in use
// is held by exactly one entry.
func (k *Kernel) Check() error {
	refs := make(map[mem.PA]int32)
	slots := make(map[uint64]bool)
	seen := make(map[*backing]bool)
	n := 1 << k.chunkShift
	for _, as := range *k.spaces.Load() {
		for _, v := range *as.vmas.Load() {
			b := v.b
			if seen[b] {
				continue
			}
			seen[b] = true
			for i := 0; i < b.npages; i++ {
				e := pte(b.ptes[i].Load())
				switch {
				case e.present():
					refs[e.pa()]++
					if e&pteKSM != 0 && e&pteWrite != 0 {
						return fmt.Errorf("hostmm: KSM entry %d of region %#x is writable", i, uint64(v.start))
					}
					if e&pteHuge != 0 {
						c0 := i &^ (n - 1)
						base := pte(b.ptes[c0].Load()).pa()
						if uint64(base-k.arena.Base())%HugeSize != 0 {
							return fmt.Errorf("hostmm: huge page at entry %d has unaligned block %#x", c0, uint64(base))
						}
						want := base + mem.PA(uint64(i-c0)<<k.pageShift)
						f := pte(b.ptes[c0].Load())
						if e.pa() != want || e&pteWrite != f&pteWrite {
							return fmt.Errorf("hostmm: huge entry %d maps %#x, want %#x", i, uint64(e.pa()), uint64(want))
						}
					}
				case e&pteSwap != 0:
					if slots[e.slot()] {
						return fmt.Errorf("hostmm: swap slot %d held twice", e.slot())
					}
					slots[e.slot()] = true
				case e != 0:
					return fmt.Errorf("hostmm: entry %d of region %#x in state %#x", i, uint64(v.start), uint64(e))
				}
			}
		}
	}
	k.ksm.mu.Lock()
	for _, l := range k.ksm.stable {
		for _, kpa := range l {
			refs[kpa]++
		}
	}
	k.ksm.mu.Unlock()
	for pa, r := range refs {
		if got := k.arena.Ref(pa); got != r {
			return fmt.Errorf("hostmm: frame %#x has %d references, %d counted", uint64(pa), got, r)
		}
	}
	if used := k.swap.inUse(); used < len(slots) {
		return fmt.Errorf("hostmm: %d swap slots in use, %d held", used, len(slots))
	}
	return nil
}

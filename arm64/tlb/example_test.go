package tlb_test

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

// A guest's 2MB block is cached, hit at any offset, and removed by
// TLBI VAE1 with the guest's ASID and a TTL hint of "4K granule, level 2".
func Example() {
	t := tlb.MustNew(tlb.Config{}) // 256 sets x 4 ways, 16-entry micro-TLBs
	tr := vmsa.Translation{OA: 0x8020_0000, Level: 2, BlockBits: 21, NG: true, ASID: 5,
		Perms: vmsa.Perms{R1: true, W1: true}}
	t.Fill(vmsa.RegimeEL10, 1, 0x4020_0000, &tr)

	rd := vmsa.Access{Kind: vmsa.Read, EL: 1}
	pa, r := t.LookupPA(vmsa.RegimeEL10, 1, 5, 0x403f_f010, rd)
	fmt.Printf("%v %#x\n", r, pa)

	// Xt: ASID[63:48]=5, TTL[47:44]=0b0110, VA[55:12] in [43:0].
	xt := uint64(5)<<48 | 0b0110<<44 | 0x4030_0000>>12
	n, _ := t.Invalidate(tlb.OpVAE1, xt, tlb.Context{EL: 1, VMID: 1, ASID16: true})
	_, r = t.Lookup(vmsa.RegimeEL10, 1, 5, 0x4020_0000, rd)
	fmt.Println(n, r)
	// Output:
	// hit 0x803ff010
	// 1 miss
}

package hostmm

import (
	"errors"
	"testing"

	"github.com/nestmmu/nestmmu/host/hostmem"
	"github.com/nestmmu/nestmmu/mem"
)

// TestCollapseOfHugePage: Collapse of a chunk a huge page already maps
// fails with ErrAlreadyHuge (issue 14 item 7: the error had no sentinel).
func TestCollapseOfHugePage(t *testing.T) {
	k := newKernel(t, 16<<20, 4096)
	as := k.NewAddressSpace()
	hva, err := as.Mmap(HugeSize, MapHuge)
	if err != nil {
		t.Fatal(err)
	}
	if err := as.Write(hva, 8, 1); err != nil {
		t.Fatal(err)
	}
	if err := as.Collapse(hva); !errors.Is(err, ErrAlreadyHuge) {
		t.Fatalf("Collapse of a huge page: %v, want ErrAlreadyHuge", err)
	}
}

// TestKSMFramesFreedOnExit: when the last mappings of KSM pages go (the
// processes exit), their frames are free at once, not at the next scan
// (issue 14 item 7).
func TestKSMFramesFreedOnExit(t *testing.T) {
	k := newKernel(t, 16<<20, 4096)
	base := k.Arena().Stats().InUse
	var spaces []*AddressSpace
	for i := 0; i < 2; i++ {
		as := k.NewAddressSpace()
		hva, err := as.Mmap(4*4096, MapMergeable)
		if err != nil {
			t.Fatal(err)
		}
		for p := HVA(0); p < 4*4096; p += 4096 {
			if err := as.Write(hva+p, 8, 0x5a); err != nil {
				t.Fatal(err)
			}
		}
		spaces = append(spaces, as)
	}
	k.KSMScan(0)
	k.KSMScan(0)
	if k.Stats().KSMMerged == 0 {
		t.Fatal("nothing merged")
	}
	for _, as := range spaces {
		if err := as.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := k.Arena().Stats().InUse; got != base {
		t.Fatalf("%d frames in use after every process exited, want %d", got, base)
	}
}

// TestCrossingWriteAllOrNothing: a host store crossing a page boundary
// whose second page cannot be faulted in (no free frame) writes nothing
// (issue 14 item 7: the first bytes used to be written already).
func TestCrossingWriteAllOrNothing(t *testing.T) {
	k := newKernel(t, 2<<20, 4096)
	as := k.NewAddressSpace()
	hva, err := as.Mmap(2*4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := as.Write(hva, 8, 0x1111); err != nil { // the first page only
		t.Fatal(err)
	}
	var held []mem.PA
	for {
		pa, err := k.Arena().Alloc(0)
		if err != nil {
			break
		}
		held = append(held, pa)
	}
	err = as.Write(hva+4096-4, 8, 0xaabb_ccdd_eeff_0011)
	if !errors.Is(err, hostmem.ErrNoMemory) {
		t.Fatalf("crossing store with no memory for its second page: %v", err)
	}
	if v, _ := as.Read(hva+4096-4, 4); v != 0 {
		t.Fatalf("the failed store wrote its first bytes: %#x", v)
	}
	for _, pa := range held {
		_ = k.Arena().Put(pa)
	}
	if err := as.Write(hva+4096-4, 8, 0xaabb_ccdd_eeff_0011); err != nil {
		t.Fatal(err)
	}
	if v, _ := as.Read(hva+4096-4, 8); v != 0xaabb_ccdd_eeff_0011 {
		t.Fatalf("crossing store reads back %#x", v)
	}
}

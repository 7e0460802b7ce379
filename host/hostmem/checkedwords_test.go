package hostmem_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/host/hostmem"
)

// The checked view is what a PE's hit path takes its words from.
var (
	_ cpu.WordMemory         = hostmem.Checked{}
	_ cpu.FrameCheckedMemory = hostmem.Checked{}
)

// TestCheckedWords: with PoisonFreed the checked view withholds its bare
// words (Words ok false) and gives them with the frames' reference counts
// (CheckedWords), in which a freed frame's count is zero at once, so a hit
// path that checks them reports an access to it (StaleAccess) as the
// view's Read does; without PoisonFreed it gives the bare words.
func TestCheckedWords(t *testing.T) {
	for _, page := range []uint64{4096, 16384, 65536} {
		a, err := hostmem.New(hostmem.Config{Size: hostmem.BlockSize, PageSize: page, PoisonFreed: true})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		c := a.Checked()
		if _, _, ok := c.Words(); ok {
			t.Fatalf("page %d: PoisonFreed view gives its words unchecked", page)
		}
		base, words, refs, shift, ok := c.CheckedWords()
		if !ok || base != a.Base() || uint64(len(words)) != a.Size()/8 || uint64(len(refs)) != a.Size()/page || uint64(1)<<shift != page {
			t.Fatalf("page %d: CheckedWords base %#x, %d words, %d refs, shift %d, ok %v", page, base, len(words), len(refs), shift, ok)
		}
		p, _ := a.Alloc(0)
		f := uint64(p-base) >> shift
		c.Write(p+8, 8, 0x55)
		if refs[f].Load() <= 0 || words[uint64(p-base)/8+1] != 0x55 {
			t.Fatalf("page %d: live frame: ref %d, word %#x", page, refs[f].Load(), words[uint64(p-base)/8+1])
		}
		if err := a.Put(p); err != nil {
			t.Fatal(err)
		}
		if refs[f].Load() > 0 {
			t.Fatalf("page %d: freed frame has reference count %d", page, refs[f].Load())
		}
		c.StaleAccess(p+8, 8)
		_, _ = c.Read(p+16, 8)
		if n, first, ok := a.StaleAccesses(); n != 2 || !ok || first != p+8 {
			t.Errorf("page %d: %d stale accesses, first %#x; want 2, first %#x", page, n, uint64(first), uint64(p+8))
		}
	}
	a, err := hostmem.New(hostmem.Config{Size: hostmem.BlockSize})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, _, ok := a.Checked().Words(); !ok {
		t.Error("without PoisonFreed the view withholds its words")
	}
	if _, _, _, _, ok := a.Checked().CheckedWords(); ok {
		t.Error("without PoisonFreed CheckedWords gives words to check")
	}
}

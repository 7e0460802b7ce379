package mem_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nestmmu/nestmmu/mem"
)

// TestStoreWord: a reader racing with StoreWord sees only whole values
// (single-copy atomicity of an aligned 64-bit store), and the last store.
func TestStoreWord(t *testing.T) {
	const a, b = 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210
	var w uint64
	var wg sync.WaitGroup
	var stop atomic.Bool
	var torn atomic.Uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if v := atomic.LoadUint64(&w); v != 0 && v != a && v != b {
				torn.Store(v)
			}
		}
	}()
	for i := 0; i < 200000; i++ {
		v := uint64(a)
		if i&1 == 1 {
			v = b
		}
		mem.StoreWord(&w, v)
	}
	stop.Store(true)
	wg.Wait()
	if v := torn.Load(); v != 0 {
		t.Fatalf("a reader saw %#x, neither stored value", v)
	}
	if w != b {
		t.Fatalf("word %#x after the last store of %#x", w, uint64(b))
	}
}

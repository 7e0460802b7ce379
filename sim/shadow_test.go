package sim

import "testing"

// TestShadowCopyOnWrite: a forked shadow shares its parent's pages until
// either stores, then each sees only its own stores; a page dropped by
// every shadow goes back to the pool and comes out again as zeros.
func TestShadowCopyOnWrite(t *testing.T) {
	pool := newPagePool(12)
	a := newShadow(pool)
	a.mapRegion(0, 3<<12)
	a.store(0, 1, 8, 8, 0x1111)
	a.store(-1, 7, 0, 4, 0xabcd) // absolute page (trace)
	b := a.fork()
	if got := b.load(0, 1, 8, 8); got != 0x1111 {
		t.Fatalf("child reads %#x, want the parent's 0x1111", got)
	}
	b.store(0, 1, 8, 2, 0x2222)
	a.store(-1, 7, 0, 1, 0xee)
	if got, want := a.load(0, 1, 8, 8), uint64(0x1111); got != want {
		t.Errorf("parent reads %#x after the child's store, want %#x", got, want)
	}
	if got, want := b.load(0, 1, 8, 8), uint64(0x2222); got != want {
		t.Errorf("child reads %#x, want %#x", got, want)
	}
	if got, want := b.load(-1, 7, 0, 4), uint64(0xabcd); got != want {
		t.Errorf("child's absolute page reads %#x after the parent's store, want %#x", got, want)
	}
	if got, want := a.load(-1, 7, 0, 4), uint64(0xabee); got != want {
		t.Errorf("parent's absolute page reads %#x, want %#x", got, want)
	}
	if got := a.load(0, 2, 0, 8); got != 0 {
		t.Errorf("a page never stored to reads %#x", got)
	}
	b.release()
	a.unmap(0)
	// b's own copies of the region page and of the absolute page, and
	// the region page both shared; a keeps its absolute page.
	if len(pool.free) != 3 {
		t.Fatalf("%d pages back in the pool, want 3", len(pool.free))
	}
	a.mapRegion(0, 4<<12)
	for i := uint64(0); i < 4; i++ {
		a.store(0, i, 0, 1, 1)
		for off := uint64(8); off < 1<<12; off += 8 {
			if got := a.load(0, i, off, 8); got != 0 {
				t.Fatalf("reused page %d reads %#x at %#x", i, got, off)
			}
		}
	}
	if got := a.load(-1, 7, 0, 4); got != 0xabee {
		t.Errorf("the parent's absolute page reads %#x after the child's exit", got)
	}
}

// TestShadowStoreAfterFork: a page a shadow alone held, and stored to in
// place, is shared after a fork: each side's next store copies it, and
// the last holder stores to it in place again.
func TestShadowStoreAfterFork(t *testing.T) {
	pool := newPagePool(12)
	a := newShadow(pool)
	a.mapRegion(0, 1<<12)
	a.store(0, 0, 0, 8, 0x3333)
	a.store(0, 0, 0, 8, 0x3334)
	c := a.fork()
	a.store(0, 0, 0, 8, 0x4444)
	if got := c.load(0, 0, 0, 8); got != 0x3334 {
		t.Fatalf("the parent's store after a fork shows in the child: %#x", got)
	}
	c.store(0, 0, 0, 8, 0x5555)
	if got := a.load(0, 0, 0, 8); got != 0x4444 {
		t.Fatalf("the child's store shows in the parent: %#x", got)
	}
	if got := c.load(0, 0, 0, 8); got != 0x5555 {
		t.Fatalf("the child reads %#x after its store", got)
	}
	d := c.fork()
	c.release()
	d.store(0, 0, 0, 2, 0x6666)
	if got := d.load(0, 0, 0, 8); got != 0x6666 {
		t.Fatalf("the grandchild reads %#x", got)
	}
	if got := a.load(0, 0, 0, 8); got != 0x4444 {
		t.Fatalf("the grandchild's store shows in the parent: %#x", got)
	}
}

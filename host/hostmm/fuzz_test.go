package hostmm

import (
	"errors"
	"testing"

	"github.com/nestmmu/nestmmu/host/hostmem"
)

// runOps interprets prog as a sequence of operations on two address
// spaces (an anonymous region, and a shared memory object mapped by both)
// and checks them against a reference model (a map of the last value
// written at each word): every read must return the model's value, no
// operation may panic, the kernel invariants and the notifier protocol
// must hold, and teardown must return every frame.
func runOps(t *testing.T, prog []byte) { runOpsStats(t, prog) }

func runOpsStats(t *testing.T, prog []byte) Stats {
	a, err := hostmem.New(hostmem.Config{Size: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	k, _ := NewKernel(a, Config{SwapPages: 64})
	as, as2 := k.NewAddressSpace(), k.NewAddressSpace()
	var flags MapFlags
	if len(prog) > 0 {
		flags = MapFlags(prog[0]) & (MapHuge | MapMergeable)
		prog = prog[1:]
	}
	const np = 512
	anon, err := as.Mmap(np*4096, flags)
	if err != nil {
		t.Fatal(err)
	}
	sm, _ := k.NewSharedMemory(16 * 4096)
	sh1, _ := as.MmapShared(sm, 0, sm.Size())
	sh2, _ := as2.MmapShared(sm, 4*4096, 8*4096) // object pages 4..11
	pc1, pc2 := newProtocol(), newProtocol()
	as.RegisterNotifier(pc1)
	as2.RegisterNotifier(pc2)
	mmu := newSoftMMU(t, as)

	type key struct {
		shared bool
		off    uint64
	}
	model := map[key]uint64{}
	addr := func(kk key) HVA {
		if kk.shared {
			return sh1 + HVA(kk.off)
		}
		return anon + HVA(kk.off)
	}
	val := uint64(0x0102030405060708)
	for len(prog) >= 3 {
		op, x, y := prog[0], prog[1], prog[2]
		prog = prog[3:]
		page := uint64(x)*2 + uint64(y&1)
		kk := key{off: page*4096 + uint64(y>>1)%16*8}
		if op&0x80 != 0 { // shared memory object instead
			kk = key{shared: true, off: uint64(x)%16*4096 + uint64(y)%16*8}
		}
		hva := addr(kk)
		val = val*6364136223846793005 + 1442695040888963407
		switch op & 0x7f % 11 {
		case 0: // host store
			if err := as.Write(hva, 8, val); err != nil {
				if errors.Is(err, hostmem.ErrNoMemory) {
					continue
				}
				t.Fatalf("write %#x: %v", uint64(hva), err)
			}
			model[kk] = val
		case 1: // guest store through the secondary MMU
			if _, err := mmu.access(hva, true, 8, val); err != nil {
				if errors.Is(err, hostmem.ErrNoMemory) {
					continue
				}
				t.Fatalf("guest write %#x: %v", uint64(hva), err)
			}
			model[kk] = val
		case 2: // byte store
			b := uint64(y % 8)
			if err := as.Write(hva+HVA(b), 1, val&0xff); err != nil {
				if errors.Is(err, hostmem.ErrNoMemory) {
					continue
				}
				t.Fatal(err)
			}
			model[kk] = model[kk]&^(0xff<<(8*b)) | (val&0xff)<<(8*b)
		case 3: // loads through both paths
			g1, err1 := as.Read(hva, 8)
			g2, err2 := mmu.access(hva, false, 8, 0)
			if (err1 == nil && g1 != model[kk]) || (err2 == nil && g2 != model[kk]) {
				t.Fatalf("read %#x = %#x / %#x, model %#x", uint64(hva), g1, g2, model[kk])
			}
		case 4:
			as.SwapOut(hva)
		case 5:
			as.Migrate(hva)
		case 6:
			if y&2 == 0 {
				as.SplitHuge(hva)
			} else {
				as.Collapse(hva)
			}
		case 7:
			k.KSMScan(int(y % 8))
		case 8:
			as.Age(hva, y&1 == 0)
			as.TestYoung(hva)
		case 9: // the second VMM reads the shared object
			if kk.shared && kk.off >= 4*4096 && kk.off < 12*4096 {
				g, err := as2.Read(sh2+HVA(kk.off-4*4096), 8)
				if err == nil && g != model[kk] {
					t.Fatalf("second mapping reads %#x, model %#x", g, model[kk])
				}
			}
		case 10: // unmap and remap the anonymous region: contents are gone
			if err := as.Munmap(anon); err != nil {
				t.Fatal(err)
			}
			anon, err = as.Mmap(np*4096, MapFlags(y)&(MapHuge|MapMergeable))
			if err != nil {
				t.Fatal(err)
			}
			for kk := range model {
				if !kk.shared {
					delete(model, kk)
				}
			}
		}
	}
	for kk, want := range model {
		if got, err := as.Read(addr(kk), 8); err == nil && got != want {
			t.Fatalf("final read %+v = %#x, want %#x", kk, got, want)
		}
	}
	if err := k.Check(); err != nil {
		t.Fatal(err)
	}
	if mmu.stale.Load() != 0 {
		t.Fatal("stale frame installed")
	}
	st := k.Stats()
	as.Close()
	as2.Close()
	sm.Close()
	pc1.check(t)
	pc2.check(t)
	k.KSMScan(0)
	if s := a.Stats(); s.InUse != 0 || k.Stats().SwapUsed != 0 {
		t.Fatalf("teardown left %d frames, %d swap slots", s.InUse, k.Stats().SwapUsed)
	}
	return st
}

func FuzzAddressSpaceOps(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 3, 1, 2, 4, 1, 2, 3, 1, 2})
	f.Add([]byte{1, 0, 0, 0, 6, 0, 0, 0, 0, 1, 5, 0, 1, 4, 0, 1, 3, 0, 1, 3, 0, 0})
	f.Add([]byte{2, 0, 1, 0, 0, 2, 0, 7, 0, 0, 3, 1, 0, 1, 2, 0, 7, 0, 0, 3, 2, 0, 1, 1, 2, 3, 1, 2})
	f.Add([]byte{3, 0, 5, 5, 0x80, 5, 6, 0x84, 5, 6, 0x89, 5, 6, 0x85, 5, 6, 0x83, 5, 6, 10, 3, 3, 0, 5, 5, 3, 5, 5})
	f.Add([]byte{2, 0, 1, 1, 0, 2, 1, 0, 3, 1, 7, 0, 0, 2, 1, 1, 3, 1, 1, 8, 1, 0, 4, 1, 1, 3, 1, 1})
	f.Fuzz(runOps)
}

func TestOpsLongProgram(t *testing.T) {
	// A long deterministic program through the same interpreter.
	prog := make([]byte, 1+3*20000)
	x := uint32(12345)
	for i := range prog {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		prog[i] = byte(x)
	}
	prog[0] = byte(MapHuge | MapMergeable)
	for i := 1; i+2 < len(prog); i += 3 {
		prog[i+1] %= 8 // few pages: events hit touched pages
		if prog[i]&0x7f%11 == 10 && prog[i+2]%16 != 0 {
			prog[i]++ // remap rarely
		}
	}
	st := runOpsStats(t, prog)
	if st.SwapIns == 0 || st.Migrations == 0 || st.COWBreaks == 0 || st.KSMMerged == 0 || st.Splits == 0 {
		t.Errorf("the program did not exercise every event: %+v", st)
	}
	t.Logf("%+v", st)
}

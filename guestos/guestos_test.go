package guestos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/mem"
)

const ramBase = 0x4000_0000

type rig struct {
	h     *kvm.Host
	vm    *kvm.VM
	vcpus []*kvm.VCPU
	os    *OS
	cores []*Core
}

// newRig boots a guest with cfg on a VM with ncpu vCPUs (one per host CPU).
func newRig(t testing.TB, cfg Config, ncpu int, hostPage uint64) *rig {
	t.Helper()
	h, err := kvm.NewHost(kvm.Config{CPUs: ncpu, MemBytes: 256 << 20, PageSize: hostPage})
	if err != nil {
		t.Fatal(err)
	}
	vm, err := h.NewVM(kvm.VMConfig{IPABits: 40})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RAMSize == 0 {
		cfg.RAMSize = 64 << 20
	}
	cfg.RAMBase, cfg.IPABits = ramBase, 40
	if _, err := vm.AddMemory(0, ramBase, cfg.RAMSize, 0, hostmm.MapHuge); err != nil {
		t.Fatal(err)
	}
	o, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{h: h, vm: vm, os: o}
	for i := 0; i < ncpu; i++ {
		v, err := vm.NewVCPU(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Load(i); err != nil {
			t.Fatal(err)
		}
		r.vcpus = append(r.vcpus, v)
		r.cores = append(r.cores, o.NewCore(v))
	}
	t.Cleanup(func() {
		for _, v := range r.vcpus {
			_ = v.Put()
		}
		if err := vm.Destroy(); err != nil {
			t.Error(err)
		}
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := r.cores[0].Boot(); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.cores[1:] {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// access runs one user access of the core's current process, handling the
// page faults it takes.
func access(c *Core, va uint64, write bool, val uint64) (uint64, error) {
	b := []kvm.BatchAccess{{VA: mem.VA(va), Size: 8, Write: write, Val: val}}
	for i := 0; i < 10; i++ {
		n, x, err := c.CPU().RunBatch(b)
		if err != nil {
			return 0, err
		}
		if n == 1 {
			return b[0].Val, nil
		}
		if err := c.HandleFault(x); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("access to %#x does not complete", va)
}

func mustAccess(t testing.TB, c *Core, va uint64, write bool, val uint64) uint64 {
	t.Helper()
	v, err := access(c, va, write, val)
	if err != nil {
		t.Fatalf("%s %#x: %v", accessName(write, false), va, err)
	}
	return v
}

func spawnEnter(t testing.TB, c *Core) *Proc {
	t.Helper()
	p, err := c.Spawn(0x40_0000)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Enter(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDemandPagingAndZeroPage: an untouched page reads 0 (the zero page,
// mapped read-only), a write then takes a permission fault and gets a page
// of its own (a copy-on-write of the zero page), values read back; the
// user runs at EL0 and the tables are in guest memory (the walk reads
// them through stage 2).
func TestDemandPagingAndZeroPage(t *testing.T) {
	r := newRig(t, Config{}, 1, 4096)
	c := r.cores[0]
	spawnEnter(t, c)
	va, err := c.Mmap(1<<20, ProtRead|ProtWrite)
	if err != nil {
		t.Fatal(err)
	}
	if r.vcpus[0].PE().EL != 0 {
		t.Fatalf("user code at EL%d", r.vcpus[0].PE().EL)
	}
	if v := mustAccess(t, c, va+0x1008, false, 0); v != 0 {
		t.Fatalf("untouched memory reads %#x", v)
	}
	mustAccess(t, c, va+0x1008, true, 0xfeed)
	mustAccess(t, c, va+0x5000, true, 0xbeef)
	if v := mustAccess(t, c, va+0x1008, false, 0); v != 0xfeed {
		t.Fatalf("read back %#x", v)
	}
	s := r.os.Stats()
	if s.DemandZero != 1 || s.COWCopy != 1 || s.DemandPage != 1 {
		t.Errorf("faults: %+v, want 1 zero-page map, 1 copy of the zero page, 1 demand page", s)
	}
	if s.TLBIs[tlb.OpVALE1.IS()] != 1 {
		t.Errorf("TLBI VALE1IS: %d, want 1 (the zero page's entry replaced)", s.TLBIs[tlb.OpVALE1.IS()])
	}
	// Outside any VMA: SIGSEGV.
	if _, err := access(c, 0x1234_0000, false, 0); !errors.Is(err, ErrSegv) {
		t.Errorf("access outside the VMAs: %v, want ErrSegv", err)
	}
}

// TestForkCopyOnWrite: after fork both processes read the parent's values;
// a write in either copies the page (the other keeps its value); the
// parent's TLB entries are invalidated by ASID at fork.
func TestForkCopyOnWrite(t *testing.T) {
	r := newRig(t, Config{}, 1, 4096)
	c := r.cores[0]
	parent := spawnEnter(t, c)
	va, err := c.Mmap(64<<10, ProtRead|ProtWrite)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 4; i++ {
		mustAccess(t, c, va+i*4096, true, 100+i)
	}
	child, err := c.Fork()
	if err != nil {
		t.Fatal(err)
	}
	if got := r.os.Stats().TLBIs[tlb.OpASIDE1.IS()]; got != 1 {
		t.Errorf("TLBI ASIDE1IS at fork: %d", got)
	}
	mustAccess(t, c, va, true, 555) // parent writes page 0: copy
	if err := c.Tick(child); err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 4; i++ {
		if v := mustAccess(t, c, va+i*4096, false, 0); v != 100+i {
			t.Errorf("child page %d reads %d, want %d", i, v, 100+i)
		}
	}
	mustAccess(t, c, va+4096, true, 777) // child writes page 1: copy
	if err := c.Exit(parent); err != nil {
		t.Fatal(err)
	}
	// Page 1's last reference is the parent's now: a write reuses it.
	mustAccess(t, c, va+4096, true, 888)
	for i, want := range []uint64{555, 888, 102, 103} {
		if v := mustAccess(t, c, va+uint64(i)*4096, false, 0); v != want {
			t.Errorf("parent page %d reads %d, want %d", i, v, want)
		}
	}
	s := r.os.Stats()
	if s.COWCopy != 2 || s.COWReuse != 1 || s.Forks != 1 || s.Exits != 1 {
		t.Errorf("stats %+v: want 2 copies, 1 reuse, 1 fork, 1 exit", s)
	}
}

// TestMunmap: unmapped pages fault as SIGSEGV afterwards; the TLB is
// invalidated per page (VAE1IS when the level-3 table went too), the frames
// and the emptied table pages return to the allocator.
func TestMunmap(t *testing.T) {
	r := newRig(t, Config{}, 1, 4096)
	c := r.cores[0]
	spawnEnter(t, c)
	before := r.os.Stats()
	va, err := c.Mmap(2<<20, ProtRead|ProtWrite) // one whole level-3 table
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 8; i++ {
		mustAccess(t, c, va+i*4096, true, i)
	}
	mid := r.os.Stats()
	if mid.PTPages <= before.PTPages {
		t.Fatalf("no page-table page allocated (%d -> %d)", before.PTPages, mid.PTPages)
	}
	if err := c.Munmap(va, 2<<20); err != nil {
		t.Fatal(err)
	}
	after := r.os.Stats()
	if got := after.TLBIs[tlb.OpVAE1.IS()]; got != 8 {
		t.Errorf("TLBI VAE1IS: %d, want 8 (one per page, tables freed)", got)
	}
	if after.Frames != before.Frames || after.PTPages >= mid.PTPages {
		t.Errorf("frames %d -> %d -> %d, table pages %d -> %d -> %d", before.Frames, mid.Frames, after.Frames, before.PTPages, mid.PTPages, after.PTPages)
	}
	if _, err := access(c, va, false, 0); !errors.Is(err, ErrSegv) {
		t.Errorf("read after munmap: %v", err)
	}
}

// TestASIDRollover: with 8-bit ASIDs, processes that exec over and over
// take new ASIDs until the generation rolls over; each core then flushes
// its TLB before it switches again, and nothing stale is ever read.
func TestASIDRollover(t *testing.T) {
	r := newRig(t, Config{ASIDBits: 8}, 2, 4096)
	procs := make([][]*Proc, 2)
	vas := make([]uint64, 2)
	for i, c := range r.cores {
		procs[i] = append(procs[i], spawnEnter(t, c))
		var err error
		if vas[i], err = c.Mmap(1<<20, ProtRead|ProtWrite); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 300; round++ {
		for i, c := range r.cores {
			want := uint64(round*10 + i)
			mustAccess(t, c, vas[i], true, want)
			if v := mustAccess(t, c, vas[i], false, 0); v != want {
				t.Fatalf("round %d core %d: read %d, want %d", round, i, v, want)
			}
			if err := c.Exec(0x40_0000); err != nil {
				t.Fatal(err)
			}
			va, err := c.Mmap(1<<20, ProtRead|ProtWrite)
			if err != nil {
				t.Fatal(err)
			}
			vas[i] = va
			if v := mustAccess(t, c, va, false, 0); v != 0 {
				t.Fatalf("round %d: a new address space reads %#x", round, v)
			}
		}
	}
	s := r.os.Stats()
	if s.ASIDRollovers < 2 || s.LocalFlushes < 2*s.ASIDRollovers {
		t.Errorf("rollovers %d, local flushes %d: want at least 2 and 2 per rollover", s.ASIDRollovers, s.LocalFlushes)
	}
}

// TestGranulesAndLinearMap boots every granule with and without linear-map
// blocks and checks the kernel's table pages: blocks need fewer.
func TestGranulesAndLinearMap(t *testing.T) {
	for _, c := range []struct {
		g      sysreg.Granule
		va     uint
		levels int
	}{
		{sysreg.Granule4K, 48, 4}, {sysreg.Granule4K, 39, 3},
		{sysreg.Granule16K, 47, 3}, {sysreg.Granule16K, 48, 4},
		{sysreg.Granule64K, 48, 3}, {sysreg.Granule64K, 42, 2},
	} {
		var pts [2]int
		for i, pageOnly := range []bool{false, true} {
			name := fmt.Sprintf("%v/%d/pages=%v", c.g, c.va, pageOnly)
			r := newRig(t, Config{Granule: c.g, VABits: c.va, PageLinearMap: pageOnly, RAMSize: 64 << 20}, 1, 4096)
			if got := r.os.Levels(); got != c.levels {
				t.Errorf("%s: %d levels, want %d", name, got, c.levels)
			}
			core := r.cores[0]
			spawnEnter(t, core)
			va, err := core.Mmap(1<<20, ProtRead|ProtWrite)
			if err != nil {
				t.Fatal(name, err)
			}
			pg := r.os.PageSize()
			for off := uint64(0); off < 1<<20; off += pg {
				mustAccess(t, core, va+off, true, off)
			}
			for off := uint64(0); off < 1<<20; off += pg {
				if v := mustAccess(t, core, va+off, false, 0); v != off {
					t.Fatalf("%s: read %#x at +%#x", name, v, off)
				}
			}
			pts[i] = r.os.Stats().PTPages
		}
		if c.g != sysreg.Granule64K && pts[0] >= pts[1] {
			t.Errorf("%v/%d: %d table pages with linear-map blocks, %d without", c.g, c.va, pts[0], pts[1])
		}
	}
}

// TestRandomOpsAgainstModel runs random sequences of user reads and writes,
// mmap, munmap, fork, exec, exit and switches on two cores, and checks
// every read against a model that knows what each process last wrote (a
// simple map per process, copied at fork).
func TestRandomOpsAgainstModel(t *testing.T) {
	steps := 6000
	if testing.Short() {
		steps = 1500
	}
	for _, g := range []sysreg.Granule{sysreg.Granule4K, sysreg.Granule16K, sysreg.Granule64K} {
		r := newRig(t, Config{Granule: g, ASIDBits: 8, RAMSize: 128 << 20}, 2, 4096)
		rng := rand.New(rand.NewPCG(uint64(g), 9))
		n := steps // 64K pages: fewer steps (zeroing 8192 words per page dominates)
		if g == sysreg.Granule64K {
			n = steps / 4
		}
		for ci, c := range r.cores {
			runModel(t, c, rng, n, fmt.Sprintf("%v core %d", g, ci))
		}
	}
}

type modelProc struct {
	p      *Proc
	mem    map[uint64]uint64
	region []uint64 // mapped regions (start), 16 pages each
}

func runModel(t *testing.T, c *Core, rng *rand.Rand, steps int, name string) {
	pg := c.OS().PageSize()
	size := 16 * pg
	procs := []*modelProc{{p: spawnEnter(t, c), mem: map[uint64]uint64{}}}
	cur := procs[0]
	mmap := func(m *modelProc) {
		va, err := c.Mmap(size, ProtRead|ProtWrite)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m.region = append(m.region, va)
	}
	mmap(cur)
	for i := 0; i < steps; i++ {
		switch x := rng.IntN(100); {
		case x < 70 && len(cur.region) > 0:
			va := cur.region[rng.IntN(len(cur.region))] + uint64(rng.IntN(int(size/8)))*8
			if rng.IntN(2) == 0 {
				v := rng.Uint64()
				mustAccess(t, c, va, true, v)
				cur.mem[va] = v
			} else if got := mustAccess(t, c, va, false, 0); got != cur.mem[va] {
				t.Fatalf("%s step %d: pid %d read %#x at %#x, want %#x", name, i, cur.p.PID, got, va, cur.mem[va])
			}
		case x < 75:
			mmap(cur)
		case x < 80 && len(cur.region) > 0:
			k := rng.IntN(len(cur.region))
			va := cur.region[k]
			if err := c.Munmap(va, size); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for a := va; a < va+size; a += 8 {
				delete(cur.mem, a)
			}
			cur.region = append(cur.region[:k], cur.region[k+1:]...)
		case x < 85 && len(procs) < 6:
			ch, err := c.Fork()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			m := &modelProc{p: ch, mem: map[uint64]uint64{}, region: append([]uint64(nil), cur.region...)}
			for k, v := range cur.mem {
				m.mem[k] = v
			}
			procs = append(procs, m)
		case x < 87:
			if err := c.Exec(0x40_0000); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			cur.mem, cur.region = map[uint64]uint64{}, nil
			mmap(cur)
		case x < 89 && len(procs) > 1:
			k := 0
			for procs[k] != cur {
				k++
			}
			procs = append(procs[:k], procs[k+1:]...)
			next := procs[rng.IntN(len(procs))]
			if err := c.Exit(next.p); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			cur = next
		default:
			next := procs[rng.IntN(len(procs))]
			if err := c.Tick(next.p); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			cur = next
		}
	}
}

// TestDoorbell: a write(2) to the device leaves the VM as an MMIO exit at
// the device's IPA with the value, decoded from the syndrome; after the
// VMM completes it the process is back at EL0.
func TestDoorbell(t *testing.T) {
	r := newRig(t, Config{DeviceBase: 0x0900_0000}, 1, 4096)
	c := r.cores[0]
	spawnEnter(t, c)
	x, err := c.Doorbell(0x1234)
	if err != nil || x.Reason != kvm.ExitMMIO {
		t.Fatalf("doorbell: %v %v", x.Reason, err)
	}
	if a := x.MMIO; !a.Write || a.IPA != 0x0900_0000 || a.Size != 4 || a.Data[0] != 0x1234 {
		t.Fatalf("MMIO access %+v", a)
	}
	if err := r.vcpus[0].CompleteMMIO([2]uint64{}); err != nil {
		t.Fatal(err)
	}
	if err := c.DoorbellDone(); err != nil {
		t.Fatal(err)
	}
	if r.vcpus[0].PE().EL != 0 || r.vm.Stats().MMIOExits != 1 {
		t.Errorf("after the doorbell: EL%d, %d MMIO exits", r.vcpus[0].PE().EL, r.vm.Stats().MMIOExits)
	}
}

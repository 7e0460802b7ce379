package vmid

import (
	"strings"
	"testing"
)

func TestBits(t *testing.T) {
	tests := []struct {
		mmfr1 uint64
		want  int
		err   string
	}{
		{0x0000_0000, 8, ""},
		{0x0000_0020, 16, ""},
		{0xffff_ff0f, 8, ""}, // only bits 7:4 matter
		{0x0000_0010, 0, "0b0001"},
		{0x0000_0030, 0, "0b0011"},
		{0x0000_00f0, 0, "0b1111"},
	}
	for _, tt := range tests {
		got, err := Bits(tt.mmfr1)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Bits(%#x) error %v, want one naming %s", tt.mmfr1, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Bits(%#x) = %d, %v; want %d", tt.mmfr1, got, err, tt.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	m := newTLBModel(1)
	tests := []struct {
		width, ncpu int
		f           Flusher
		err         string
	}{
		{12, 1, m, "width 12"},
		{8, 0, m, "0 CPUs"},
		{8, 255, m, "255 CPUs"},
		{8, 1, nil, "nil Flusher"},
	}
	for _, tt := range tests {
		if _, err := New(tt.width, tt.ncpu, tt.f); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("New(%d, %d) error %v, want one containing %q", tt.width, tt.ncpu, err, tt.err)
		}
	}
	a, err := New(8, 254, m)
	if err != nil {
		t.Fatal(err)
	}
	var vm VM
	if _, err := a.Load(254, &vm); err == nil || !strings.Contains(err.Error(), "CPU 254") {
		t.Errorf("Load on CPU 254: %v", err)
	}
	if _, err := a.Load(-1, &vm); err == nil {
		t.Errorf("Load on CPU -1 accepted")
	}
	if _, err := a.Load(0, nil); err == nil {
		t.Errorf("Load of a nil VM accepted")
	}
	if err := a.Put(300); err == nil {
		t.Errorf("Put on CPU 300 accepted")
	}
	if err := a.Free(nil); err == nil {
		t.Errorf("Free(nil) accepted")
	}
}

// step is one operation of a rollover scenario.
type step struct {
	op   string // "load", "loadN", "put", "free"
	cpu  int
	vm   int    // VM index (1-based, as VMIDs are)
	n    int    // loadN: load VMs vm..vm+n-1 on cpu
	want uint16 // load: expected VMID; loadN: VMID of the first, +1 each
	// Expected totals after the step: full flushes and the per-VMID
	// flushes (nil: none).
	flushAll  int
	flushVMID map[uint16]int
}

func TestRolloverScenarios(t *testing.T) {
	// Expectations follow the scheme: allocation takes the next free VMID
	// at or after the last one handed out (then from 1); when none is
	// free the generation rolls over, keeping only the VMIDs active or
	// reserved on a CPU, with one full flush; a VM whose old VMID is
	// reserved for it, or still free, keeps it.
	tests := []struct {
		name  string
		width int
		ncpu  int
		steps []step
	}{
		{"8-bit: 255 VMs fit, the 256th rolls over once", 8, 1, []step{
			{op: "loadN", cpu: 0, vm: 1, n: 255, want: 1},
			{op: "load", cpu: 0, vm: 256, want: 1, flushAll: 1}, // VM255 (255) pinned on CPU 0
			{op: "load", cpu: 0, vm: 255, want: 255, flushAll: 1},
			{op: "load", cpu: 0, vm: 1, want: 2, flushAll: 1}, // its old 1 is VM256's now
			{op: "load", cpu: 0, vm: 1, want: 2, flushAll: 1}, // fast path
		}},
		{"active VMIDs on two CPUs survive the rollover", 8, 2, []step{
			{op: "load", cpu: 0, vm: 1, want: 1},
			{op: "loadN", cpu: 1, vm: 2, n: 254, want: 2}, // CPU 1 ends on VM255
			{op: "load", cpu: 1, vm: 256, want: 2, flushAll: 1},
			{op: "load", cpu: 0, vm: 1, want: 1, flushAll: 1},     // reserved for it on CPU 0
			{op: "load", cpu: 0, vm: 255, want: 255, flushAll: 1}, // reserved on CPU 1, loaded on CPU 0
			{op: "load", cpu: 0, vm: 2, want: 3, flushAll: 1},     // 2 taken, 3 next
		}},
		{"a CPU that loads nothing keeps its reservation through two rollovers", 8, 2, []step{
			{op: "load", cpu: 0, vm: 1, want: 1},
			{op: "loadN", cpu: 1, vm: 2, n: 254, want: 2},
			{op: "load", cpu: 1, vm: 256, want: 2, flushAll: 1}, // pins 1 (CPU 0) and 255 (CPU 1)
			{op: "loadN", cpu: 1, vm: 257, n: 252, want: 3, flushAll: 1},
			{op: "load", cpu: 1, vm: 509, want: 2, flushAll: 2}, // pins 1 (reserved, CPU 0) and 254 (VM508)
			{op: "load", cpu: 0, vm: 1, want: 1, flushAll: 2},
		}},
		{"Put releases the VMID at rollover; a still-free old VMID is kept", 8, 1, []step{
			{op: "loadN", cpu: 0, vm: 1, n: 255, want: 1},
			{op: "put", cpu: 0},
			{op: "load", cpu: 0, vm: 256, want: 1, flushAll: 1}, // nothing pinned
			{op: "load", cpu: 0, vm: 255, want: 255, flushAll: 1},
			{op: "load", cpu: 0, vm: 1, want: 2, flushAll: 1},
			{op: "load", cpu: 0, vm: 2, want: 3, flushAll: 1},
		}},
		{"Free makes a VMID reusable without a rollover", 8, 1, []step{
			{op: "loadN", cpu: 0, vm: 1, n: 255, want: 1},
			{op: "free", vm: 10, flushVMID: map[uint16]int{10: 1}},
			{op: "load", cpu: 0, vm: 256, want: 10, flushVMID: map[uint16]int{10: 1}},
			{op: "load", cpu: 0, vm: 257, want: 1, flushAll: 1, flushVMID: map[uint16]int{10: 1}},
		}},
		{"Free of the active VM", 8, 1, []step{
			{op: "load", cpu: 0, vm: 1, want: 1},
			{op: "free", vm: 1, flushVMID: map[uint16]int{1: 1}},
			// The search starts at the last VMID handed out, now free.
			{op: "load", cpu: 0, vm: 2, want: 1, flushVMID: map[uint16]int{1: 1}},
			{op: "loadN", cpu: 0, vm: 3, n: 254, want: 2, flushVMID: map[uint16]int{1: 1}},
			{op: "load", cpu: 0, vm: 257, want: 1, flushAll: 1, flushVMID: map[uint16]int{1: 1}}, // 255 pinned
		}},
		// The allocator cannot tell whether VM255 ran after the
		// rollover's flush (on another CPU it may have), so Free flushes
		// the pinned VMID (see TestFreePinnedAfterRunning).
		{"Free of a VM pinned across a rollover flushes its VMID", 8, 1, []step{
			{op: "loadN", cpu: 0, vm: 1, n: 255, want: 1},
			{op: "load", cpu: 0, vm: 256, want: 1, flushAll: 1}, // 255 pinned for VM255
			{op: "free", vm: 255, flushAll: 1, flushVMID: map[uint16]int{255: 1}},
			{op: "loadN", cpu: 0, vm: 257, n: 254, want: 2, flushAll: 1, flushVMID: map[uint16]int{255: 1}},
			{op: "load", cpu: 0, vm: 511, want: 1, flushAll: 2, flushVMID: map[uint16]int{255: 1}},
		}},
		{"Free of a VM whose VMID went to another VM", 8, 1, []step{
			{op: "loadN", cpu: 0, vm: 1, n: 255, want: 1},
			{op: "load", cpu: 0, vm: 256, want: 1, flushAll: 1}, // VM1's 1 now VM256's
			{op: "free", vm: 1, flushAll: 1},                    // nothing to release
			{op: "load", cpu: 0, vm: 256, want: 1, flushAll: 1},
		}},
		{"16-bit: 65535 VMs fit, the next rolls over once", 16, 4, []step{
			{op: "loadN", cpu: 3, vm: 1, n: 65535, want: 1},
			{op: "load", cpu: 2, vm: 65536, want: 1, flushAll: 1},
			{op: "load", cpu: 0, vm: 65535, want: 65535, flushAll: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTLBModel(tt.ncpu)
			a, err := New(tt.width, tt.ncpu, m)
			if err != nil {
				t.Fatal(err)
			}
			vms := map[int]*VM{}
			vm := func(i int) *VM {
				if vms[i] == nil {
					vms[i] = new(VM)
				}
				return vms[i]
			}
			load := func(si int, cpu, i int, want uint16) {
				got, err := a.Load(cpu, vm(i))
				if err != nil {
					t.Fatalf("step %d: %v", si, err)
				}
				if got != want {
					t.Fatalf("step %d: VM %d on CPU %d got VMID %d, want %d", si, i, cpu, got, want)
				}
				m.run(cpu, vm(i), got)
				if m.err != nil {
					t.Fatalf("step %d: %v", si, m.err)
				}
			}
			for si, s := range tt.steps {
				switch s.op {
				case "load":
					load(si, s.cpu, s.vm, s.want)
				case "loadN":
					for k := 0; k < s.n; k++ {
						load(si, s.cpu, s.vm+k, s.want+uint16(k))
					}
				case "put":
					if err := a.Put(s.cpu); err != nil {
						t.Fatal(err)
					}
					m.stop(s.cpu)
				case "free":
					if err := a.Free(vm(s.vm)); err != nil {
						t.Fatal(err)
					}
					m.forget(vm(s.vm))
					delete(vms, s.vm)
				}
				all, byVMID := m.counts()
				if all != s.flushAll || a.Rollovers() != uint64(s.flushAll) {
					t.Fatalf("step %d: %d full flushes (%d rollovers), want %d", si, all, a.Rollovers(), s.flushAll)
				}
				want := s.flushVMID
				if want == nil {
					want = map[uint16]int{}
				}
				if len(byVMID) != len(want) {
					t.Fatalf("step %d: VMID flushes %v, want %v", si, byVMID, want)
				}
				for k, v := range want {
					if byVMID[k] != v {
						t.Fatalf("step %d: VMID flushes %v, want %v", si, byVMID, want)
					}
				}
				list := make([]*VM, 0, len(vms))
				for _, v := range vms {
					list = append(list, v)
				}
				if err := checkUnique(a, list); err != nil {
					t.Fatalf("step %d: %v", si, err)
				}
			}
		})
	}
}

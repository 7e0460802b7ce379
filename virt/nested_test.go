package virt

import (
	"io"
	"os"
	"testing"

	"github.com/nestmmu/nestmmu/host/nested"
)

// TestNestedHello runs hello as a guest hypervisor under L0 with FEAT_NV
// and FEAT_NV2: its register accesses trap or go to the VNCR page, its
// UART stores are MMIO exits to L0's bus, its PSCI SMCs trap to L0. The
// output is QEMU's at real EL2.
func TestNestedHello(t *testing.T) {
	want, err := os.ReadFile("../testdata/a64/hello.qemu")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		t.Run(m.String(), func(t *testing.T) {
			b, err := NewNested(NestedConfig{Mode: m})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if _, err := b.LoadFile("../testdata/a64/hello.elf"); err != nil {
				t.Fatal(err)
			}
			if err := b.Run(1e7); err != nil {
				t.Fatal(err)
			}
			if got := b.Output.String(); got != string(want) {
				t.Errorf("output:\n%s\nwant QEMU's:\n%s", got, want)
			}
			s := b.VCPU.Stats()
			if s.CanonicalFaults == 0 || s.SysRegTraps == 0 {
				t.Errorf("stats %+v: want L1's stage-2 faults and register traps handled by L0", s)
			}
			if !b.Off {
				t.Error("no PSCI SYSTEM_OFF")
			}
		})
	}
}

// TestNestedExitAllocations: an exit to L0 and back (here L1's stage-2
// faults, register traps and UART MMIO while hello runs) allocates
// nothing in the interpreter's path or in L0's handling once warm.
func TestNestedExitAllocations(t *testing.T) {
	b, err := NewNested(NestedConfig{Mode: nested.ModeNV, Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.LoadFile("../testdata/a64/hello.elf"); err != nil {
		t.Fatal(err)
	}
	entry := b.PE.PC
	if err := b.Run(1e7); err != nil {
		t.Fatal(err)
	}
	// Warm: every page is mapped at stage 2; the UART stores and the
	// register traps still exit. Run the program again from its entry.
	allocs := testing.AllocsPerRun(5, func() {
		b.Off = false
		b.PE.PC, b.PE.EL, b.PE.SP, b.PE.DAIF = entry, 1, true, 0xf
		if err := b.Run(1e7); err != nil {
			t.Fatal(err)
		}
	})
	if s := b.VCPU.Stats(); s.SysRegTraps == 0 {
		t.Fatalf("no exits: %+v", s)
	}
	if allocs > 0 {
		t.Errorf("%v allocations per run of hello under L0", allocs)
	}
}

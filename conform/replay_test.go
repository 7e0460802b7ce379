package conform

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/conform/qemu"
)

// A case whose walk reads outside the oracle machine's memory map is
// refused by Replay with the reason (without starting QEMU); the stored
// reproducers and generated cases all stay inside it.
func TestOutsideMemoryMap(t *testing.T) {
	tcr := uint64(sysreg.TCRFields{T0SZ: 25, TG0: sysreg.Granule4K, IPS: sysreg.PS48, EPD1: true}.Value())
	mk := func(ttbr uint64) qemu.Case {
		return qemu.Case{EL: 2, Regs: map[string]uint64{
			"HCR_EL2": 1 << 31, "SCTLR_EL1": 1, "TCR_EL1": tcr, "TTBR0_EL1": ttbr,
		}, Ops: []qemu.Op{{Name: "S1E1R", VA: 0x1000}}}
	}
	cases := []struct {
		name string
		ttbr uint64
		want string
	}{
		{"tables in case RAM", qemu.RAMBase + 0x10_0000, ""},
		{"tables in the runner's reserved RAM", qemu.ReservedBase, "reserved memory"},
		{"tables in flash at 0", 0x1000, "outside RAM and outside the ranges where QEMU's machine aborts"},
		{"tables where QEMU aborts", qemu.AbortRanges()[0].Base + 0x1000, ""},
	}
	for _, c := range cases {
		q := mk(c.ttbr)
		why, err := OutsideMemoryMap(&q)
		if err != nil {
			t.Fatal(err)
		}
		if c.want == "" && why != "" || c.want != "" && !strings.Contains(why, c.want) {
			t.Errorf("%s: %q, want %q", c.name, why, c.want)
		}
		if c.want != "" {
			_, err := Replay(context.Background(), nil, q, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), "case not replayed") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: Replay = %v", c.name, err)
			}
		}
	}
	files, _ := filepath.Glob("testdata/*.json")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseCase(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if why, err := OutsideMemoryMap(&c); err != nil || why != "" {
			t.Errorf("%s: %q %v", f, why, err)
		}
	}
	for _, g := range Generate(7, 300) {
		if why, err := OutsideMemoryMap(&g.Q); err != nil || why != "" {
			t.Errorf("generated case %s: %q %v", g.ID, why, err)
		}
	}
}

// --out creates its directory only when a reproducer is written: a run
// without mismatches leaves no empty directory behind.
func TestOutDirCreatedOnlyWhenWriting(t *testing.T) {
	o := newOracle(t)
	dir := filepath.Join(t.TempDir(), "a", "b")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Seed: 1, Cases: 20, Oracle: o, OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Unexplained() != 0 {
		t.Skipf("%d unexplained mismatches: the directory is legitimately written", rep.Unexplained())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s exists after a run without mismatches (stat: %v)", dir, err)
	}
}

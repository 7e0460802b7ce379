package programs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nestmmu/nestmmu/conform/qemu"
)

func dir(t testing.TB) string {
	t.Helper()
	d, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// qemuPath returns QEMU, or skips (fails with NESTMMU_REQUIRE_QEMU=1).
func qemuPath(t testing.TB) string {
	t.Helper()
	p, err := qemu.Find()
	if err != nil {
		if os.Getenv("NESTMMU_REQUIRE_QEMU") == "1" {
			t.Fatalf("NESTMMU_REQUIRE_QEMU=1: %v", err)
		}
		t.Skipf("no QEMU (%v)", err)
	}
	return p
}

// TestProgramsMatchRecordedQEMU runs every program on the model and
// compares the prediction of QEMU's output with QEMU 10.0.2's output
// recorded in testdata/a64/<id>.qemu: it needs no QEMU.
// NESTMMU_RECORD=1 with QEMU present rewrites the recordings.
func TestProgramsMatchRecordedQEMU(t *testing.T) {
	d := dir(t)
	record := os.Getenv("NESTMMU_RECORD") == "1"
	for _, p := range Suite {
		t.Run(p.ID(), func(t *testing.T) {
			elf := filepath.Join(d, p.Name+".elf")
			o := Options{EL: p.EL}
			model, predicted, err := Predict(elf, o, p.Deviations)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(d, p.ID()+".qemu")
			if record {
				q, err := RunQEMU(context.Background(), qemuPath(t), elf, o)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, q, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(predicted, want) {
				t.Errorf("prediction differs from QEMU's recorded output: %s", FirstDifference(predicted, want))
			}
			if p.Deviations == 0 && !bytes.Equal(model, predicted) {
				t.Errorf("no deviation declared but the outputs differ")
			}
			if p.Deviations != 0 && bytes.Equal(model, want) {
				t.Errorf("deviations %#x declared but QEMU prints what the architecture says: drop them", p.Deviations)
			}
			if len(want) == 0 {
				t.Errorf("empty output")
			}
		})
	}
}

// TestProgramsOnQEMU runs every program on QEMU 10 and on the model: QEMU
// must print exactly the prediction (and its recording must be current).
func TestProgramsOnQEMU(t *testing.T) {
	q := qemuPath(t)
	d := dir(t)
	explained := 0
	for _, p := range Suite {
		t.Run(p.ID(), func(t *testing.T) {
			elf := filepath.Join(d, p.Name+".elf")
			c, err := Compare(context.Background(), q, elf, Options{EL: p.EL}, p.Deviations)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Match() {
				t.Fatalf("QEMU and the prediction differ: %s", FirstDifference(c.Predicted, c.QEMU))
			}
			if c.Explained() {
				explained++
			}
			if want, err := os.ReadFile(filepath.Join(d, p.ID()+".qemu")); err != nil || !bytes.Equal(want, c.QEMU) {
				t.Errorf("testdata/a64/%s.qemu is not QEMU's current output (NESTMMU_RECORD=1 rewrites it)", p.ID())
			}
		})
	}
	t.Logf("%d program runs compared with QEMU, %d with differences all explained by recorded deviations", len(Suite), explained)
}

// TestProgramsReproducible rebuilds the programs with the cross compiler,
// when it is installed, and checks the committed ELF files are what the
// sources and build.sh give.
func TestProgramsReproducible(t *testing.T) {
	if _, err := exec.LookPath("aarch64-linux-gnu-gcc"); err != nil {
		t.Skip("no aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu)")
	}
	d := dir(t)
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(d, "build.sh"), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	built, _ := filepath.Glob(filepath.Join(out, "*.elf"))
	if len(built) == 0 {
		t.Fatal("build.sh built nothing")
	}
	for _, b := range built {
		name := filepath.Base(b)
		want, err := os.ReadFile(filepath.Join(d, name))
		if errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is built but not committed", name)
			continue
		}
		got, _ := os.ReadFile(b)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the committed ELF differs from what build.sh builds (run testdata/a64/build.sh)", name)
		}
	}
	committed, _ := filepath.Glob(filepath.Join(d, "*.elf"))
	if len(committed) != len(built) {
		t.Errorf("%d ELF files committed, build.sh builds %d", len(committed), len(built))
	}
}

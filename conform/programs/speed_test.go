package programs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nestmmu/nestmmu/virt"
)

// TestSpeedAgainstQEMU times the loop program (stage 1 and stage 2 on,
// NESTMMU_SPEED_ROUNDS rounds, default 60: about 115 million
// instructions) on the model and on QEMU's TCG in one run and logs the
// instructions per second and the ratio (docs/PERFORMANCE.md). It runs
// only with NESTMMU_SPEED=1:
//
//	NESTMMU_SPEED=1 go test -run TestSpeedAgainstQEMU -v ./conform/programs/
func TestSpeedAgainstQEMU(t *testing.T) {
	if os.Getenv("NESTMMU_SPEED") != "1" {
		t.Skip("set NESTMMU_SPEED=1 to time the model against QEMU")
	}
	q := qemuPath(t)
	elf := filepath.Join(dir(t), "loop.elf")
	rounds := uint64(60)
	if s := os.Getenv("NESTMMU_SPEED_ROUNDS"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		rounds = v
	}
	// QEMU start-up alone: the same program with one round subtracted out.
	timeQEMU := func(r uint64) (time.Duration, []byte) {
		best := time.Duration(1 << 62)
		var out []byte
		for i := 0; i < 3; i++ {
			t0 := time.Now()
			o, err := RunQEMU(context.Background(), q, elf, Options{EL: 2, Seed: &r})
			if err != nil {
				t.Fatal(err)
			}
			best, out = min(best, time.Since(t0)), o
		}
		return best, out
	}
	one, _ := timeQEMU(1)
	full, qout := timeQEMU(rounds)
	var insns, insns1 uint64
	var model time.Duration
	var mout []byte
	for _, r := range []uint64{1, rounds} {
		b, err := virt.New(virt.Config{})
		if err != nil {
			t.Fatal(err)
		}
		img, err := b.LoadFile(elf)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.SetSymbol(img, "nestmmu_seed", r); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := b.Run(1 << 40); err != nil {
			t.Fatal(err)
		}
		if r == 1 {
			insns1 = b.CPU.Retired
			continue
		}
		model, insns, mout = time.Since(t0), b.CPU.Retired, b.Output.Bytes()
	}
	if !bytes.Equal(mout, qout) {
		t.Fatalf("outputs differ: %s", FirstDifference(mout, qout))
	}
	qemuLoop := full - one
	n := insns - insns1
	t.Logf("loop.elf, %d rounds, %d instructions: model %v (%.1f M insns/s); QEMU TCG %v, %v for one round (start-up), %v for the %d extra rounds (%.1f M insns/s); model/QEMU time ratio %.1f (whole runs %.1f)",
		rounds, insns, model.Round(time.Millisecond), float64(insns)/model.Seconds()/1e6,
		full.Round(time.Millisecond), one.Round(time.Millisecond), qemuLoop.Round(time.Millisecond), rounds-1,
		float64(n)/qemuLoop.Seconds()/1e6, model.Seconds()*float64(n)/float64(insns)/qemuLoop.Seconds(), model.Seconds()/full.Seconds())
}

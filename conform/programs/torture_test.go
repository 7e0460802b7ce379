package programs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestTorture runs seeds of the torture program on QEMU and on the model
// (with QEMU's deviations reproduced) and requires identical output.
// NESTMMU_TORTURE_SEEDS sets the number of seeds (default 100, 20 with
// -short), NESTMMU_TORTURE_SEED the first (default 1); seeds run in batches
// of 250 per QEMU launch, two launches at a time.
//
//	NESTMMU_TORTURE_SEEDS=10000 go test -run TestTorture -v -timeout 2h ./conform/programs/
func TestTorture(t *testing.T) {
	q := qemuPath(t)
	elf := filepath.Join(dir(t), "torture.elf")
	n, first := uint64(100), uint64(1)
	if testing.Short() {
		n = 20
	}
	if s := os.Getenv("NESTMMU_TORTURE_SEEDS"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil || v == 0 {
			t.Fatalf("NESTMMU_TORTURE_SEEDS=%q: want a positive count", s)
		}
		n = v
	}
	if s := os.Getenv("NESTMMU_TORTURE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("NESTMMU_TORTURE_SEED=%q: %v", s, err)
		}
		first = v
	}
	const batch = 250
	type result struct {
		seed      uint64
		explained bool
		err       error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 2)
	)
	start := time.Now()
	for s := first; s < first+n; s += batch {
		count := min(uint64(batch), first+n-s)
		seed := s
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o := Options{EL: 2, Seed: &seed, Seeds: &count, Budget: 200_000_000 * count, Timeout: 10 * time.Minute}
			c, err := Compare(context.Background(), q, elf, o, QEMUDeviations)
			r := result{seed: seed, err: err}
			if err == nil {
				if !c.Match() {
					r.err = fmt.Errorf("seeds %d..%d: %s", seed, seed+count-1, seedOfDifference(c.Predicted, c.QEMU))
				}
				r.explained = c.Explained()
			}
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	bad, explained := 0, 0
	for _, r := range results {
		if r.err != nil {
			bad++
			t.Error(r.err)
		}
		if r.explained {
			explained++
		}
	}
	t.Logf("torture: %d seeds from %d in %v: %d batches with unexplained differences, %d batches whose differences are all predicted QEMU deviations",
		n, first, time.Since(start).Round(time.Second), bad, explained)
}

// seedOfDifference names the seed and line of the first difference.
func seedOfDifference(a, b []byte) string {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	seed := "?"
	for i := 0; i < len(la) && i < len(lb); i++ {
		if bytes.HasPrefix(la[i], []byte("seed ")) {
			seed = string(la[i][5:])
		}
		if !bytes.Equal(la[i], lb[i]) {
			return fmt.Sprintf("seed %s: model %q, QEMU %q", seed, la[i], lb[i])
		}
	}
	return fmt.Sprintf("lengths differ (%d and %d lines): %s", len(la), len(lb), FirstDifference(a, b))
}

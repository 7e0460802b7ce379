package nested_test

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// TestHostEventsWhileL2Runs: the host swaps out and migrates L1's pages
// on another goroutine while L2 stores and loads; every load returns the
// store before it, and at the end the shadow invariants hold. Run it with
// -race.
func TestHostEventsWhileL2Runs(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRig(t, mode, true, 0)
			r.run(t, r.a)
			steps := 2000
			if testing.Short() {
				steps = 300
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var hostErr error
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(5, 6))
				as := r.kvm.AddressSpace()
				s := r.kvm.Lookup(l1VMA)
				for {
					select {
					case <-stop:
						return
					default:
					}
					l1 := mem.IPA(l1VMA + rng.IntN(64)<<12)
					var err error
					if rng.IntN(2) == 0 {
						err = as.SwapOut(s.HVAOf(l1))
					} else {
						err = as.Migrate(s.HVAOf(l1))
					}
					if err != nil && !errors.Is(err, hostmm.ErrNotPresent) {
						hostErr = err
						return
					}
				}
			}()
			rng := rand.New(rand.NewPCG(7, 8))
			for i := 0; i < steps; i++ {
				va := mem.VA(l2RAM + rng.IntN(64)<<12 + rng.IntN(4)*8)
				val := rng.Uint64()
				r.store(t, va, val)
				if got := r.load(t, va); got != val {
					close(stop)
					wg.Wait()
					t.Fatalf("step %d: L2 reads %#x at %#x, wrote %#x", i, got, uint64(va), val)
				}
			}
			close(stop)
			wg.Wait()
			if hostErr != nil {
				t.Fatal(hostErr)
			}
			if err := r.nvm.Check(); err != nil {
				t.Error(err)
			}
			if err := r.nvm.Err(); err != nil {
				t.Error(err)
			}
		})
	}
}

//go:build amd64

package peers

import (
	"fmt"

	"github.com/nestmmu/nestmmu/bench"
)

// Row is one page-table comparison: the same operation on both sides, an
// optional goal for nestmmu's time over gVisor's.
type Row struct {
	Name string
	// Goal is the largest nestmmu/gVisor time ratio the row aims at (0:
	// none).
	Goal float64
	// Make returns the operation on fresh tables of the given side.
	Make func(pt PageTables) (bench.Op, error)
}

const (
	kib    = 1 << 10
	mib    = 1 << 20
	gib    = 1 << 30
	base   = 0x40_0000_0000 // 256 GiB: the first level-0 entry of both
	physLo = 0x1_0000_0000
)

// window is how much the page rows map before starting over.
const window = 4 * gib

// Rows are the comparisons `nestmmu bench` (comparison 1) and BenchmarkPeers run.
func Rows() []Row {
	return []Row{
		{Name: "map one 4K page (tables allocated as needed)", Goal: 0.67, Make: mapPages},
		{Name: "unmap one 4K page (tables freed as emptied)", Make: unmapPages},
		{Name: "look up one 4K page (64 MiB mapped)", Goal: 0.67, Make: lookup(64*mib, 4*kib)},
		{Name: "look up in 2 MiB blocks (1 GiB mapped)", Make: lookup(gib, 2*mib)},
		{Name: "map and unmap one 2 MiB block", Make: mapUnmap(2 * mib)},
		{Name: "map and unmap 1 GiB as one block", Goal: 1.0, Make: mapUnmap(gib)},
	}
}

// mapPages maps one page after the other from base; before a batch that
// would run past the window, the window is unmapped (untimed).
func mapPages(pt PageTables) (bench.Op, error) {
	off := uint64(0)
	return bench.Op{
		Prepare: func(n int) error {
			if off+uint64(n)*4*kib <= window {
				return nil
			}
			err := pt.Unmap(base, window)
			off = 0
			return err
		},
		Run: func(n int) error {
			if off+uint64(n)*4*kib > window {
				return fmt.Errorf("batch of %d pages beyond the %d-byte window", n, window)
			}
			for i := 0; i < n; i++ {
				if err := pt.Map(base+off, physLo+off, 4*kib); err != nil {
					return err
				}
				off += 4 * kib
			}
			return nil
		},
	}, nil
}

// unmapPages unmaps one page after the other; the pages a batch unmaps
// are mapped before it (untimed).
func unmapPages(pt PageTables) (bench.Op, error) {
	return bench.Op{
		Prepare: func(n int) error {
			if uint64(n)*4*kib > window {
				return fmt.Errorf("batch of %d pages beyond the %d-byte window", n, window)
			}
			for off := uint64(0); off < uint64(n)*4*kib; off += 4 * kib {
				if err := pt.Map(base+off, physLo+off, 4*kib); err != nil {
					return err
				}
			}
			return nil
		},
		Run: func(n int) error {
			for i := uint64(0); i < uint64(n); i++ {
				if err := pt.Unmap(base+i*4*kib, 4*kib); err != nil {
					return err
				}
			}
			return nil
		},
	}, nil
}

// lookup maps size bytes with leaves of leaf bytes, then looks up
// scattered addresses in them.
func lookup(size, leaf uint64) func(pt PageTables) (bench.Op, error) {
	return func(pt PageTables) (bench.Op, error) {
		for off := uint64(0); off < size; off += leaf {
			if err := pt.Map(base+off, physLo+off, leaf); err != nil {
				return bench.Op{}, err
			}
		}
		i := uint64(0)
		return bench.Op{Run: func(n int) error {
			for k := 0; k < n; k++ {
				a := base + (i*0x9e3779b1)%size
				if pa, ok := pt.Lookup(a); !ok || pa != physLo+a-base {
					return fmt.Errorf("%#x translates to (%#x, %v)", a, pa, ok)
				}
				i++
			}
			return nil
		}}, nil
	}
}

// mapUnmap maps and unmaps one block of size bytes, aligned to its size.
func mapUnmap(size uint64) func(pt PageTables) (bench.Op, error) {
	return func(pt PageTables) (bench.Op, error) {
		return bench.Op{Run: func(n int) error {
			for k := 0; k < n; k++ {
				if err := pt.Map(base+size, physLo, size); err != nil {
					return err
				}
				if err := pt.Unmap(base+size, size); err != nil {
					return err
				}
			}
			return nil
		}}, nil
	}
}

// Result is one row measured.
type Result struct {
	Name    string  `json:"name"`
	Nestmmu float64 `json:"nestmmu_ns_per_op"`
	Gvisor  float64 `json:"gvisor_ns_per_op"`
	Ratio   float64 `json:"ratio"`
	Goal    float64 `json:"goal,omitempty"`
	Met     bool    `json:"goal_met"`
}

// Compare measures every row, both sides interleaved, with fresh tables
// per row (s2pt tables in an arena of tableMem bytes).
func Compare(cfg bench.Config, tableMem uint64) ([]Result, error) {
	var out []Result
	for _, r := range Rows() {
		n, err := NewNestmmu(tableMem)
		if err != nil {
			return nil, err
		}
		a, err := r.Make(n)
		if err != nil {
			_ = n.Close()
			return nil, fmt.Errorf("%s: nestmmu: %w", r.Name, err)
		}
		b, err := r.Make(NewGvisor())
		if err != nil {
			_ = n.Close()
			return nil, fmt.Errorf("%s: gVisor: %w", r.Name, err)
		}
		a.Name, b.Name = "nestmmu", "gVisor"
		p, err := bench.Compare(a, b, cfg)
		if cerr := n.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Name, err)
		}
		out = append(out, Result{Name: r.Name, Nestmmu: p.A.NsPerOp, Gvisor: p.B.NsPerOp, Ratio: p.Ratio, Goal: r.Goal, Met: r.Goal == 0 || p.Ratio <= r.Goal})
	}
	return out, nil
}

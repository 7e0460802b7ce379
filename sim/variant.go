package sim

import (
	"fmt"

	"github.com/nestmmu/nestmmu/report"
	"github.com/nestmmu/nestmmu/scenario"
)

// Variant is a design choice that a comparison runs both ways, on the same
// scenario and seed: Apply sets it in the scenario (side 0 or 1), Metrics
// are the figures that show its effect.
type Variant struct {
	Name string
	Doc  string
	// Sides name the two settings (side 0 is the baseline of the ratios).
	Sides [2]string
	// Apply sets side in s; it fails when s lacks what the variant acts on.
	Apply   func(s *scenario.Scenario, side int) error
	Metrics []Metric
}

// Metric is one figure of a report.
type Metric struct {
	Name string
	Get  func(r *report.Report) float64
}

// Variants lists the comparisons available. Nested virtualization will add
// shadow stage 2 against a software three-stage walk, the reverse map on
// and off, and NV against NV2.
var Variants = []Variant{
	{
		Name:  "blocks",
		Doc:   "block mappings: host transparent huge pages (2 MiB stage-2 blocks) and the guest's linear-map blocks, on and off",
		Sides: [2]string{"blocks", "pages"},
		Apply: func(s *scenario.Scenario, side int) error {
			if len(s.VMs) == 0 {
				return fmt.Errorf("the scenario has no arm64 VM")
			}
			s.Host.THP = side == 0
			for i := range s.VMs {
				s.VMs[i].Guest.LinearMapBlocks = side == 0
			}
			return nil
		},
		Metrics: []Metric{
			{"stage-2 faults", func(r *report.Report) float64 { return sumVM(r, func(v *report.VM) uint64 { return v.Stage2.Total }) }},
			{"stage-2 block maps", func(r *report.Report) float64 {
				return sumVM(r, func(v *report.VM) uint64 { return v.Stage2.BlockMaps })
			}},
			{"TLB-miss walks", func(r *report.Report) float64 { return sumVM(r, func(v *report.VM) uint64 { return v.Walks }) }},
			{"descriptor reads", func(r *report.Report) float64 { return sumVM(r, func(v *report.VM) uint64 { return v.DescRead }) }},
			{"descriptor reads per walk", readsPerWalk},
			{"stage-2 table bytes", func(r *report.Report) float64 { return sumVM(r, func(v *report.VM) uint64 { return v.PTBytes.Stage2 }) }},
			{"stage-1 table bytes (peak)", func(r *report.Report) float64 {
				return sumVM(r, func(v *report.VM) uint64 { return v.PTBytes.Stage1Peak })
			}},
			{"accesses per second", func(r *report.Report) float64 { return r.Accesses.PerSecond }},
		},
	},
	{
		Name:  "mips-gva",
		Doc:   "MIPS trap-and-emulate: KVM's GVA page tables with the fast refill, against the linear guest-TLB path (pre-series)",
		Sides: [2]string{"gva-tables", "linear-scan"},
		Apply: func(s *scenario.Scenario, side int) error {
			if len(s.MIPS) == 0 {
				return fmt.Errorf("the scenario has no MIPS guest")
			}
			for i := range s.MIPS {
				s.MIPS[i].GVATables = side == 0
			}
			return nil
		},
		Metrics: []Metric{
			{"host TLB refills, fast path", func(r *report.Report) float64 {
				return sumMIPS(r, func(m *report.MIPS) uint64 { return m.FastRefills })
			}},
			{"host TLB refills, slow path", func(r *report.Report) float64 {
				return sumMIPS(r, func(m *report.MIPS) uint64 { return m.SlowRefills })
			}},
			{"guest TLB scans", func(r *report.Report) float64 { return sumMIPS(r, func(m *report.MIPS) uint64 { return m.GuestScans }) }},
			{"guest TLB entries compared", func(r *report.Report) float64 { return sumMIPS(r, func(m *report.MIPS) uint64 { return m.Compared }) }},
			{"GVA-table reads", func(r *report.Report) float64 { return sumMIPS(r, func(m *report.MIPS) uint64 { return m.TableReads }) }},
			{"MIPS seconds", func(r *report.Report) float64 {
				var s float64
				for _, m := range r.MIPS {
					s += m.SecondsSpent
				}
				return s
			}},
		},
	},
}

// FindVariant returns the variant with the name.
func FindVariant(name string) (*Variant, bool) {
	for i := range Variants {
		if Variants[i].Name == name {
			return &Variants[i], true
		}
	}
	return nil, false
}

func sumVM(r *report.Report, f func(*report.VM) uint64) float64 {
	var n uint64
	for i := range r.VMs {
		n += f(&r.VMs[i])
	}
	return float64(n)
}

func sumMIPS(r *report.Report, f func(*report.MIPS) uint64) float64 {
	var n uint64
	for i := range r.MIPS {
		n += f(&r.MIPS[i])
	}
	return float64(n)
}

func readsPerWalk(r *report.Report) float64 {
	w := sumVM(r, func(v *report.VM) uint64 { return v.Walks })
	if w == 0 {
		return 0
	}
	return sumVM(r, func(v *report.VM) uint64 { return v.DescRead }) / w
}

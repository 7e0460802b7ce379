package sim

import (
	"errors"
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
	Apply func(s *scenario.Scenario, side int) error
	// OneRun: both sides are measured in one run (with side 1 applied),
	// each metric read for each side from its report.
	OneRun  bool
	Metrics []Metric
}

// Metric is one figure of a report for a side of a comparison.
type Metric struct {
	Name string
	Get  func(r *report.Report, side int) float64
}

// each is a metric that reads the same figure on both sides.
func each(name string, f func(r *report.Report) float64) Metric {
	return Metric{name, func(r *report.Report, _ int) float64 { return f(r) }}
}

// Variants lists the comparisons available.
var Variants = []Variant{
	{
		Name:  "blocks",
		Doc:   "block mappings: host transparent huge pages (2 MiB stage-2 blocks) and the guests' linear-map blocks, on and off",
		Sides: [2]string{"blocks", "pages"},
		Apply: func(s *scenario.Scenario, side int) error {
			n := 0
			s.EachVM(func(v *scenario.VM, _ int) {
				if v.Kind == scenario.KindGuest {
					v.Guest.LinearMapBlocks = side == 0
					n++
				}
			})
			if n == 0 {
				return errors.New("the scenario has no arm64 guest VM")
			}
			s.Host.THP = side == 0
			return nil
		},
		Metrics: []Metric{
			each("stage-2 faults (L0's, shadow faults for nested VMs)", func(r *report.Report) float64 {
				return sumVM(r, func(v *report.VM) uint64 {
					if v.Nested != nil {
						return v.Nested.L0.Faults
					}
					return v.Stage2.Total
				})
			}),
			each("stage-2 block maps", func(r *report.Report) float64 {
				return sumVM(r, func(v *report.VM) uint64 { return v.Stage2.BlockMaps }) + sumHyp(r, func(h *report.Hypervisor) uint64 {
					if h.Stage2 == nil {
						return 0
					}
					return h.Stage2.BlockMaps
				})
			}),
			each("TLB-miss walks", func(r *report.Report) float64 { return sumVM(r, func(v *report.VM) uint64 { return v.Walks }) }),
			each("descriptor reads", func(r *report.Report) float64 { return sumVM(r, func(v *report.VM) uint64 { return v.DescRead }) }),
			each("descriptor reads per walk", readsPerWalk),
			each("stage-2 table bytes (shadows for nested VMs)", func(r *report.Report) float64 {
				return sumVM(r, func(v *report.VM) uint64 { return v.PTBytes.Stage2 })
			}),
			each("stage-1 table bytes (peak)", func(r *report.Report) float64 {
				return sumVM(r, func(v *report.VM) uint64 { return v.PTBytes.Stage1Peak })
			}),
			each("accesses per second", func(r *report.Report) float64 { return r.Accesses.PerSecond }),
		},
	},
	{
		Name: "three-stage",
		Doc: "shadow stage 2 against a software three-stage walk: every TLB miss of the guest hypervisors' VMs' processes walked " +
			"through the shadow (the two-dimensional walk the hardware does) and again through the three stages, without a shadow",
		Sides:  [2]string{"shadow", "three-stage"},
		OneRun: true,
		Apply: func(s *scenario.Scenario, side int) error {
			n := 0
			for i := range s.VMs {
				v := &s.VMs[i]
				if v.Kind != scenario.KindHypervisor {
					continue
				}
				v.Hypervisor.ThreeStageWalk = side == 1
				for j := range v.VMs {
					if v.VMs[j].Kind == scenario.KindGuest {
						n++
					}
				}
			}
			if n == 0 {
				return errors.New("the scenario has no guest hypervisor (L1) running a guest VM (L2)")
			}
			return nil
		},
		Metrics: []Metric{
			{"L2 TLB misses walked", func(r *report.Report, side int) float64 {
				return sumThree(r, func(t *report.ThreeStage) uint64 { return pick(side, t.ShadowWalks, t.Walks) })
			}},
			{"descriptor reads", func(r *report.Report, side int) float64 {
				return sumThree(r, func(t *report.ThreeStage) uint64 { return pick(side, t.ShadowReads, t.Reads) })
			}},
			{"descriptor reads per miss", func(r *report.Report, side int) float64 {
				w := sumThree(r, func(t *report.ThreeStage) uint64 { return pick(side, t.ShadowWalks, t.Walks) })
				if w == 0 {
					return 0
				}
				return sumThree(r, func(t *report.ThreeStage) uint64 { return pick(side, t.ShadowReads, t.Reads) }) / w
			}},
			{"longest walk (descriptor reads)", func(r *report.Report, side int) float64 {
				var longest int
				for _, v := range r.VMs {
					if v.Nested != nil && v.Nested.ThreeStage != nil {
						t := v.Nested.ThreeStage
						longest = max(longest, len([2][]uint64{t.ShadowHistogram, t.Histogram}[side])-1)
					}
				}
				return float64(longest)
			}},
		},
	},
	{
		Name: "rmap",
		Doc: "L0's reverse map from a guest hypervisor's IPAs to the shadow entries derived from them, on and off (mainline: " +
			"a host change empties or write-protects every shadow whole), under host memory pressure",
		Sides: [2]string{"reverse-map", "no-reverse-map"},
		Apply: func(s *scenario.Scenario, side int) error {
			n := 0
			for i := range s.VMs {
				if s.VMs[i].Kind == scenario.KindHypervisor {
					s.VMs[i].Hypervisor.ReverseMap = side == 0
					n++
				}
			}
			switch {
			case n == 0:
				return errors.New("the scenario has no guest hypervisor (L1)")
			case !s.Host.Pressure.Enabled:
				return errors.New("host memory pressure is off: no host change reaches the shadows")
			}
			return nil
		},
		Metrics: []Metric{
			each("shadow leaves unmapped by host changes", func(r *report.Report) float64 {
				return sumRmap(r, func(m *report.Rmap) uint64 { return m.LeavesUnmapped })
			}),
			each("shadow bytes unmapped by host changes", func(r *report.Report) float64 {
				return sumRmap(r, func(m *report.Rmap) uint64 { return m.BytesUnmapped })
			}),
			each("whole shadows emptied by host changes", func(r *report.Report) float64 {
				return sumRmap(r, func(m *report.Rmap) uint64 { return m.CoarseFlushes })
			}),
			each("shadow faults", func(r *report.Report) float64 {
				return sumNested(r, func(n *report.NestedVM) uint64 { return n.L0.Faults })
			}),
			each("shadow entries installed", func(r *report.Report) float64 {
				return sumNested(r, func(n *report.NestedVM) uint64 { return n.L0.Installed })
			}),
			each("reverse-map bytes", func(r *report.Report) float64 { return sumRmap(r, func(m *report.Rmap) uint64 { return m.Bytes }) }),
			each("host memory events", func(r *report.Report) float64 {
				var n uint64
				for k, v := range r.Host.Pressure {
					if k != "skipped" && k != "ksm_pages_merged" {
						n += v
					}
				}
				return float64(n)
			}),
			each("accesses per second", func(r *report.Report) float64 { return r.Accesses.PerSecond }),
		},
	},
	{
		Name:  "nv-nv2",
		Doc:   "the guest hypervisors' exits with FEAT_NV (every EL2 register access traps) against FEAT_NV2 (the VNCR page)",
		Sides: [2]string{"NV", "NV2"},
		Apply: func(s *scenario.Scenario, side int) error {
			n := 0
			s.EachVM(func(v *scenario.VM, _ int) {
				if v.Kind == scenario.KindHypervisor {
					v.Hypervisor.Mode = [2]string{scenario.ModeNV, scenario.ModeNV2}[side]
					n++
				}
			})
			if n == 0 {
				return errors.New("the scenario has no guest hypervisor")
			}
			return nil
		},
		Metrics: []Metric{
			each("exits to L0 from L1's vEL2", func(r *report.Report) float64 {
				return sumL1(r, func(h *report.Hypervisor) uint64 { return h.Exits.Total })
			}),
			each("  register-access traps", func(r *report.Report) float64 {
				return sumL1(r, func(h *report.Hypervisor) uint64 { return h.Exits.SysReg })
			}),
			each("  ERET traps", func(r *report.Report) float64 {
				return sumL1(r, func(h *report.Hypervisor) uint64 { return h.Exits.ERET })
			}),
			each("  TLBI traps", func(r *report.Report) float64 {
				return sumL1(r, func(h *report.Hypervisor) uint64 { return h.Exits.TLBI })
			}),
			each("exits to L0 while L2 ran", func(r *report.Report) float64 {
				return sumL1(r, func(h *report.Hypervisor) uint64 { return h.GuestExits })
			}),
			each("exits to L1 from L2 hypervisors", func(r *report.Report) float64 {
				return sumHyp(r, func(h *report.Hypervisor) uint64 {
					if h.Level < 2 {
						return 0
					}
					return h.Exits.Total
				})
			}),
			each("world switches into L2", func(r *report.Report) float64 {
				return sumL1(r, func(h *report.Hypervisor) uint64 { return h.Entries })
			}),
			each("exits per world switch", func(r *report.Report) float64 {
				e := sumL1(r, func(h *report.Hypervisor) uint64 { return h.Entries })
				if e == 0 {
					return 0
				}
				return sumL1(r, func(h *report.Hypervisor) uint64 { return h.Exits.Total }) / e
			}),
			each("accesses per second", func(r *report.Report) float64 { return r.Accesses.PerSecond }),
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
			each("host TLB refills, fast path", func(r *report.Report) float64 {
				return sumMIPS(r, func(m *report.MIPS) uint64 { return m.FastRefills })
			}),
			each("host TLB refills, slow path", func(r *report.Report) float64 {
				return sumMIPS(r, func(m *report.MIPS) uint64 { return m.SlowRefills })
			}),
			each("guest TLB scans", func(r *report.Report) float64 { return sumMIPS(r, func(m *report.MIPS) uint64 { return m.GuestScans }) }),
			each("guest TLB entries compared", func(r *report.Report) float64 { return sumMIPS(r, func(m *report.MIPS) uint64 { return m.Compared }) }),
			each("GVA-table reads", func(r *report.Report) float64 { return sumMIPS(r, func(m *report.MIPS) uint64 { return m.TableReads }) }),
			each("MIPS seconds", func(r *report.Report) float64 {
				var s float64
				for _, m := range r.MIPS {
					s += m.SecondsSpent
				}
				return s
			}),
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

func pick(side int, a, b uint64) uint64 {
	if side == 0 {
		return a
	}
	return b
}

// sumOf adds f over the elements of xs.
func sumOf[T any](xs []T, f func(*T) uint64) float64 {
	var n uint64
	for i := range xs {
		n += f(&xs[i])
	}
	return float64(n)
}

func sumVM(r *report.Report, f func(*report.VM) uint64) float64 { return sumOf(r.VMs, f) }

func sumNested(r *report.Report, f func(*report.NestedVM) uint64) float64 {
	return sumVM(r, func(v *report.VM) uint64 {
		if v.Nested == nil {
			return 0
		}
		return f(v.Nested)
	})
}

func sumThree(r *report.Report, f func(*report.ThreeStage) uint64) float64 {
	return sumNested(r, func(n *report.NestedVM) uint64 {
		if n.ThreeStage == nil {
			return 0
		}
		return f(n.ThreeStage)
	})
}

func sumHyp(r *report.Report, f func(*report.Hypervisor) uint64) float64 {
	return sumOf(r.Hypervisors, f)
}

func sumL1(r *report.Report, f func(*report.Hypervisor) uint64) float64 {
	return sumHyp(r, func(h *report.Hypervisor) uint64 {
		if h.Level != 1 {
			return 0
		}
		return f(h)
	})
}

func sumRmap(r *report.Report, f func(*report.Rmap) uint64) float64 {
	return sumHyp(r, func(h *report.Hypervisor) uint64 {
		if h.Rmap == nil {
			return 0
		}
		return f(h.Rmap)
	})
}

func sumMIPS(r *report.Report, f func(*report.MIPS) uint64) float64 { return sumOf(r.MIPS, f) }

func readsPerWalk(r *report.Report) float64 {
	w := sumVM(r, func(v *report.VM) uint64 { return v.Walks })
	if w == 0 {
		return 0
	}
	return sumVM(r, func(v *report.VM) uint64 { return v.DescRead }) / w
}

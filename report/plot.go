package report

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// palette colours the series of a plot.
var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
}

func colorN(i int) color.Color { return palette[i%len(palette)] }

// WritePlots draws the run's figures into dir, each as SVG and PNG:
// faults (the fault breakdown by kind and level, per VM), walks (the
// histogram of descriptor reads per TLB miss) and cost (throughput,
// descriptor reads per access and faults over time). It returns the files
// written.
func (r *Report) WritePlots(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, f := range []struct {
		name string
		make func() ([][]*plot.Plot, error)
		w, h vg.Length
	}{
		{"faults", r.faultPlot, 18 * vg.Centimeter, 10 * vg.Centimeter},
		{"walks", r.walkPlot, 16 * vg.Centimeter, 9 * vg.Centimeter},
		{"cost", r.costPlot, 16 * vg.Centimeter, 14 * vg.Centimeter},
	} {
		plots, err := f.make()
		if err != nil {
			return files, fmt.Errorf("report: %s plot: %w", f.name, err)
		}
		for _, ext := range []string{"svg", "png"} {
			path := filepath.Join(dir, f.name+"."+ext)
			if err := saveTiled(plots, f.w, f.h, path); err != nil {
				return files, fmt.Errorf("report: %s: %w", path, err)
			}
			files = append(files, path)
		}
	}
	return files, nil
}

// saveTiled draws a grid of plots (rows of columns) into an SVG or PNG.
func saveTiled(plots [][]*plot.Plot, w, h vg.Length, path string) error {
	var c interface {
		vg.CanvasSizer
	}
	var wt io.WriterTo
	switch filepath.Ext(path) {
	case ".svg":
		s := vgsvg.New(w, h)
		c, wt = s, s
	default:
		img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110))
		c, wt = img, vgimg.PngCanvas{Canvas: img}
	}
	dc := draw.New(c)
	rows, cols := len(plots), len(plots[0])
	t := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter, PadY: 3 * vg.Millimeter, PadTop: vg.Millimeter, PadBottom: vg.Millimeter}
	cs := plot.Align(plots, t, dc)
	for i := range plots {
		for j, p := range plots[i] {
			if p != nil {
				p.Draw(cs[i][j])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := wt.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// faultKinds are the fault breakdown's categories. For a VM of a guest
// hypervisor the stage-2 ones are L0's shadow faults (a shadow entry
// installed for "S2 map"), and "to hypervisor" are those forwarded to its
// guest hypervisor, "its S2 map" what that hypervisor mapped.
var faultKinds = []string{"demand", "zero page", "COW copy", "COW reuse", "S2 map", "S2 relax", "S2 AF", "S2 retry", "to hypervisor", "its S2 map", "MMIO"}

func (v *VM) faultCounts() []float64 {
	g, s := v.Guest, v.Stage2
	c := []float64{float64(g.DemandPage), float64(g.DemandZero), float64(g.COWCopy), float64(g.COWReuse),
		float64(s.Maps), float64(s.Relaxes), float64(s.AccessFlag), float64(s.Retries), 0, 0, float64(v.MMIO)}
	if n := v.Nested; n != nil {
		c[4], c[6] = float64(n.L0.Installed), float64(n.L0.AccessFlag)
		c[8], c[9] = float64(n.L0.Forwarded), float64(n.Hypervisor.Maps)
	}
	return c
}

// log10Ticks labels a log10(1+count) axis with the counts.
type log10Ticks struct{}

func (log10Ticks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for k := 0; float64(k) <= max+0.01; k++ {
		v := math.Pow(10, float64(k))
		label := fmt.Sprintf("%g", v)
		switch {
		case k >= 6:
			label = fmt.Sprintf("%gM", v/1e6)
		case k >= 3:
			label = fmt.Sprintf("%gK", v/1e3)
		}
		ts = append(ts, plot.Tick{Value: math.Log10(1 + v), Label: label})
	}
	return ts
}

func (r *Report) faultPlot() ([][]*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Faults by kind and level (guest stage 1, L0 stage 2 or shadow, guest hypervisor, MMIO)"
	p.Y.Label.Text = "faults (logarithmic)"
	p.Y.Tick.Marker = log10Ticks{}
	p.NominalX(faultKinds...)
	w := vg.Points(40 / float64(max(len(r.VMs), 1)))
	for i := range r.VMs {
		v := &r.VMs[i]
		vals := plotter.Values(v.faultCounts())
		for k := range vals {
			vals[k] = math.Log10(1 + vals[k])
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		b.Color = colorN(i)
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(i)-float64(len(r.VMs)-1)/2)
		p.Add(b)
		p.Legend.Add(v.Name, b)
	}
	p.Legend.Top = true
	p.Y.Min = 0
	p.X.Tick.Label.Rotation = 0.5
	p.X.Tick.Label.XAlign = draw.XRight
	return [][]*plot.Plot{{p}}, nil
}

func (r *Report) walkPlot() ([][]*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Descriptor reads per TLB miss"
	p.X.Label.Text = "descriptor reads in the walk (both stages)"
	p.Y.Label.Text = "share of walks (%)"
	var total uint64
	for _, v := range r.WalkReads {
		total += v
	}
	xys := make(plotter.XYs, 0, len(r.WalkReads))
	for reads, v := range r.WalkReads {
		if total > 0 {
			xys = append(xys, plotter.XY{X: float64(reads), Y: 100 * float64(v) / float64(total)})
		}
	}
	if len(xys) == 0 {
		xys = append(xys, plotter.XY{})
	}
	h, err := plotter.NewHistogram(xyHist(xys), len(xys))
	if err != nil {
		return nil, err
	}
	h.FillColor = colorN(0)
	h.LineStyle.Width = 0
	p.Add(h)
	p.X.Min, p.Y.Min = 0, 0
	p.X.Max = float64(len(r.WalkReads)) + 1
	return [][]*plot.Plot{{p}}, nil
}

// xyHist turns points at integer x into a histogram's weighted values.
type xyHist plotter.XYs

func (h xyHist) Len() int                    { return len(h) }
func (h xyHist) XY(i int) (float64, float64) { return h[i].X + 0.5, h[i].Y }

func (r *Report) costPlot() ([][]*plot.Plot, error) {
	rate := plot.New()
	rate.Title.Text = "Cost over time"
	rate.Y.Label.Text = "M accesses / s"
	work := plot.New()
	work.X.Label.Text = "seconds"
	work.Y.Label.Text = "per access"
	var thr, user, reads, faults plotter.XYs
	tl := r.Timeline
	for i := 1; i < len(tl); i++ {
		a, b := tl[i-1], tl[i]
		dt, da := b.Seconds-a.Seconds, float64(b.Accesses-a.Accesses)
		if dt <= 0 || da <= 0 {
			continue
		}
		x := b.Seconds
		thr = append(thr, plotter.XY{X: x, Y: da / dt / 1e6})
		user = append(user, plotter.XY{X: x, Y: float64(b.User-a.User) / dt / 1e6})
		reads = append(reads, plotter.XY{X: x, Y: float64(b.Reads-a.Reads) / da})
		faults = append(faults, plotter.XY{X: x, Y: 100 * float64((b.Faults-a.Faults)+(b.S2Faults-a.S2Faults)) / da})
	}
	if len(thr) == 0 {
		thr = plotter.XYs{{}}
		user, reads, faults = thr, thr, thr
	}
	for _, s := range []struct {
		p     *plot.Plot
		xys   plotter.XYs
		name  string
		color int
	}{{rate, thr, "all guest accesses", 0}, {rate, user, "user accesses", 2}, {work, reads, "descriptor reads per access", 1}, {work, faults, "faults (guest + stage 2) per 100 accesses", 3}} {
		l, err := plotter.NewLine(s.xys)
		if err != nil {
			return nil, err
		}
		l.Color = colorN(s.color)
		l.Width = vg.Points(1.5)
		s.p.Add(l)
		s.p.Legend.Add(s.name, l)
		s.p.Legend.Top = true
	}
	rate.Y.Min, work.Y.Min = 0, 0
	return [][]*plot.Plot{{rate}, {work}}, nil
}

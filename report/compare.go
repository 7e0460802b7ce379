package report

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Comparison is one design choice run both ways on the same scenario and
// seed: a row per figure, with the ratio of side B to side A.
type Comparison struct {
	Variant string    `json:"variant"`
	Doc     string    `json:"doc"`
	Sides   [2]string `json:"sides"`
	// OneRun: both sides were measured in one run.
	OneRun  bool         `json:"one_run"`
	Rows    []CompareRow `json:"rows"`
	Checks  [2]Checks    `json:"checks"`
	Elapsed [2]float64   `json:"elapsed_seconds"`
	Reports [2]*Report   `json:"-"`
}

// CompareRow is one figure on both sides.
type CompareRow struct {
	Metric string  `json:"metric"`
	A      float64 `json:"a"`
	B      float64 `json:"b"`
	// Ratio is B/A (NaN when A is 0).
	Ratio float64 `json:"ratio"`
}

// Ratio returns b/a, or NaN when a is 0.
func Ratio(a, b float64) float64 {
	if a == 0 {
		return math.NaN()
	}
	return b / a
}

func num(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return n(uint64(v))
	case math.Abs(v) >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1000:
		return n(uint64(math.Round(v)))
	}
	return fmt.Sprintf("%.3g", v)
}

// WriteText writes the comparison as a table.
func (c *Comparison) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "%s: %s\n", c.Variant, c.Doc)
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%s\t%s\t%s / %s\t\n", c.Sides[0], c.Sides[1], c.Sides[1], c.Sides[0])
	for _, r := range c.Rows {
		ratio := "-"
		if !math.IsNaN(r.Ratio) {
			ratio = fmt.Sprintf("%.3f", r.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", r.Metric, num(r.A), num(r.B), ratio)
	}
	tw.Flush()
	for i, s := range c.Sides {
		if c.OneRun && i == 0 {
			continue
		}
		if c.OneRun {
			s = "one run, both measured"
		}
		ch := c.Checks[i]
		fmt.Fprintf(ew, "  %s: %.2f s, %s loads checked, %s invariant checks, %d violations\n", s, c.Elapsed[i],
			n(ch.IntegrityChecks), n(ch.InvariantChecks), ch.Violations())
	}
	return ew.err
}

// WriteComparisonPlots draws each comparison's ratios (side B over side A,
// on a log2 axis: 1 is no change) into dir as compare.svg and compare.png.
func WriteComparisonPlots(cs []*Comparison, dir string) ([]string, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var rows [][]*plot.Plot
	for _, c := range cs {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: %s / %s", c.Variant, c.Sides[1], c.Sides[0])
		p.Y.Label.Text = "ratio (log2)"
		p.Y.Tick.Marker = log2Ticks{}
		var names []string
		var vals plotter.Values
		for _, r := range c.Rows {
			if math.IsNaN(r.Ratio) || r.Ratio <= 0 {
				continue
			}
			names = append(names, r.Metric)
			vals = append(vals, math.Log2(r.Ratio))
		}
		if len(vals) == 0 {
			names, vals = []string{"(no ratio)"}, plotter.Values{0}
		}
		b, err := plotter.NewBarChart(vals, vg.Points(18))
		if err != nil {
			return nil, err
		}
		b.Color = colorN(len(rows))
		b.LineStyle.Width = 0
		p.Add(b, plotter.NewGrid())
		p.NominalX(names...)
		p.X.Tick.Label.Rotation = 0.45
		p.X.Tick.Label.XAlign = draw.XRight
		rows = append(rows, []*plot.Plot{p})
	}
	var files []string
	for _, ext := range []string{"svg", "png"} {
		path := filepath.Join(dir, "compare."+ext)
		if err := saveTiled(rows, 18*vg.Centimeter, vg.Length(len(rows))*11*vg.Centimeter, path); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}

// log2Ticks labels a log2 axis with the ratios.
type log2Ticks struct{}

func (log2Ticks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	lo, hi := math.Floor(min), math.Ceil(max)
	if hi-lo > 12 {
		lo, hi = math.Floor(min/2)*2, math.Ceil(max/2)*2
	}
	for k := lo; k <= hi; k++ {
		v := math.Pow(2, k)
		label := fmt.Sprintf("%g", v)
		if k < 0 {
			label = fmt.Sprintf("1/%g", 1/v)
		}
		ts = append(ts, plot.Tick{Value: k, Label: label})
	}
	return ts
}

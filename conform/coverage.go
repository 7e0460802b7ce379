package conform

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/at"
)

// Coverage counts what the compared cases exercised: per AT operation, per
// outcome (fault kind, level and stage), per stage, per granule and per
// configuration feature. Keys are "group/name".
type Coverage struct {
	n map[string]int
}

// NewCoverage returns empty counters.
func NewCoverage() *Coverage { return &Coverage{n: map[string]int{}} }

// Add counts key once.
func (c *Coverage) Add(key string) { c.n[key]++ }

// Count returns the count of key.
func (c *Coverage) Count(key string) int { return c.n[key] }

// Keys returns every key counted, sorted.
func (c *Coverage) Keys() []string {
	ks := make([]string, 0, len(c.n))
	for k := range c.n {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// addCase counts a generated case and its compared operations.
func (c *Coverage) addCase(g *Case, o *Outcome) {
	for _, f := range g.Feats {
		c.Add("feature/" + f)
	}
	for i, op := range o.Ops {
		name := o.Q.Ops[i].Name
		c.Add("op/" + name)
		r := op.Model
		switch {
		case r.Taken:
			f := r.Fault()
			switch r.Exception.Kind {
			case at.Undefined:
				c.Add("outcome/exception UNDEFINED")
			case at.TrapEL2:
				c.Add("outcome/exception trapped to EL2")
			default:
				st := "stage 1"
				if f.Stage2 {
					st = "stage 2"
					if f.S1PTW {
						st = "stage 2 on stage-1 walk"
					}
				}
				c.Add(fmt.Sprintf("outcome/exception data abort: %s %s L%d", st, f.Kind, f.Level))
			}
			continue
		case r.Stage12:
			c.Add("stage/stage 1+2")
		default:
			c.Add("stage/stage 1 (" + r.Regime.String() + ")")
		}
		f := r.Fault()
		if !f.IsFault() {
			c.Add("outcome/success")
			continue
		}
		st := "stage 1"
		if f.Stage2 {
			st = "stage 2"
			if f.S1PTW {
				st = "stage 2 on stage-1 walk"
			}
		}
		c.Add(fmt.Sprintf("outcome/fault %s %s L%d", st, f.Kind, f.Level))
	}
}

// Write prints the counters grouped by prefix.
func (c *Coverage) Write(w io.Writer) {
	fmt.Fprintln(w, "coverage:")
	group := ""
	for _, k := range c.Keys() {
		g, name, _ := strings.Cut(k, "/")
		if g != group {
			group = g
			fmt.Fprintf(w, "  %s:\n", g)
		}
		fmt.Fprintf(w, "    %7d  %s\n", c.n[k], name)
	}
}

// Package conform is the differential conformance harness of the
// translation core (issue 3): it generates random translation scenarios
// from a seed (register configurations, translation tables with every
// descriptor kind at every level, AT operations), evaluates each with the
// model (package atjson over arm64/at and arm64/vmsa) and with QEMU 10
// (package conform/qemu), and compares PAR_EL1, the exceptions AT takes and
// the watched descriptors. A mismatch is written as an at-json reproducer
// (accepted by `nestmmu explain --json`), minimized, and reported; QEMU
// behaviour known to deviate from the architecture is listed in
// deviations.go with the deciding rule and does not count as a mismatch.
// docs/CONFORMANCE.md describes how to run it and what it covers.
package conform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/conform/qemu"
	"github.com/nestmmu/nestmmu/mem"
)

// Doc is an at-json input document (docs/AT-JSON.md).
type Doc struct {
	RAM    []DocRange        `json:"ram"`
	Mem    map[string]string `json:"mem"`
	Regs   map[string]string `json:"regs"`
	PSTATE DocPSTATE         `json:"pstate"`
	Ops    []DocOp           `json:"ops"`
	Watch  []string          `json:"watch"`
}

// DocRange is one "ram" entry.
type DocRange struct {
	Base string `json:"base"`
	Size string `json:"size"`
}

// DocPSTATE is the "pstate" object.
type DocPSTATE struct {
	EL  int `json:"el"`
	PAN int `json:"pan"`
}

// DocOp is one "ops" entry.
type DocOp struct {
	Op string `json:"op"`
	VA string `json:"va"`
}

func hex(v uint64) string { return fmt.Sprintf("0x%x", v) }

// ToDoc returns the at-json document of an oracle case, with the RAM QEMU's
// machine has (qemu.RAM).
func ToDoc(c *qemu.Case) Doc {
	d := Doc{RAM: []DocRange{{hex(qemu.RAMBase), hex(qemu.RAMSize)}},
		Mem: map[string]string{}, Regs: map[string]string{}, PSTATE: DocPSTATE{EL: 2}}
	if c.PAN {
		d.PSTATE.PAN = 1
	}
	for a, v := range c.Mem {
		d.Mem[hex(a)] = hex(v)
	}
	for n, v := range c.Regs {
		d.Regs[n] = hex(v)
	}
	for _, op := range c.Ops {
		d.Ops = append(d.Ops, DocOp{op.Name, hex(op.VA)})
	}
	d.Watch = []string{}
	for _, a := range c.Watch {
		d.Watch = append(d.Watch, hex(a))
	}
	return d
}

// MarshalCase renders an oracle case as an indented at-json document.
func MarshalCase(c *qemu.Case) []byte {
	b, err := json.MarshalIndent(ToDoc(c), "", "  ")
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return append(b, '\n')
}

// ModelRun is the model's answer for one case.
type ModelRun struct {
	Results []at.Result
	Watch   []uint64
}

// RunModel evaluates c with the model through the at-json contract, the
// way `nestmmu at --json` does.
func RunModel(c *qemu.Case) (ModelRun, error) {
	m, err := atjson.Parse(bytes.NewReader(MarshalCase(c)))
	if err != nil {
		return ModelRun{}, fmt.Errorf("model rejected case: %w", err)
	}
	_, res := m.Run(nil)
	out := ModelRun{Results: res}
	for _, a := range m.Watch {
		v, _ := m.Mem.Read64(mem.PA(a))
		out.Watch = append(out.Watch, v)
	}
	return out, nil
}

// OpOutcome is the comparison of one operation.
type OpOutcome struct {
	Model at.Result
	QEMU  qemu.OpResult
	// Class is the mismatch class ("" when the two agree or the difference
	// is explained); Explained names the known deviation that explains it.
	Class     string
	Explained string
	Detail    string
}

// Outcome is the comparison of one case.
type Outcome struct {
	// Q is the case QEMU ran: the generated case minus the operations the
	// model predicts would crash QEMU (Dropped counts them).
	Q       qemu.Case
	Dropped int
	Ops     []OpOutcome
	// WatchClass and WatchDetail describe the first differing watched
	// word ("" when all agree).
	WatchClass, WatchDetail string
	// WatchExplained lists the known deviations that explain differing
	// watched words; WatchSkipped reports that watched words were not
	// compared because an explained deviation changed QEMU's walks.
	WatchExplained []string
	WatchSkipped   bool
	// Err is a harness failure: the model rejected the case or QEMU
	// crashed, hung or faulted on it.
	Err      error
	ErrClass string
	model    ModelRun
}

// Mismatches returns the unexplained mismatch classes of the outcome with
// the index of the first operation of each (-1 for watched words and
// harness errors).
func (o *Outcome) Mismatches() []Mismatch {
	var out []Mismatch
	seen := map[string]bool{}
	if o.Err != nil {
		return []Mismatch{{Class: o.ErrClass, Op: -1, Detail: o.Err.Error()}}
	}
	for i, op := range o.Ops {
		if op.Class != "" && !seen[op.Class] {
			seen[op.Class] = true
			out = append(out, Mismatch{Class: op.Class, Op: i, Detail: op.Detail})
		}
	}
	if o.WatchClass != "" && len(out) == 0 {
		out = append(out, Mismatch{Class: o.WatchClass, Op: -1, Detail: o.WatchDetail})
	}
	return out
}

// Mismatch is one unexplained difference.
type Mismatch struct {
	// CaseID is the generated case ("seed:index").
	CaseID string
	// Class groups mismatches of the same kind (regime, operation, and
	// the two outcomes without addresses).
	Class string
	// Op is the index of the operation, -1 for a watched word or a
	// harness failure.
	Op int
	// Detail gives the operation, its input address and both answers.
	Detail string
	// File is the reproducer written for it ("" when none).
	File string
}

// prepare runs the model on c and drops the operations that would crash
// QEMU (deviations.go: crashesQEMU), re-running until stable.
func prepare(c qemu.Case) (qemu.Case, ModelRun, int, error) {
	dropped := 0
	for {
		mr, err := RunModel(&c)
		if err != nil {
			return c, mr, dropped, err
		}
		keep := c.Ops[:0:0]
		for i, op := range c.Ops {
			if !crashesQEMU(op.Name, mr.Results[i]) && !variantCrashes(&c, i) {
				keep = append(keep, op)
			}
		}
		if len(keep) == len(c.Ops) {
			return c, mr, dropped, nil
		}
		dropped += len(c.Ops) - len(keep)
		c.Ops = keep
	}
}

// evaluate runs cases on the model and QEMU and compares them.
func evaluate(ctx context.Context, o *qemu.Oracle, cases []qemu.Case) ([]Outcome, error) {
	outs := make([]Outcome, len(cases))
	parallel(len(cases), func(i int) {
		qc, mr, dropped, err := prepare(cases[i])
		outs[i] = Outcome{Q: qc, Dropped: dropped, model: mr}
		if err != nil {
			outs[i].Err, outs[i].ErrClass = err, "harness: model rejected case"
		}
	})
	var qcases []qemu.Case
	var idx []int
	for i := range outs {
		if outs[i].Err == nil {
			qcases = append(qcases, outs[i].Q)
			idx = append(idx, i)
		}
	}
	res, err := o.Run(ctx, qcases)
	if err != nil {
		return nil, err
	}
	parallel(len(res), func(k int) { compare(&outs[idx[k]], res[k]) })
	return outs, nil
}

// parallel calls f(0..n-1) on GOMAXPROCS goroutines.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// compare fills out from the model's run and QEMU's result r.
func compare(out *Outcome, r qemu.Result) {
	c := &out.Q
	if r.Err != nil {
		out.Err = r.Err
		switch {
		case errors.Is(r.Err, qemu.ErrQEMUCrashed):
			out.ErrClass = "qemu crashed (model predicts no crash)"
			if strings.Contains(r.Err.Error(), "is_s2_format") {
				out.ErrClass = "qemu crashed: final stage-2 permission fault the model does not predict"
			}
		default:
			out.ErrClass = "harness: " + strings.SplitN(r.Err.Error(), ":", 2)[0]
		}
		return
	}
	mr := out.model
	out.Ops = make([]OpOutcome, len(c.Ops))
	for i, op := range c.Ops {
		oo := &out.Ops[i]
		oo.Model, oo.QEMU = mr.Results[i], r.Ops[i]
		mc, qc := describeModel(oo.Model), describeQEMU(oo.QEMU)
		if mc == qc {
			continue
		}
		if name := explain(c, i, oo.Model, oo.QEMU); name != "" {
			oo.Explained = name
			continue
		}
		oo.Class = fmt.Sprintf("%s %s: model %s, qemu %s", regimeTag(c, op.Name), op.Name, classOf(mc), classOf(qc))
		if !oo.Model.Taken && !oo.QEMU.Exception && oo.Model.PAR&1 == 0 && oo.QEMU.PAR&1 == 0 {
			oo.Class = fmt.Sprintf("%s %s: success, PAR differs in %s", regimeTag(c, op.Name), op.Name,
				parFields(parMask(uint64(oo.Model.PAR))^parMask(oo.QEMU.PAR)))
		}
		oo.Detail = fmt.Sprintf("op %d AT %s VA %#x: model %s, qemu %s", i, op.Name, op.VA, mc, qc)
	}
	for _, op := range out.Ops {
		if changesWalks(op.Explained) {
			out.WatchSkipped = true
			return
		}
	}
	for i, a := range c.Watch {
		if mr.Watch[i] != r.Watch[i] {
			if name := explainWatch(c, mr.Watch[i], r.Watch[i], permissionFault(out)); name != "" {
				out.WatchExplained = append(out.WatchExplained, name)
				continue
			}
			x := mr.Watch[i] ^ r.Watch[i]
			out.WatchClass = fmt.Sprintf("watched descriptor differs in bits %s", bitNames(x))
			out.WatchDetail = fmt.Sprintf("word %#x: model %#x, qemu %#x", a, mr.Watch[i], r.Watch[i])
			break
		}
	}
}

// permissionFault reports whether an operation of the outcome took a
// Permission fault on either side.
func permissionFault(o *Outcome) bool {
	for _, op := range o.Ops {
		if op.Model.Fault().Kind == vmsa.FaultPermission {
			return true
		}
		if !op.QEMU.Exception && op.QEMU.PAR&1 == 1 && op.QEMU.PAR>>1&0b111100 == 0b001100 {
			return true
		}
	}
	return false
}

// parMask clears the PAR_EL1 bits a comparison ignores (PAR_EL1
// description, DDI 0487 D23): on success NS (bit 9, UNKNOWN for a
// Non-secure regime) and the IMPLEMENTATION DEFINED bits [55:52]; on a
// fault (F=1) the IMPLEMENTATION DEFINED bits [63:52]. Bit 9 is S on a
// fault and is compared.
func parMask(par uint64) uint64 {
	if par&1 != 0 {
		return par &^ (0xfff << 52)
	}
	return par &^ (1<<9 | 0xf<<52)
}

// describeModel and describeQEMU render an outcome in one comparable
// form: "PAR 0x..." (masked) or "exception EC 0x.. FSC 0x.. FAR 0x..".
func describeModel(r at.Result) string {
	if !r.Taken {
		return fmt.Sprintf("PAR %#x", parMask(uint64(r.PAR)))
	}
	e := r.Exception
	if e.Kind == at.Undefined {
		return "exception EC 0x0"
	}
	esr := uint64(e.ESR)
	return fmt.Sprintf("exception EC %#x FSC %#x S1PTW %d FAR %#x", esr>>26&0x3f, esr&0x3f, esr>>7&1, e.FAR)
}

func describeQEMU(r qemu.OpResult) string {
	if !r.Exception {
		return fmt.Sprintf("PAR %#x", parMask(r.PAR))
	}
	if r.EC() == 0 {
		return "exception EC 0x0"
	}
	return fmt.Sprintf("exception EC %#x FSC %#x S1PTW %d FAR %#x", r.EC(), r.ESR&0x3f, r.ESR>>7&1, r.FAR)
}

// classOf reduces a description to its class: success, fault with FST,
// PTW and S, or exception kind.
func classOf(d string) string {
	var v uint64
	if _, err := fmt.Sscanf(d, "PAR %v", &v); err == nil {
		if v&1 == 0 {
			return "success"
		}
		s := fmt.Sprintf("fault %s", fstName(v>>1&0x3f))
		if v>>8&1 == 1 {
			s += " PTW"
		}
		if v>>9&1 == 1 {
			s += " S2"
		}
		return s
	}
	if i := strings.Index(d, " FAR"); i >= 0 {
		return d[:i]
	}
	return d
}

// parFields names the PAR_EL1 fields (F=0 layout) in which x is set.
func parFields(x uint64) string {
	var s []string
	if x&0x000f_ffff_ffff_f000 != 0 {
		s = append(s, "PA")
	}
	if x>>56 != 0 {
		s = append(s, "ATTR")
	}
	if x>>7&3 != 0 {
		s = append(s, "SH")
	}
	if x&^(0x000f_ffff_ffff_f000|0xff<<56|3<<7) != 0 {
		s = append(s, fmt.Sprintf("bits %#x", x&^(0x000f_ffff_ffff_f000|0xff<<56|3<<7)))
	}
	return strings.Join(s, "+")
}

// fstName names a fault status code.
func fstName(fst uint64) string {
	l := fst & 3
	switch fst &^ 3 {
	case 0b000000:
		return fmt.Sprintf("address-size L%d", l)
	case 0b000100:
		return fmt.Sprintf("translation L%d", l)
	case 0b001000:
		return fmt.Sprintf("access-flag L%d", l)
	case 0b001100:
		return fmt.Sprintf("permission L%d", l)
	case 0b010100:
		return fmt.Sprintf("external-abort-walk L%d", l)
	}
	switch fst {
	case 0b101001:
		return "address-size L-1"
	case 0b101011:
		return "translation L-1"
	}
	return fmt.Sprintf("FST %#x", fst)
}

// regimeTag summarizes what an operation translates, for mismatch classes.
func regimeTag(c *qemu.Case, op string) string {
	hcr := c.Regs["HCR_EL2"]
	switch {
	case strings.HasPrefix(op, "S1E2"):
		if hcr&hcrE2H != 0 {
			return "EL2&0"
		}
		return "EL2"
	case hcr&(hcrE2H|hcrTGE) == hcrE2H|hcrTGE:
		return "EL2&0"
	case strings.HasPrefix(op, "S12") && hcr&(hcrVM|hcrDC) != 0:
		return "EL1&0+S2"
	case hcr&(hcrVM|hcrDC) != 0:
		return "EL1&0(S2 on)"
	}
	return "EL1&0"
}

// bitNames names the descriptor bits in x.
func bitNames(x uint64) string {
	var s []string
	names := map[int]string{10: "AF", 7: "AP[2]/S2AP[1]", 51: "DBM"}
	for b := 0; b < 64; b++ {
		if x>>b&1 == 1 {
			if n, ok := names[b]; ok {
				s = append(s, n)
			} else {
				s = append(s, fmt.Sprint(b))
			}
		}
	}
	return strings.Join(s, ",")
}

// Options configures Run.
type Options struct {
	// Seed and Cases select the generated cases (Generate(Seed, Cases)).
	Seed  int64
	Cases int
	// OutDir receives one minimized at-json reproducer per mismatch class
	// (mismatch-*.json, with a .txt note); empty writes none. It is
	// created when the first reproducer is written, not before.
	OutDir string
	// Log receives one line per mismatch; nil discards.
	Log io.Writer
	// Batch is the number of cases per oracle run (default 2000).
	Batch int
	// Oracle runs the cases on QEMU.
	Oracle *qemu.Oracle
}

// Report summarizes a run.
type Report struct {
	Cases, Ops int
	// Compared counts operations compared; DroppedOps those not run on
	// QEMU because the model predicts a QEMU crash.
	Compared, DroppedOps int
	// WatchSkipped counts cases whose watched words were not compared
	// (an explained deviation changed QEMU's walks).
	WatchSkipped int
	// Mismatches lists every unexplained mismatch (one per class per case).
	Mismatches []Mismatch
	// Classes counts unexplained mismatches per class; Explained counts
	// differences explained by known QEMU deviations.
	Classes   map[string]int
	Explained map[string]int
	// Coverage counts what the cases exercised.
	Coverage *Coverage
}

// Unexplained returns the number of unexplained mismatches.
func (r *Report) Unexplained() int { return len(r.Mismatches) }

// Run generates, evaluates and compares opts.Cases cases.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Oracle == nil {
		return nil, errors.New("conform: Options.Oracle is nil")
	}
	if opts.Cases < 0 {
		return nil, fmt.Errorf("conform: %d cases", opts.Cases)
	}
	if opts.Batch <= 0 {
		opts.Batch = 2000
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	rep := &Report{Classes: map[string]int{}, Explained: map[string]int{}, Coverage: NewCoverage()}
	written := map[string]bool{}
	for start := 0; start < opts.Cases; start += opts.Batch {
		n := min(opts.Batch, opts.Cases-start)
		gen := make([]Case, n)
		qc := make([]qemu.Case, n)
		for i := range gen {
			gen[i] = GenerateOne(opts.Seed, start+i)
			qc[i] = gen[i].Q
		}
		outs, err := evaluate(ctx, opts.Oracle, qc)
		if err != nil {
			return rep, err
		}
		for i := range outs {
			o := &outs[i]
			rep.Cases++
			rep.Ops += len(gen[i].Q.Ops)
			rep.DroppedOps += o.Dropped
			rep.Coverage.addCase(&gen[i], o)
			for _, op := range o.Ops {
				rep.Compared++
				if op.Explained != "" {
					rep.Explained[op.Explained]++
				}
			}
			for _, name := range o.WatchExplained {
				rep.Explained["watch: "+name]++
			}
			if o.WatchSkipped {
				rep.WatchSkipped++
			}
			for _, m := range o.Mismatches() {
				m.CaseID = gen[i].ID
				rep.Classes[m.Class]++
				if opts.OutDir != "" && !written[m.Class] {
					written[m.Class] = true
					f, err := writeReproducer(ctx, opts.Oracle, opts.OutDir, &gen[i], o, m)
					if err != nil {
						fmt.Fprintf(log, "conform: reproducer for %s: %v\n", m.CaseID, err)
					}
					m.File = f
				}
				rep.Mismatches = append(rep.Mismatches, m)
				line := fmt.Sprintf("MISMATCH case %s (%s): %s [%s]", m.CaseID, gen[i].Kind, m.Detail, m.Class)
				if m.File != "" {
					line += " -> " + m.File
				}
				fmt.Fprintln(log, line)
			}
		}
	}
	return rep, nil
}

// WriteSummary prints the mismatch classes, the explained deviations and
// the coverage counters.
func (r *Report) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "cases %d, operations %d (compared %d, not run on QEMU to avoid a known crash %d)\n",
		r.Cases, r.Ops, r.Compared, r.DroppedOps)
	fmt.Fprintf(w, "cases whose watched words were not compared (after a walk-changing deviation): %d\n", r.WatchSkipped)
	fmt.Fprintf(w, "unexplained mismatches: %d\n", r.Unexplained())
	for _, k := range sortedKeys(r.Classes) {
		fmt.Fprintf(w, "  %6d  %s\n", r.Classes[k], k)
	}
	fmt.Fprintf(w, "explained by known QEMU deviations (deviations.go):\n")
	for _, k := range sortedKeys(r.Explained) {
		fmt.Fprintf(w, "  %6d  %s\n", r.Explained[k], k)
	}
	r.Coverage.Write(w)
}

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// writeReproducer minimizes the case for m and writes it to dir; it
// returns the file name.
func writeReproducer(ctx context.Context, o *qemu.Oracle, dir string, c *Case, out *Outcome, m Mismatch) (string, error) {
	q := out.Q
	if !strings.HasPrefix(m.Class, "harness") {
		q = minimize(ctx, o, out.Q, c.Protected, m)
	}
	// The directory is created only when there is something to write.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := filepath.Join(dir, fmt.Sprintf("mismatch-%s.json", fileTag(c.ID, m.Class)))
	if err := os.WriteFile(name, MarshalCase(&q), 0o644); err != nil {
		return "", err
	}
	note := fmt.Sprintf("case %s (%s)\nclass: %s\noriginal: %s\n", c.ID, c.Kind, m.Class, m.Detail)
	if outs, err := evaluate(ctx, o, []qemu.Case{q}); err == nil {
		for _, mm := range outs[0].Mismatches() {
			note += "minimized: " + mm.Detail + "\n"
		}
		for i, op := range outs[0].Ops {
			note += fmt.Sprintf("op %d %s %#x: model %s | qemu %s\n", i, q.Ops[i].Name, q.Ops[i].VA,
				describeModelFull(op.Model), op.QEMU)
		}
	}
	return name, os.WriteFile(strings.TrimSuffix(name, ".json")+".txt", []byte(note), 0o644)
}

func describeModelFull(r at.Result) string {
	if r.Taken {
		return r.Exception.String()
	}
	s := fmt.Sprintf("PAR %#x", uint64(r.PAR))
	if f := r.Fault(); f.IsFault() {
		s += " (" + f.String() + ")"
	}
	return s
}

// fileTag makes a short file-name tag from a case ID and a class.
func fileTag(id, class string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(class); i++ {
		h = (h ^ uint32(class[i])) * 16777619
	}
	return fmt.Sprintf("%08x-%s", h, strings.ReplaceAll(id, ":", "-"))
}

// minimize drops operations and memory words while the mismatch class
// persists; every trial is evaluated on both sides. Protected words (the
// runner's EL2 mapping) are kept.
func minimize(ctx context.Context, o *qemu.Oracle, q qemu.Case, protected map[uint64]bool, m Mismatch) qemu.Case {
	still := func(cs []qemu.Case) []bool {
		outs, err := evaluate(ctx, o, cs)
		ok := make([]bool, len(cs))
		if err != nil {
			return ok
		}
		for i := range outs {
			for _, mm := range outs[i].Mismatches() {
				if mm.Class == m.Class {
					ok[i] = true
				}
			}
		}
		return ok
	}
	// Operations: the mismatching one alone, else the prefix up to it.
	if m.Op >= 0 && len(q.Ops) > 1 {
		alone, prefix := q, q
		alone.Ops = []qemu.Op{q.Ops[m.Op]}
		prefix.Ops = q.Ops[:m.Op+1]
		r := still([]qemu.Case{alone, prefix})
		switch {
		case r[0]:
			q = alone
		case r[1]:
			q = prefix
		}
	}
	if m.Op >= 0 {
		q.Watch = nil
	}
	// Memory words: try every single drop in one batch, then drop all
	// that kept the mismatch together, halving on failure.
	for round := 0; round < 3; round++ {
		var cand []uint64
		for a := range q.Mem {
			if !protected[a] {
				cand = append(cand, a)
			}
		}
		sort.Slice(cand, func(i, j int) bool { return cand[i] < cand[j] })
		if len(cand) == 0 {
			break
		}
		trials := make([]qemu.Case, len(cand))
		for i, a := range cand {
			trials[i] = withoutWords(q, a)
		}
		r := still(trials)
		var ok []uint64
		for i, a := range cand {
			if r[i] {
				ok = append(ok, a)
			}
		}
		if len(ok) == 0 {
			break
		}
		for len(ok) > 0 {
			t := withoutWords(q, ok...)
			if still([]qemu.Case{t})[0] {
				q = t
				break
			}
			ok = ok[:len(ok)/2]
		}
	}
	return q
}

// withoutWords returns q without the memory words at addrs (and without
// watching them).
func withoutWords(q qemu.Case, addrs ...uint64) qemu.Case {
	drop := map[uint64]bool{}
	for _, a := range addrs {
		drop[a] = true
	}
	n := q
	n.Mem = make(map[uint64]uint64, len(q.Mem))
	for a, v := range q.Mem {
		if !drop[a] {
			n.Mem[a] = v
		}
	}
	n.Watch = nil
	for _, a := range q.Watch {
		if !drop[a] {
			n.Watch = append(n.Watch, a)
		}
	}
	return n
}

// ParseCase reads an at-json document (as MarshalCase writes it) into an
// oracle case. "ram" must be QEMU's RAM and pstate.el 2 (the oracle runs
// at EL2 only).
func ParseCase(r io.Reader) (qemu.Case, error) {
	var c qemu.Case
	d, err := atjson.ParseDocument(r)
	if err != nil {
		return c, err
	}
	if len(d.RAM) != 1 {
		return c, fmt.Errorf("ram: %d ranges, QEMU's machine has one: [%#x, %#x)", len(d.RAM), qemu.RAMBase, qemu.RAMBase+qemu.RAMSize)
	}
	if base, size := uint64(d.RAM[0].Base), d.RAM[0].Size; base != qemu.RAMBase || size != qemu.RAMSize {
		return c, fmt.Errorf("ram [%#x, +%#x) is not QEMU's [%#x, +%#x)", base, size, qemu.RAMBase, qemu.RAMSize)
	}
	if d.PSTATE.EL != 2 {
		return c, fmt.Errorf("pstate.el %d: the oracle runs at EL2 only", d.PSTATE.EL)
	}
	c.EL = 2
	c.PAN = d.PSTATE.PAN
	c.Regs = map[string]uint64{}
	for _, reg := range d.Registers {
		c.Regs[reg.Name] = reg.Value
	}
	c.Mem = map[uint64]uint64{}
	for _, w := range d.Words {
		c.Mem[w.Addr] = w.Value
	}
	for _, o := range d.Ops {
		c.Ops = append(c.Ops, qemu.Op{Name: o.Op.String(), VA: o.VA})
	}
	c.Watch = append(c.Watch, d.Watch...)
	return c, nil
}

// OutsideMemoryMap reports the first descriptor read of c's walks (on the
// model) that falls outside what the oracle's machine can compare: the
// runner's reserved top 16 MiB of RAM (its code and case table would be
// read as descriptors), or an address that is neither RAM nor one of
// qemu.AbortRanges (QEMU's virt board has flash and devices there that
// return data, while the model has no memory and takes an External
// abort). It returns "" when every read is comparable.
func OutsideMemoryMap(c *qemu.Case) (string, error) {
	m, err := atjson.Parse(bytes.NewReader(MarshalCase(c)))
	if err != nil {
		return "", fmt.Errorf("model rejected case: %w", err)
	}
	reserved := qemu.Range{Base: qemu.ReservedBase, Size: qemu.RAMBase + qemu.RAMSize - qemu.ReservedBase}
	why := ""
	m.Run(func(i int, op atjson.Op, _ at.Result, tr *vmsa.Trace) {
		if why != "" || tr == nil {
			return
		}
		for _, s := range tr.Steps {
			pa := s.PA
			switch {
			case reserved.Contains(pa, 8):
				why = fmt.Sprintf("op %d (AT %s %#x) reads a descriptor at PA %#x, in the runner's reserved memory [%#x, %#x)",
					i, op.Op, op.VA, pa, reserved.Base, reserved.End())
			case qemu.RAM().Contains(pa, 8):
				continue
			case inAbortRanges(pa):
				continue
			default:
				why = fmt.Sprintf("op %d (AT %s %#x) reads a descriptor at PA %#x, outside RAM and outside the ranges where QEMU's machine aborts (flash or a device answers there; the model takes an External abort)",
					i, op.Op, op.VA, pa)
			}
			return
		}
	})
	return why, nil
}

func inAbortRanges(pa uint64) bool {
	for _, r := range qemu.AbortRanges() {
		if r.Contains(pa, 8) {
			return true
		}
	}
	return false
}

// Replay runs one case on the model and QEMU (including operations the
// model predicts would crash QEMU) and writes both answers per operation.
// It returns the number of unexplained mismatches.
//
// A case whose walks read outside the oracle machine's memory map
// (OutsideMemoryMap) is refused with the reason: the two answers could not
// be compared.
func Replay(ctx context.Context, o *qemu.Oracle, c qemu.Case, w io.Writer) (int, error) {
	why, err := OutsideMemoryMap(&c)
	if err != nil {
		return 0, err
	}
	if why != "" {
		return 0, fmt.Errorf("case not replayed: %s", why)
	}
	mr, err := RunModel(&c)
	if err != nil {
		return 0, err
	}
	res, err := o.Run(ctx, []qemu.Case{c})
	if err != nil {
		return 0, err
	}
	out := Outcome{Q: c, model: mr}
	compare(&out, res[0])
	if out.Err != nil {
		fmt.Fprintf(w, "QEMU: %v\n", out.Err)
		for i, op := range c.Ops {
			fmt.Fprintf(w, "op %d AT %s %#x: model %s\n", i, op.Name, op.VA, describeModelFull(mr.Results[i]))
		}
		return 1, nil
	}
	for i, op := range out.Ops {
		verdict := "agree"
		switch {
		case op.Class != "":
			verdict = "MISMATCH " + op.Class
		case op.Explained != "":
			verdict = "explained: " + op.Explained
		}
		fmt.Fprintf(w, "op %d AT %s %#x: model %s | qemu %s | %s\n", i, c.Ops[i].Name, c.Ops[i].VA, describeModelFull(op.Model), op.QEMU, verdict)
	}
	for i, a := range c.Watch {
		verdict := "agree"
		switch {
		case mr.Watch[i] == res[0].Watch[i]:
		case out.WatchSkipped:
			verdict = "not compared (a walk-changing deviation explained an operation)"
		case explainWatch(&c, mr.Watch[i], res[0].Watch[i], permissionFault(&out)) != "":
			verdict = "explained: " + explainWatch(&c, mr.Watch[i], res[0].Watch[i], permissionFault(&out))
		default:
			verdict = "MISMATCH " + out.WatchClass
		}
		fmt.Fprintf(w, "watch %#x: model %#x qemu %#x | %s\n", a, mr.Watch[i], res[0].Watch[i], verdict)
	}
	return len(out.Mismatches()), nil
}

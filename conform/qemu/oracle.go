// Package qemu runs address-translation cases on QEMU's TCG
// (qemu-system-aarch64, version 10) so that the translation core can be
// compared with an independent implementation (issue 3, differential
// conformance).
//
// An Oracle generates a small bare-metal AArch64 runner (see runner.go and
// the a64 encoder), boots it at EL2 with the MMU off on the `virt` board,
// hands it a table of cases, and reads back PAR_EL1 for each AT, the
// exceptions AT took, and the watched memory words. Many cases run per QEMU
// launch; a case that kills QEMU, hangs it, or breaks the runner is
// reported in its Result and the batch resumes with the next case in a new
// launch. docs/QEMU-ORACLE.md describes the design, the memory map, and the
// contract a case with SCTLR_EL2.M=1 must keep.
package qemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is returned (wrapped) by Find and New when
// qemu-system-aarch64 is not installed.
var ErrNotFound = errors.New("qemu-system-aarch64 not found")

// ErrTooOld is returned (wrapped) by New when the QEMU binary is older than
// version 10 (7.2, in Debian bookworm, has translation deviations fixed in
// 8.2; the harness is checked against 10.0).
var ErrTooOld = errors.New("qemu-system-aarch64 older than 10.0")

// Find returns the path of qemu-system-aarch64: $NESTMMU_QEMU if set,
// otherwise the first one on $PATH.
func Find() (string, error) {
	if p := os.Getenv("NESTMMU_QEMU"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: NESTMMU_QEMU=%q: %v", ErrNotFound, p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		return "", fmt.Errorf("%w on PATH", ErrNotFound)
	}
	return p, nil
}

// Options configures an Oracle. The zero value is usable.
type Options struct {
	// Path is the qemu-system-aarch64 binary; empty means Find().
	Path string
	// Instances is the number of QEMU processes run in parallel by Run;
	// 0 means runtime.NumCPU().
	Instances int
	// MaxCasesPerLaunch bounds the cases given to one QEMU launch; 0 means
	// as many as fit in the case table.
	MaxCasesPerLaunch int
	// StartTimeout bounds QEMU's start-up until the runner's first line;
	// 0 means 30 s.
	StartTimeout time.Duration
	// CaseTimeout bounds the time between two results; a case that takes
	// longer (an instruction-abort loop when the EL2-MMU contract is
	// broken) fails with ErrTimeout. 0 means 5 s.
	CaseTimeout time.Duration
	// TempDir holds the runner image and case tables; empty means
	// os.TempDir().
	TempDir string
}

// Oracle runs cases on QEMU. Its methods may be called concurrently.
type Oracle struct {
	path    string
	version string
	opts    Options
	dir     string
	elfPath string
	id      IDRegs
	sctlr2  uint64

	// onResult, when set (tests only), is called after each parsed result
	// line with the case's index in the Run batch; returning true kills
	// QEMU and ignores its further output, as if it had died right after
	// printing that result.
	onResult func(i int) (kill bool)
}

// New builds the runner, starts QEMU once with no cases to read its ID
// registers, and returns an Oracle. Close removes its temporary files.
func New(opts Options) (*Oracle, error) {
	path := opts.Path
	if path == "" {
		var err error
		if path, err = Find(); err != nil {
			return nil, err
		}
	} else if _, err := exec.LookPath(path); err != nil {
		return nil, fmt.Errorf("%w: Options.Path %q: %v", ErrNotFound, path, err)
	}
	if opts.Instances <= 0 {
		opts.Instances = runtime.NumCPU()
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.CaseTimeout <= 0 {
		opts.CaseTimeout = 5 * time.Second
	}
	version, err := qemuVersion(path)
	if err != nil {
		return nil, err
	}
	code, err := buildRunner()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.TempDir, "nestmmu-qemu-")
	if err != nil {
		return nil, fmt.Errorf("qemu: temporary directory: %w", err)
	}
	o := &Oracle{path: path, version: version, opts: opts, dir: dir, elfPath: filepath.Join(dir, "runner.elf")}
	if err := os.WriteFile(o.elfPath, elfImage(code), 0o644); err != nil {
		o.Close()
		return nil, fmt.Errorf("qemu: writing runner: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.StartTimeout+opts.CaseTimeout)
	defer cancel()
	l, err := o.launch(ctx, nil, nil)
	if err != nil {
		o.Close()
		return nil, err
	}
	if !l.done {
		o.Close()
		return nil, fmt.Errorf("qemu: probe launch did not finish: %v", l.failure)
	}
	o.id, o.sctlr2 = l.id, l.sctlr2
	return o, nil
}

// Close removes the Oracle's temporary files.
func (o *Oracle) Close() error { return os.RemoveAll(o.dir) }

// IDRegs returns QEMU's ID_AA64MMFR{0,1,2,3}_EL1 as read by the runner.
func (o *Oracle) IDRegs() IDRegs { return o.id }

// Version returns QEMU's version (e.g. "10.0.2").
func (o *Oracle) Version() string { return o.version }

// qemuVersion runs `path --version` and checks that it is at least 10.
func qemuVersion(path string) (string, error) {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("qemu: %s --version: %w", path, err)
	}
	const prefix = "QEMU emulator version "
	line, _, _ := strings.Cut(string(out), "\n")
	v, ok := strings.CutPrefix(strings.TrimSpace(line), prefix)
	if !ok {
		return "", fmt.Errorf("qemu: %s --version printed %q", path, line)
	}
	v, _, _ = strings.Cut(v, " ")
	var major int
	if _, err := fmt.Sscanf(v, "%d.", &major); err != nil {
		return "", fmt.Errorf("qemu: cannot parse version %q", v)
	}
	if major < 10 {
		return v, fmt.Errorf("%w: %s is %s", ErrTooOld, path, v)
	}
	return v, nil
}

// Path returns the QEMU binary the Oracle runs.
func (o *Oracle) Path() string { return o.path }

// Run executes cases on QEMU and returns one Result per case, in order.
// Per-case failures are in Result.Err; the error return is for failures
// that stop the whole batch (QEMU cannot start, or ctx ended, in which case
// cases not yet run have Result.Err = ctx.Err()).
func (o *Oracle) Run(ctx context.Context, cases []Case) ([]Result, error) {
	res := make([]Result, len(cases))
	valid := make([]int, 0, len(cases))
	for i := range cases {
		if err := cases[i].validate(o.id); err != nil {
			res[i].Err = fmt.Errorf("case %d: %w", i, err)
			continue
		}
		valid = append(valid, i)
	}
	n := min(o.opts.Instances, len(valid))
	if n == 0 {
		return res, nil
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for s := range n {
		// Contiguous shards keep each launch's table compact.
		shard := valid[s*len(valid)/n : (s+1)*len(valid)/n]
		wg.Go(func() { errs[s] = o.runShard(ctx, cases, shard, res) })
	}
	wg.Wait()
	return res, errors.Join(errs...)
}

// runShard runs the cases whose indices are idx, launching QEMU as often as
// needed, and stores their results in res.
func (o *Oracle) runShard(ctx context.Context, cases []Case, idx []int, res []Result) error {
	for len(idx) > 0 {
		if err := ctx.Err(); err != nil {
			for _, i := range idx {
				res[i].Err = err
			}
			return err
		}
		batch := o.takeBatch(cases, idx)
		l, err := o.launch(ctx, cases, batch)
		if err != nil {
			return err
		}
		if !l.started {
			return fmt.Errorf("qemu: runner did not start: %v", l.failure)
		}
		for k, r := range l.results {
			res[batch[k]] = r
		}
		done := len(l.results)
		if !l.done && done < len(batch) {
			// The case in progress is the one that failed.
			i := batch[done]
			if ctx.Err() != nil {
				for _, j := range batch[done:] {
					res[j].Err = ctx.Err()
				}
				return ctx.Err()
			}
			res[i].Err = fmt.Errorf("case %d: %w", i, l.failure)
			done++
		}
		idx = idx[done:]
	}
	return nil
}

// takeBatch returns the longest prefix of idx whose table fits.
func (o *Oracle) takeBatch(cases []Case, idx []int) []int {
	size := tableHeader
	for k, i := range idx {
		size += cases[i].tableSize()
		if size > caseTableMax || (o.opts.MaxCasesPerLaunch > 0 && k >= o.opts.MaxCasesPerLaunch) {
			return idx[:k]
		}
	}
	return idx
}

// launchResult is what one QEMU launch produced.
type launchResult struct {
	started bool // the runner printed its start line
	id      IDRegs
	sctlr2  uint64
	results []Result // for the first len(results) cases of the batch
	done    bool     // the runner finished the batch
	failure error    // why the case after results failed, when !done
}

// launch runs QEMU on cases[batch[k]] and collects the results.
func (o *Oracle) launch(ctx context.Context, cases []Case, batch []int) (*launchResult, error) {
	table := tableHeaderBytes(len(batch))
	for _, i := range batch {
		table = cases[i].appendTable(table)
	}
	tf, err := os.CreateTemp(o.dir, "cases-*.bin")
	if err != nil {
		return nil, fmt.Errorf("qemu: case table: %w", err)
	}
	defer os.Remove(tf.Name())
	if _, err := tf.Write(table); err != nil {
		tf.Close()
		return nil, fmt.Errorf("qemu: case table: %w", err)
	}
	if err := tf.Close(); err != nil {
		return nil, fmt.Errorf("qemu: case table: %w", err)
	}

	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(lctx, o.path,
		"-M", "virt,virtualization=on", "-cpu", "max", "-smp", "1",
		"-m", fmt.Sprintf("%dM", RAMSize>>20),
		"-nodefaults", "-display", "none", "-monitor", "none",
		"-serial", "stdio", "-no-reboot",
		"-kernel", o.elfPath,
		"-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", tf.Name(), uint64(caseTableAddr)))
	cmd.Stdin = nil
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemu: starting %s: %w", o.path, err)
	}

	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		br := bufio.NewReaderSize(stdout, 1<<16)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				// A line cut short by QEMU's death is not a result.
				if err != io.EOF {
					lines <- "!read error: " + err.Error()
				}
				return
			}
			if line = strings.TrimRight(line, "\r\n"); line != "" {
				lines <- line
			}
		}
	}()

	l := &launchResult{}
	timer := time.NewTimer(o.opts.StartTimeout)
	defer timer.Stop()
	kill := func() {
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
	}
	var timedOut bool
	var fault string
loop:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break loop
			}
			switch {
			case line[0] == 'I' && !l.started:
				l.id, l.sctlr2, err = parseIDLine(line)
				if err != nil {
					kill()
					fault = err.Error()
					continue
				}
				l.started = true
			case line[0] == 'R' && l.started && len(l.results) < len(batch):
				i := batch[len(l.results)]
				r, err := parseResultLine(line, &cases[i])
				if err != nil {
					kill()
					fault = err.Error()
					continue
				}
				l.results = append(l.results, r)
				if o.onResult != nil && o.onResult(i) {
					kill()
					for range lines {
					}
					break loop
				}
			case line[0] == 'D' && l.started && len(l.results) == len(batch):
				l.done = true
			case line[0] == 'F':
				fault = parseFatalLine(line)
			default:
				kill()
				fault = fmt.Sprintf("unexpected runner output %q", line)
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(o.opts.CaseTimeout)
		case <-timer.C:
			timedOut = true
			kill()
		}
	}
	werr := cmd.Wait()
	if l.done {
		return l, nil
	}
	l.done = false
	tail := lastLines(stderr.String(), 3)
	switch {
	case ctx.Err() != nil:
		l.failure = ctx.Err()
	case timedOut:
		l.failure = fmt.Errorf("%w: no result within %v (a case with SCTLR_EL2.M=1 must identity-map RunnerCodePage %#x)", ErrTimeout, o.opts.CaseTimeout, uint64(RunnerCodePage))
	case fault != "":
		l.failure = fmt.Errorf("%w: %s", ErrRunnerFault, fault)
	default:
		l.failure = fmt.Errorf("%w (%v): %s", ErrQEMUCrashed, werr, tail)
	}
	return l, nil
}

// lastLines returns the last n non-empty lines of s joined by " | ".
func lastLines(s string, n int) string {
	ls := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	if len(ls) == 0 {
		return "no output on stderr"
	}
	return strings.Join(ls, " | ")
}

// RunEmpty launches QEMU once with no cases: boot, the runner's start-up
// and its exit, the cost each launch adds to its cases. Throughput
// measurements subtract it (nestmmu bench).
func (o *Oracle) RunEmpty(ctx context.Context) error {
	l, err := o.launch(ctx, nil, nil)
	if err != nil {
		return err
	}
	if !l.done {
		return fmt.Errorf("qemu: empty launch did not finish: %v", l.failure)
	}
	return nil
}

// Package programs runs the A64 test programs of testdata/a64 — small
// bare-metal C and assembly programs built for QEMU's -M virt — on QEMU
// 10 and on the model (the virt board: arm64/interp over arm64/cpu), and
// compares what they print on the UART. Where QEMU deviates from the
// architecture the model follows the architecture, and the comparison
// predicts QEMU's output by running the model a second time with the
// PE's Deviations set to reproduce QEMU's behaviour (docs/A64.md).
package programs

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/virt"
)

// Program is one run of a test program.
type Program struct {
	Name string // testdata/a64/<Name>.elf
	EL   uint8  // entry EL: 2 (-M virt,virtualization=on) or 1 (-M virt)
	// Deviations are the known QEMU deviations the program exercises.
	Deviations cpu.Deviation
}

// ID names the run: the program, with ".el1" when entered at EL1.
func (p Program) ID() string {
	if p.EL == 1 {
		return p.Name + ".el1"
	}
	return p.Name
}

// Suite is every program and the ELs it runs at.
var Suite = []Program{
	{Name: "hello", EL: 2},
	{Name: "hello", EL: 1},
	{Name: "isa", EL: 2},
	{Name: "isa", EL: 1},
	{Name: "faults", EL: 2, Deviations: cpu.DeviationDeviceUnaligned},
	{Name: "tlbi", EL: 2},
	{Name: "hwupdate", EL: 2, Deviations: cpu.DeviationATSetsDirty | cpu.DeviationS1PTWWnR},
	{Name: "loop", EL: 2},
	{Name: "recurse", EL: 2},
	{Name: "el2ctl", EL: 2},
	{Name: "el2traps", EL: 2},
	{Name: "torture", EL: 2}, // seed 1 (the loader writes nothing); TestTorture runs many
}

// QEMUDeviations are all the deviations of QEMU 10.0.2 the PE reproduces.
const QEMUDeviations = cpu.DeviationDeviceUnaligned | cpu.DeviationATSetsDirty | cpu.DeviationS1PTWWnR

// Options of one run.
type Options struct {
	EL uint8
	// Seed and Seeds, when set, are written at the symbols nestmmu_seed
	// and nestmmu_seeds.
	Seed, Seeds *uint64
	// Deviations makes the model reproduce QEMU's deviations.
	Deviations cpu.Deviation
	// Budget of instructions (model); 0 means 2e9.
	Budget uint64
	// Timeout for QEMU; 0 means 2 minutes.
	Timeout time.Duration
	// Nested, when set, runs an EL2 program as a guest hypervisor at
	// virtual EL2 under nestmmu's L0 with this mode (virt.Nested): the
	// same binary, QEMU's output at real EL2 expected.
	Nested *nested.Mode
}

// RunModel runs the ELF on the virt board (with Options.Nested, as a guest
// hypervisor on virt.Nested) and returns its UART output.
func RunModel(path string, o Options) ([]byte, error) {
	var m interface {
		LoadFile(path string) (*virt.Image, error)
		SetSymbol(img *virt.Image, name string, v uint64) error
		Run(budget uint64) error
	}
	var out *bytes.Buffer
	if o.Nested != nil {
		if o.EL == 1 {
			return nil, fmt.Errorf("%s: a nested run enters at virtual EL2 (want EL 2)", path)
		}
		b, err := virt.NewNested(virt.NestedConfig{Mode: *o.Nested})
		if err != nil {
			return nil, err
		}
		defer b.Close()
		b.PE.Deviations = o.Deviations
		m, out = b, &b.Output
	} else {
		b, err := virt.New(virt.Config{EL: o.EL})
		if err != nil {
			return nil, err
		}
		b.PE.Deviations = o.Deviations
		m, out = b, &b.Output
	}
	img, err := m.LoadFile(path)
	if err != nil {
		return nil, err
	}
	for _, s := range o.symbols() {
		if s.v != nil {
			if err := m.SetSymbol(img, s.name, *s.v); err != nil {
				return nil, err
			}
		}
	}
	budget := o.Budget
	if budget == 0 {
		budget = 2_000_000_000
	}
	if err := m.Run(budget); err != nil {
		return out.Bytes(), err
	}
	return out.Bytes(), nil
}

// seedSymbol is a word the loader writes at a program's symbol (v nil:
// not written).
type seedSymbol struct {
	name string
	v    *uint64
}

// symbols are the words Options asks the loader to write.
func (o Options) symbols() [2]seedSymbol {
	return [2]seedSymbol{{"nestmmu_seed", o.Seed}, {"nestmmu_seeds", o.Seeds}}
}

// QEMUArgs is the QEMU command line that runs the ELF as the model does.
func QEMUArgs(path string, o Options) ([]string, error) {
	machine := "virt,virtualization=on"
	if o.EL == 1 {
		machine = "virt"
	}
	args := []string{"-M", machine, "-cpu", "max", "-smp", "1", "-m", "128M", "-nodefaults",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-kernel", path}
	if o.Seed == nil && o.Seeds == nil {
		return args, nil
	}
	syms, err := symbols(path)
	if err != nil {
		return nil, err
	}
	for _, s := range o.symbols() {
		if s.v == nil {
			continue
		}
		a, ok := syms[s.name]
		if !ok {
			return nil, fmt.Errorf("%s: no symbol %s", path, s.name)
		}
		args = append(args, "-device", fmt.Sprintf("loader,addr=%#x,data=%#x,data-len=8", a, *s.v))
	}
	return args, nil
}

func symbols(path string) (map[string]uint64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	for _, s := range syms {
		m[s.Name] = s.Value
	}
	return m, nil
}

// RunQEMU runs the ELF on qemu-system-aarch64 (the binary at qemuPath)
// and returns its UART output.
func RunQEMU(ctx context.Context, qemuPath, path string, o Options) ([]byte, error) {
	args, err := QEMUArgs(path, o)
	if err != nil {
		return nil, err
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemuPath, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return out.Bytes(), fmt.Errorf("qemu timed out after %v: %w", timeout, ctx.Err())
		}
		return out.Bytes(), fmt.Errorf("qemu: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out.Bytes(), nil
}

// Comparison is the outcome of one program on both sides.
type Comparison struct {
	// Model is the architectural model's output; Predicted the model's
	// with the deviations reproduced (equal to Model when none applies);
	// QEMU what QEMU printed.
	Model, Predicted, QEMU []byte
}

// Match reports whether QEMU printed exactly the prediction.
func (c *Comparison) Match() bool { return bytes.Equal(c.Predicted, c.QEMU) }

// Explained reports whether the model and QEMU differ only by the
// predicted deviations (Model != QEMU but Predicted == QEMU).
func (c *Comparison) Explained() bool { return c.Match() && !bytes.Equal(c.Model, c.QEMU) }

// Predict runs the model twice: architecturally, and with devs.
func Predict(path string, o Options, devs cpu.Deviation) (model, predicted []byte, err error) {
	o.Deviations = 0
	model, err = RunModel(path, o)
	if err != nil {
		return model, nil, fmt.Errorf("model: %w", err)
	}
	if devs == 0 {
		return model, model, nil
	}
	o.Deviations = devs
	predicted, err = RunModel(path, o)
	if err != nil {
		return model, predicted, fmt.Errorf("model with deviations: %w", err)
	}
	return model, predicted, nil
}

// Compare runs a program on the model (with and without devs) and QEMU.
func Compare(ctx context.Context, qemuPath, path string, o Options, devs cpu.Deviation) (*Comparison, error) {
	model, predicted, err := Predict(path, o, devs)
	if err != nil {
		return nil, err
	}
	q, err := RunQEMU(ctx, qemuPath, path, o)
	if err != nil {
		return nil, err
	}
	return &Comparison{Model: model, Predicted: predicted, QEMU: q}, nil
}

// FirstDifference describes the first line where a and b differ.
func FirstDifference(a, b []byte) string {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := 0; i < len(la) || i < len(lb); i++ {
		var x, y []byte
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if !bytes.Equal(x, y) {
			return fmt.Sprintf("line %d: %s vs %s", i+1, strconv.Quote(string(x)), strconv.Quote(string(y)))
		}
	}
	return "no difference"
}

// Dir finds testdata/a64 from the working directory or its parents.
func Dir() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(d, "testdata", "a64")
		if _, err := os.Stat(filepath.Join(p, "build.sh")); err == nil {
			return p, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("testdata/a64 not found above the working directory")
		}
		d = parent
	}
}

// NestedDifference is a place where a program's output as a guest
// hypervisor under L0 must differ from its output at real EL2, with the
// rule that makes it so: QEMU's text there becomes Nested's.
type NestedDifference struct {
	Program string
	// Rule is the architecture's reason.
	Rule string
	// QEMU is the text at real EL2 (whole lines), Nested its replacement.
	QEMU, Nested string
}

// NestedDifferences are the predicted differences of the suite's EL2
// programs under L0, in NV and NV2 alike.
var NestedDifferences = []NestedDifference{{
	Program: "faults",
	Rule: "an exception return clears the local monitor (DDI 0487, the exclusive monitors' context switch support; " +
		"AArch64.ExceptionReturn): the EL1 code prints \"exclusive load read-only\" between its LDXR and STXR, and each UART " +
		"byte is an MMIO exit to L0 under nesting, so the STXR finds no monitor and fails without an access " +
		"(AArch64.ExclusiveMonitorsPass returns FALSE before translating) instead of taking the stage-1 Permission fault",
	QEMU:   "    EL1 dabt same (v4): ESR 9600004f FAR 2000001000 ELR 40203060 SPSR 800003c5\n  exclusive store read-only: faulted\n",
	Nested: "  exclusive store read-only: ok 2000001000\n",
}}

// PredictNested turns QEMU's output of program at real EL2 into the
// output expected under L0 (NestedDifferences); an entry whose QEMU text
// is not found exactly once is an error, so the list stays exact.
func PredictNested(program string, qemu []byte) ([]byte, error) {
	out := qemu
	for _, d := range NestedDifferences {
		if d.Program != program {
			continue
		}
		if n := bytes.Count(out, []byte(d.QEMU)); n != 1 {
			return nil, fmt.Errorf("%s: the predicted nested difference (%s) matches %d times in QEMU's output, want once", program, d.Rule, n)
		}
		out = bytes.Replace(out, []byte(d.QEMU), []byte(d.Nested), 1)
	}
	return out, nil
}

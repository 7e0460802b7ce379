package vmsa

import "github.com/nestmmu/nestmmu/arm64/desc"

// Step is one descriptor read of a walk.
type Step struct {
	Stage uint8 // 1 or 2
	Level int8
	// ForS1Walk marks a stage-2 step that translates a stage-1 table address.
	ForS1Walk bool
	// Addr is the descriptor address in the stage's input space of tables:
	// an IPA for stage-1 tables under stage 2, otherwise a PA.
	Addr uint64
	// PA is the physical address read.
	PA   uint64
	Desc uint64
	Kind desc.Kind
	// OA is the next table address (Kind Table) or the output address
	// base (Block, Page) the descriptor holds.
	OA uint64
	// ReadFailed marks a read outside memory.
	ReadFailed bool
}

// Trace records the steps of the most recent translation. Attach one to a
// Walker only when a trace is wanted: recording appends to Steps.
type Trace struct {
	Input uint64
	Steps []Step
	// StopKind and StopLevel record the fault that ended the walk, if any.
	StopKind  FaultKind
	StopLevel int8
	Result    Translation
}

func (t *Trace) begin(in uint64) {
	t.Input = in
	t.Steps = t.Steps[:0]
	t.StopKind, t.StopLevel = FaultNone, 0
}

func (t *Trace) end(r Translation) { t.Result = r }

func stepOA(f desc.Format, d uint64, level int, k desc.Kind) uint64 {
	switch k {
	case desc.Table:
		return f.TableOA(d)
	case desc.Block, desc.Page:
		return f.LeafOA(d, level)
	}
	return 0
}

// step records one descriptor read of a walk with geometry g.
func (w *Walker) step(g *walkGeom, level int, addr, pa, d uint64, k desc.Kind, s1ptw bool) {
	if w.Trace == nil {
		return
	}
	w.Trace.Steps = append(w.Trace.Steps, Step{Stage: g.stage, Level: int8(level), ForS1Walk: s1ptw, Addr: addr, PA: pa, Desc: d, Kind: k, OA: stepOA(g.format, d, level, k)})
}

func (w *Walker) stop(k FaultKind, level int) {
	if w.Trace == nil {
		return
	}
	w.Trace.StopKind, w.Trace.StopLevel = k, int8(level)
}

func (w *Walker) markFailed() {
	if w.Trace == nil || len(w.Trace.Steps) == 0 {
		return
	}
	w.Trace.Steps[len(w.Trace.Steps)-1].ReadFailed = true
}

package te

// Faults are the rules a negative test switches off (see faults).
type Faults = faults

// SetFaults switches rules off on e: the engine is then wrong on purpose.
func (e *Engine) SetFaults(f Faults) { e.faults = f }

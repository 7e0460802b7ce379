package mmio

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package matches exactly one
// kind with errors.Is; the kinds marked "cannot emulate" also match
// ErrCannotEmulate.
var (
	// ErrCannotEmulate matches every access that is understood well enough
	// to know it cannot be emulated. The fault handler injects a data abort
	// into the guest for these.
	ErrCannotEmulate = errors.New("mmio: access cannot be emulated")

	// ErrUnallocated is an instruction word that does not decode (cannot
	// emulate).
	ErrUnallocated = errors.New("mmio: unallocated encoding")

	// ErrNotLoadStore is an instruction that decodes but is not a load or a
	// store (cannot emulate).
	ErrNotLoadStore = errors.New("mmio: not a load/store")

	// ErrAddressMismatch is an instruction whose computed address or
	// direction does not agree with FAR_EL2 and ESR_EL2.WnR, for example
	// because the guest rewrote the instruction after it faulted (cannot
	// emulate).
	ErrAddressMismatch = errors.New("mmio: instruction does not match the fault")

	// ErrCacheMaintenance is a Data Abort with ESR.CM=1: a cache
	// maintenance instruction on an address without memory. There is no
	// access to emulate; KVM skips the instruction.
	ErrCacheMaintenance = errors.New("mmio: cache maintenance abort")

	// ErrNoSyndrome is a syndrome with ISV=0 given to DecodeSyndrome: the
	// instruction must be decoded instead.
	ErrNoSyndrome = errors.New("mmio: instruction syndrome not valid")

	// ErrNotDataAbort is an ESR whose class is not a Data Abort from a lower
	// Exception level.
	ErrNotDataAbort = errors.New("mmio: not a data abort from a lower exception level")
)

// Error is the error type of this package: a message naming the bad value and
// the kind of failure (one of the sentinels above).
type Error struct {
	Kind  error  // one of the package's sentinel errors
	Abort bool   // the fault handler should inject an abort (matches ErrCannotEmulate)
	Msg   string // what was wrong, naming the value
}

// Error implements error.
func (e *Error) Error() string { return "mmio: " + e.Msg }

// Unwrap returns the kind.
func (e *Error) Unwrap() error { return e.Kind }

// Is reports whether target is the kind, or ErrCannotEmulate for the kinds
// the guest gets an abort for.
func (e *Error) Is(target error) bool {
	return target == e.Kind || (e.Abort && target == ErrCannotEmulate)
}

func errorf(kind error, format string, args ...any) error {
	abort := kind == ErrCannotEmulate || kind == ErrUnallocated ||
		kind == ErrNotLoadStore || kind == ErrAddressMismatch
	return &Error{Kind: kind, Abort: abort, Msg: fmt.Sprintf(format, args...)}
}

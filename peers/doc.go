// Package peers holds nestmmu's comparisons with other implementations of
// the same job, kept in their own module so that the main module does not
// depend on them.
//
// Its tests run gVisor's Go page tables (gvisor.dev/gvisor/pkg/ring0/pagetables,
// the x86 format on amd64) and nestmmu's stage-2 table manager
// (host/s2pt) side by side: a differential test applies the same random map
// and unmap sequence to both and compares every lookup, and the benchmarks
// time the same operations in one run, to be read as ratios (see
// docs/PERFORMANCE.md in the main module).
package peers

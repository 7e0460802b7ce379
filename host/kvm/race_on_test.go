//go:build race

package kvm

// Under the race detector everything runs about ten times slower: the
// integrity tests do a tenth of the accesses.
const integrityAccesses = 100_000

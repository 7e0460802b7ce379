//go:build !race

package kvm

// integrityAccesses is the number of guest accesses (over all vCPUs) of
// each data-integrity run: the issue asks for at least 10^6.
const integrityAccesses = 1_000_000

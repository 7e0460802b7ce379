//go:build race

package nested_test

// raceBuild: under the race detector everything runs about ten times
// slower; single-goroutine tests run fewer cases.
const raceBuild = true

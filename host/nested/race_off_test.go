//go:build !race

package nested_test

const raceBuild = false

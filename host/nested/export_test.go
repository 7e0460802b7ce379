package nested

// SameOutputSize exports sameOutputSize to the tests.
var SameOutputSize = sameOutputSize

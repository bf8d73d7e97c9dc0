package scan

// Match exposes match to the black-box tests of Rematch, which must give
// exactly what it gives.
var Match = match

// Helpers of the identity tests, for the tests and benchmarks on the
// real debian-12 image in package scan_test.
var (
	DebianBuildLayer = debianBuildLayer
	MountLayers      = mountLayers
	Identity         = identity
)

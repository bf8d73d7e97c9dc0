package scan

// Helpers of the identity tests, for the tests and benchmarks on the
// real debian-12 image in package scan_test.
var (
	DebianBuildLayer = debianBuildLayer
	MountLayers      = mountLayers
	Identity         = identity
)

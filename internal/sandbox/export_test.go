package sandbox

// SetStartedHook installs f as the hook Run calls once the init runs and
// returns a function that removes it.
func SetStartedHook(f func()) (restore func()) {
	testHookStarted = f
	return func() { testHookStarted = nil }
}

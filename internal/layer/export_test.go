package layer

// SetOpenat2 switches Unpack between openat2 and its fallback resolver and
// returns a function that restores the previous setting.
func SetOpenat2(on bool) (restore func()) {
	old := useOpenat2
	useOpenat2 = on
	return func() { useOpenat2 = old }
}

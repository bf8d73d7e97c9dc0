package scan

import (
	"testing"

	"github.com/bmatcuk/doublestar/v4"
)

// TestExclusions: the one pattern matches exactly the paths (and the
// trees below them) that skipPaths and the escaping links name, as syft
// matches them: each path of the index against the whole pattern, a
// match on a directory skipping what is below.
func TestExclusions(t *testing.T) {
	escapes := []string{"./etc/ssl/certs/930ac5d2.0", "./etc/ssl/certs/5f618aec.0", "./etc/rmt", "./usr/share/man/x", "./a\\{b\\}", "./c,d", "./usr/bin/awk"}
	pats := exclusions(escapes)
	match := func(p string) bool {
		for _, pat := range pats {
			if ok, err := doublestar.Match("/root/"+pat[2:], "/root"+p); err != nil {
				t.Fatalf("pattern %q: %v", pat, err)
			} else if ok {
				return true
			}
		}
		return false
	}
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/etc/ssl/certs/930ac5d2.0", true},
		{"/etc/ssl/certs/5f618aec.0", true},
		{"/etc/ssl/certs/ca-certificates.crt", false},
		{"/etc/ssl/certs", false},
		{"/etc/rmt", true},
		{"/etc/rmtx", false},
		{"/usr/share/man", true},
		{"/usr/share/locale", true},
		{"/usr/share/doc", false},
		{"/usr/bin/awk", true},
		{"/usr/bin/awkward", false},
		{"/a{b}", true},
		{"/ab", false},
		{"/c,d", true},
		{"/proc", true},
		{"/var/log", true},
		{"/var/lib", false},
	} {
		if got := match(tc.path); got != tc.want {
			t.Errorf("%s excluded = %v, want %v (patterns %q)", tc.path, got, tc.want, pats)
		}
	}
}

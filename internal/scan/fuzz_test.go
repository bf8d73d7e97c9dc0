package scan

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/osv-scalibr/semantic"

	"github.com/pib-dev/pib/internal/rootfs"
	"github.com/pib-dev/pib/internal/testenv"
	"github.com/pib-dev/pib/internal/vulndb"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora under testdata/fuzz")

// fuzzEcosystems are the OSV ecosystems pib matches in (see Ecosystem and
// purlEcosystem): dpkg, rpm and apk versions, semver and the language
// ecosystems with their own rules.
var fuzzEcosystems = []string{
	"Debian:12", "Ubuntu:22.04:LTS", "Red Hat:enterprise_linux:9::appstream", "AlmaLinux:9", "Rocky Linux:9",
	"Alpine:v3.19", "Go", "npm", "crates.io", "PyPI", "Maven", "RubyGems", "Packagist", "NuGet", "Hex", "Pub",
}

// wellFormed are the version grammars of ecosystems whose comparison is
// not a total order on malformed versions: osv-scalibr orders apk
// versions such as "7N" <= "O" <= "0" < "7N" (the fuzzer found it; an
// installed package database never holds them, apk refuses them).
var wellFormed = map[string]*regexp.Regexp{
	"Alpine": regexp.MustCompile(`^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(-r[0-9]+)?$`),
}

// sign is -1, 0 or 1.
func sign(c int) int { return min(max(c, -1), 1) }

// FuzzVersionCompare checks, for every ecosystem pib matches in, that
// version comparison is a total order where it is defined (reflexive,
// antisymmetric, transitive, never panicking), and that isAffected agrees
// with that order for the range shapes OSV records use: [a, b) with a fixed
// event, [a, b] with last_affected, and an explicit versions list.
func FuzzVersionCompare(f *testing.F) {
	f.Fuzz(func(t *testing.T, eco uint16, a, b, c string) {
		ecosystem := fuzzEcosystems[int(eco)%len(fuzzEcosystems)]
		if len(a)+len(b)+len(c) > 1024 {
			t.Skip("versions longer than any real one")
		}
		parse := func(s string) semantic.Version {
			v, err := semantic.Parse(s, ecosystem)
			if err != nil {
				return nil
			}
			return v
		}
		va, vb, vc := parse(a), parse(b), parse(c)
		compare := func(x, y semantic.Version) (int, bool) {
			if x == nil || y == nil {
				return 0, false
			}
			n, err := x.Compare(y)
			if err != nil {
				return 0, false
			}
			return sign(n), true
		}
		for _, p := range []struct {
			v semantic.Version
			s string
		}{{va, a}, {vb, b}, {vc, c}} {
			if n, ok := compare(p.v, p.v); ok && n != 0 {
				t.Fatalf("%s: compare(%q, %q) = %d, want 0", ecosystem, p.s, p.s, n)
			}
		}
		ab, okAB := compare(va, vb)
		ba, okBA := compare(vb, va)
		if okAB != okBA || ab != -ba {
			t.Fatalf("%s: compare(%q, %q) = %d (%v) but compare(%q, %q) = %d (%v): not antisymmetric", ecosystem, a, b, ab, okAB, b, a, ba, okBA)
		}
		if re := wellFormed[baseEco(ecosystem)]; re != nil && !(re.MatchString(a) && re.MatchString(b) && re.MatchString(c)) {
			return // the order is only promised for real versions
		}
		bc, okBC := compare(vb, vc)
		ac, okAC := compare(va, vc)
		if okAB && okBC && okAC && ab <= 0 && bc <= 0 && ac > 0 {
			t.Fatalf("%s: %q <= %q <= %q but %q > %q: not transitive", ecosystem, a, b, c, a, c)
		}

		// isAffected against the order. c plays the installed version.
		if vc == nil {
			if _, _, err := isAffected(vulndb.Affected{Versions: []string{c}}, c, ecosystem); err == nil {
				t.Fatalf("%s: isAffected(%q) gave no error for a version that does not parse", ecosystem, c)
			}
			return
		}
		affected, _, err := isAffected(vulndb.Affected{Versions: []string{c}}, c, ecosystem)
		if !affected {
			t.Fatalf("%s: version %q listed in versions[] is not affected (err %v)", ecosystem, c, err)
		}
		if !okAB || !okAC || !okBC || ab >= 0 {
			return // the ranges below need a < b, all comparable
		}
		ca, cb := -ac, -bc
		// OSV's sentinels: introduced "0" is before every version, limit
		// "*" after every one, whatever the ecosystem's order says.
		if a == "0" {
			ca = 1
		}
		if b == "*" || a == "" || b == "" {
			return // an empty event is no event (import refuses it)
		}
		rng := func(events ...vulndb.Event) vulndb.Affected {
			return vulndb.Affected{Ranges: []vulndb.Range{{Type: "ECOSYSTEM", Events: events}}}
		}
		for _, tc := range []struct {
			name   string
			a      vulndb.Affected
			want   bool
			wantFx string
		}{
			{"introduced a, fixed b", rng(vulndb.Event{Introduced: a}, vulndb.Event{Fixed: b}), ca >= 0 && cb < 0, b},
			{"fixed b, introduced a (unsorted)", rng(vulndb.Event{Fixed: b}, vulndb.Event{Introduced: a}), ca >= 0 && cb < 0, b},
			{"introduced a, last_affected b", rng(vulndb.Event{Introduced: a}, vulndb.Event{LastAffected: b}), ca >= 0 && cb <= 0, ""},
			{"introduced 0, fixed b", rng(vulndb.Event{Introduced: "0"}, vulndb.Event{Fixed: b}), cb < 0, b},
			{"introduced a, limit b", rng(vulndb.Event{Introduced: a}, vulndb.Event{Limit: b}), ca >= 0 && cb < 0, ""},
		} {
			got, fixed, err := isAffected(tc.a, c, ecosystem)
			if err != nil {
				t.Fatalf("%s: %s: isAffected(%q): %v", ecosystem, tc.name, c, err)
			}
			if got != tc.want {
				t.Fatalf("%s: %s: isAffected(%q) = %v, want %v (a=%q b=%q)", ecosystem, tc.name, c, got, tc.want, a, b)
			}
			if got && fixed != tc.wantFx {
				t.Fatalf("%s: %s: fixed version %q, want %q", ecosystem, tc.name, fixed, tc.wantFx)
			}
		}
	})
}

// fuzzDeadline bounds one parse: a config of a few kilobytes is read in
// microseconds, so anything near this is a hang.
const fuzzDeadline = 10 * time.Second

// FuzzSSHDConfig parses an image's sshd_config and one file it may
// include, and checks sshd_config(5)'s "first obtained value wins" where
// rule S3.1 depends on it: a PasswordAuthentication line put first decides
// the effective value whatever follows, and every other keyword keeps the
// value it had. Parsing must also end in bounded time (Include loops).
func FuzzSSHDConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, main, included string) {
		if len(main)+len(included) > 64<<10 {
			t.Skip("config larger than any real one")
		}
		parse := func(main string) (*sshdConfig, error) {
			dir := t.TempDir()
			for name, content := range map[string]string{"etc/ssh/sshd_config": main, "etc/ssh/sshd_config.d/50-fuzz.conf": included} {
				p := filepath.Join(dir, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var cfg *sshdConfig
			var ok bool
			var err error
			done := make(chan struct{})
			root, err := rootfs.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			go func() {
				defer close(done)
				cfg, ok, err = readSSHDConfig(root)
			}()
			select {
			case <-done:
			case <-time.After(fuzzDeadline):
				t.Fatalf("readSSHDConfig did not finish within %v", fuzzDeadline)
			}
			if err == nil && !ok {
				t.Fatalf("readSSHDConfig: the image has an sshd_config but ok is false")
			}
			return cfg, err
		}
		cfg, err := parse(main)
		if err != nil {
			return
		}
		if len(cfg.files) == 0 || cfg.files[0] != "/etc/ssh/sshd_config" {
			t.Fatalf("files read %q, want /etc/ssh/sshd_config first", cfg.files)
		}
		for kw := range cfg.values {
			if kw != strings.ToLower(kw) || kw == "match" || kw == "include" {
				t.Fatalf("keyword %q recorded as a setting", kw)
			}
		}
		for _, setting := range []string{"no", "yes"} {
			first, err := parse("PasswordAuthentication " + setting + "\n" + main)
			if err != nil {
				t.Fatalf("prepending a PasswordAuthentication line made the config unreadable: %v", err)
			}
			if got := first.get("PasswordAuthentication", "yes"); got != setting {
				t.Fatalf("PasswordAuthentication %s put first, effective value %q", setting, got)
			}
			want := maps.Clone(cfg.values)
			want["passwordauthentication"] = setting
			if diff := cmp.Diff(want, first.values); diff != "" {
				t.Fatalf("prepending PasswordAuthentication changed other keywords (-want +got):\n%s", diff)
			}
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed corpora of this package's fuzz
// targets from real version strings and sshd configurations.
//
//	go test ./internal/scan -run TestWriteFuzzSeeds -update-fuzz-seeds
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("regenerates testdata/fuzz; run with -update-fuzz-seeds")
	}
	index := func(eco string) uint16 {
		for i, e := range fuzzEcosystems {
			if e == eco {
				return uint16(i)
			}
		}
		t.Fatalf("unknown ecosystem %s", eco)
		return 0
	}
	// Versions as the installed package databases and OSV records of each
	// ecosystem spell them: epochs, revisions, tildes, binNMUs, release
	// suffixes, pre-releases and build metadata.
	versions := []struct {
		eco     string
		a, b, c string
	}{
		{"Debian:12", "2.36-9", "2.36-9+deb12u4", "2.36-9+deb12u1"},
		{"Debian:12", "1:9.2p1-2", "1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u2"},
		{"Debian:12", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2", "3.0.11-1~deb12u2+b1"},
		{"Debian:12", "0", "7.88.1-10+deb12u5", "7.88.1-10+deb12u8"},
		{"Ubuntu:22.04:LTS", "2.35-0ubuntu3", "2.35-0ubuntu3.8", "2.35-0ubuntu3.6"},
		{"Red Hat:enterprise_linux:9::appstream", "0:1.1.1k-5.el8_5", "1:3.0.7-27.el9", "1:3.0.7-24.el9"},
		{"AlmaLinux:9", "2.34-60.el9", "2.34-100.el9_4.2", "2.34-83.el9_3.7"},
		{"Rocky Linux:9", "4.16.1.3-22.el9", "4.16.1.3-29.el9_4", "4.16.1.3-25.el9"},
		{"Alpine:v3.19", "3.1.4-r0", "3.1.4-r5", "3.1.4-r1"},
		{"Alpine:v3.19", "1.36.1-r15", "1.36.1-r19", "1.36.1_git20230420-r0"},
		{"Go", "1.21.0", "1.22.7", "1.22.0-rc.1"},
		{"Go", "0.0.0-20230101000000-abcdef123456", "0.17.0", "0.15.0"},
		{"npm", "4.17.0", "4.17.21", "4.17.21-beta.1+build.5"},
		{"crates.io", "0.10.0", "0.10.55", "0.10.38"},
		{"PyPI", "2.0.0rc1", "2.31.0", "2.31.0.post1"},
		{"Maven", "2.13.0", "2.15.0-rc1", "2.14.0.Final"},
		{"RubyGems", "1.13.0", "1.16.3", "1.16.3.pre.1"},
		{"Packagist", "v5.4.0", "v5.4.47", "5.4.30"},
		{"NuGet", "13.0.1", "13.0.3", "13.0.2-beta1"},
		{"Hex", "1.6.0", "1.7.4", "1.7.0-rc.0"},
		{"Pub", "0.13.0", "1.1.0", "1.0.0+1"},
	}
	for i, v := range versions {
		testenv.WriteFuzzSeed(t, "FuzzVersionCompare", fmt.Sprintf("seed-%02d", i), index(v.eco), v.a, v.b, v.c)
	}

	// Debian 12's sshd_config, a hardened one, and typical drop-ins.
	debian := "Include /etc/ssh/sshd_config.d/*.conf\n\n#PermitRootLogin prohibit-password\n#PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n"
	hardened := "Port 22\nPermitRootLogin=no\nPasswordAuthentication no\nAuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys/%u\nMatch User backup\n\tPasswordAuthentication yes\n\tForceCommand internal-sftp\nMatch all\nAllowTcpForwarding \"no\"\n"
	for i, s := range [][2]string{
		{debian, "PasswordAuthentication no\n"},
		{debian, "# cloud-init\nPasswordAuthentication yes\nPermitRootLogin yes\n"},
		{hardened, ""},
		{"Include sshd_config.d/*.conf /etc/ssh/extra/*\nUsePAM no\n", "Match Address 10.0.0.0/8\n  PermitRootLogin yes\n"},
		{debian, "Include /etc/ssh/sshd_config.d/*.conf\nPermitEmptyPasswords no\n"},
	} {
		testenv.WriteFuzzSeed(t, "FuzzSSHDConfig", fmt.Sprintf("seed-%02d", i), s[0], s[1])
	}
}

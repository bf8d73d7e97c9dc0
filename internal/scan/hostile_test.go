package scan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/rootfs"
)

// hostDir is a host directory an image must never reach (T2): it holds a
// private key, a credential file, an sshd_config that allows passwords and
// a dpkg database listing a package only the host has.
func hostDir(t *testing.T) string {
	t.Helper()
	host := t.TempDir()
	for name, body := range map[string]string{
		"lib/app/host_only.pem":   "-----BEGIN RSA PRIVATE KEY-----\nhost only\n-----END RSA PRIVATE KEY-----\n",
		"ssh/id_ed25519":          "host only key\n",
		"sshd_config":             "PasswordAuthentication yes\nPermitRootLogin yes\n",
		"var/lib/dpkg/status":     "Package: host-only-package\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\n",
		"var/lib/dpkg/info/x.md5": "",
	} {
		p := filepath.Join(host, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return host
}

// runWithin runs f or fails the test when it does not return in time: the
// scanner opening a FIFO blocks forever.
func runWithin(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the scan hung: it opened a FIFO of the image for reading")
	}
}

func mkfifo(t *testing.T, root, name string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestChecksStayInsideImage: links out of the image lead nowhere and FIFOs
// are never opened, in every S3 check (T2). Before package rootfs the
// secret search walked /var/lib on the host through the /var link and named
// the host's key, and sshd_config -> FIFO hung the scan.
func TestChecksStayInsideImage(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	host := hostDir(t)
	for _, tc := range []struct {
		name  string
		files map[string]string
		fifos []string
		rule  string
		pass  bool
		want  string
	}{
		{"S3.6 /var links to a host directory", with(map[string]string{"var": "->" + host}), nil, "S3.6", true, ""},
		{"S3.6 /root/.ssh links to a host directory", with(map[string]string{"root/.ssh": "->" + host + "/ssh"}, "root/.ssh/authorized_keys"), nil, "S3.6", true, ""},
		{"S3.6 a FIFO among the searched files", base, []string{"opt/app/pipe", "etc/app/tls.key"}, "S3.6", true, ""},
		{"S3.1 sshd_config links to a host file", with(map[string]string{"etc/ssh/sshd_config": "->" + host + "/sshd_config"}), nil, "S3.1", true, "no SSH server"},
		{"S3.1 sshd_config links to a FIFO", with(map[string]string{"etc/ssh/sshd_config": "->/run/sshd.fifo"}), []string{"run/sshd.fifo"}, "S3.1", false, "FIFO"},
		{"S3.1 an included file is a FIFO", base, []string{"etc/ssh/sshd_config.d/00-pipe.conf"}, "S3.1", false, "must be regular files"},
		{"S3.5 /etc/shadow is a FIFO", with(nil, "etc/shadow"), []string{"etc/shadow"}, "S3.5", false, "FIFO"},
		{"S3.7 /etc/os-release is a FIFO", with(nil, "etc/os-release"), []string{"etc/os-release"}, "S3.7", false, "no /etc/os-release"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := makeRoot(t, tc.files)
			for _, f := range tc.fifos {
				mkfifo(t, root.Dir(), f)
			}
			var results []CheckResult
			runWithin(t, func() {
				o, _ := detectOS(root)
				results, _ = runChecks(root, o, now, nil)
			})
			for _, r := range results {
				all := r.Message + " " + strings.Join(r.Evidence, " ")
				if strings.Contains(all, "host_only") || strings.Contains(all, "id_ed25519") || strings.Contains(all, host) {
					t.Errorf("%s names a host file: %s", r.Rule, all)
				}
				if r.Rule != tc.rule {
					continue
				}
				if r.Passed != tc.pass || !strings.Contains(all, tc.want) {
					t.Errorf("%s passed = %v (%s), want %v mentioning %q", r.Rule, r.Passed, all, tc.pass, tc.want)
				}
			}
		})
	}
}

// TestCatalogStaysInsideImage: syft's directory indexer resolves link
// targets the host's way (see syftEscapes); an image whose /var links to a
// host directory and whose /x links through it must not get the host's
// packages into its SBOM (T2). Without syftEscapes, host-only-package is
// in the inventory.
func TestCatalogStaysInsideImage(t *testing.T) {
	host := hostDir(t)
	root := makeRoot(t, map[string]string{
		"etc/os-release": base["etc/os-release"],
		"var":            "->" + host + "/var",
		"x":              "->/var/lib",
		"y":              "->../../../../../../../../var/lib/dpkg",
	})
	escapes, err := syftEscapes(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(escapes) == 0 {
		t.Fatal("syftEscapes found no link leading syft out of the image")
	}
	s := New(nil, Options{})
	doc, _, err := s.catalog(context.Background(), root, "hostile")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range doc.Artifacts.Packages.Sorted() {
		t.Errorf("package %s %s found: the inventory read host files (%v)", p.Name, p.Version, p.Locations.ToSlice())
	}
}

// TestSSHDIncludeBlowUp: a chain of files each including the next twice
// would be read 2^15 times; the reading stops at a cap with a clear error.
func TestSSHDIncludeBlowUp(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc/ssh"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/ssh/sshd_config"), []byte("Include /etc/ssh/c1\nInclude /etc/ssh/c1\n"), 0o644)
	for i := 1; i <= 14; i++ {
		body := fmt.Sprintf("Include /etc/ssh/c%d\nInclude /etc/ssh/c%d\n", i+1, i+1)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("etc/ssh/c%d", i)), []byte(body), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "etc/ssh/c15"), []byte("PasswordAuthentication no\n"), 0o644)
	root, err := rootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	done := make(chan error, 1)
	go func() { _, _, err := readSSHDConfig(root); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "more than 256 files") {
			t.Errorf("want the include cap's error, got %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("reading a self-multiplying Include chain did not stop")
	}
}

package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anchore/syft/syft/format/syftjson"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/testenv"
	"github.com/pib-dev/pib/internal/vulndb"
)

// Layer entries in the layer specs of the identity tests: a file's
// content, "->target" for a link, or one of these.
const (
	whiteoutEntry = "<whiteout>" // overlayfs whiteout: deletes the base's path
	opaqueEntry   = "<opaque>"   // opaque directory: hides the base's content below
	fifoEntry     = "<fifo>"     // a FIFO (T2: never opened)
)

// writeLayer makes an overlay-form layer directory (package layer's
// unpacked form) from spec, on top of the tree copied from fixture (a
// testdata directory) when it is not empty.
func writeLayer(t testing.TB, fixture string, spec map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if fixture != "" {
		if err := os.CopyFS(dir, os.DirFS(fixture)); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range spec {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case body == whiteoutEntry:
			err = unix.Mknod(p, unix.S_IFCHR, 0)
		case body == opaqueEntry:
			if err = os.MkdirAll(p, 0o755); err == nil {
				err = unix.Setxattr(p, "trusted.overlay.opaque", []byte("y"), 0)
			}
		case body == fifoEntry:
			err = unix.Mkfifo(p, 0o644)
		case strings.HasPrefix(body, "->"):
			err = os.Symlink(strings.TrimPrefix(body, "->"), p)
		default:
			err = os.WriteFile(p, []byte(body), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mountLayers mounts layers (bottom first) read-only as one image, as
// images.Store.Rootfs does.
func mountLayers(t testing.TB, layers []string) string {
	t.Helper()
	if len(layers) == 1 {
		return layers[0]
	}
	mnt := t.TempDir()
	lower := slices.Clone(layers)
	slices.Reverse(lower)
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lower, ":")); err != nil {
		t.Fatalf("mount the test image: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	return mnt
}

// comparable is what the identity tests hold equal between a full scan
// and an incremental one: the SBOM's packages (syft IDs, names, versions,
// types, PURLs, locations, licenses, metadata), relationships and
// distribution, in syft's lossless JSON; the matching view; the report
// (findings, policy results, violations, verdict); and the state the
// next build would start from.
type comparable struct {
	Artifacts     any
	Relationships any
	Distro        any
	Inventory     *Inventory
	Report        Report
	State         state
}

func comparableOf(t *testing.T, r *Report) comparable {
	t.Helper()
	enc, err := syftjson.NewFormatEncoderWithConfig(syftjson.DefaultEncoderConfig())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := enc.Encode(&buf, *r.sbom); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Artifacts             any `json:"artifacts"`
		ArtifactRelationships any `json:"artifactRelationships"`
		Distro                any `json:"distro"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	rep := *r
	rep.Scope = InventorySource{}
	rep.sbom, rep.inventory, rep.state = nil, nil, nil
	st := *r.state
	st.Secrets = slices.Clone(st.Secrets)
	slices.SortFunc(st.Secrets, func(a, b secretHit) int { return strings.Compare(a.Path, b.Path) })
	return comparable{doc.Artifacts, doc.ArtifactRelationships, doc.Distro, r.inventory, rep, st}
}

// identity scans the image made of layers in full and incrementally on
// the image made of all but its top layer, and fails on any difference.
// It returns the incremental report.
func identity(t *testing.T, s *Scanner, layers []string) *Report {
	t.Helper()
	ctx := context.Background()
	baseRep, err := s.Scan(ctx, mountLayers(t, layers[:len(layers)-1]), Image{ID: "img-00000000000000ba5"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := baseRep.State()
	if err != nil {
		t.Fatal(err)
	}
	dir := mountLayers(t, layers)
	img := Image{ID: "img-0000000000000b11d"}
	full, err := s.Scan(ctx, dir, img)
	if err != nil {
		t.Fatal(err)
	}
	inc, err := s.ScanOn(ctx, dir, img, Base{ID: "img-00000000000000ba5", State: st, Layers: layers, WorkDir: filepath.Join(t.TempDir(), "work")})
	if err != nil {
		t.Fatal(err)
	}
	if inc.Scope.Scan != "incremental" || inc.Scope.From != "img-00000000000000ba5" {
		t.Errorf("incremental scan's report says %+v", inc.Scope)
	}
	if full.Scope.Scan != "full" {
		t.Errorf("full scan's report says %+v", full.Scope)
	}
	if diff := cmp.Diff(comparableOf(t, full), comparableOf(t, inc), cmpopts.IgnoreUnexported(Report{}, Allow{})); diff != "" {
		t.Errorf("the incremental scan differs from the full scan (-full +incremental):\n%s", diff)
	}
	return inc
}

// fixtureScanner matches against the fixture OSV records.
func fixtureScanner(t *testing.T) *Scanner {
	t.Helper()
	sdb, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sdb.Close() })
	db := vulndb.New(sdb)
	if _, err := db.Import(context.Background(), "testdata/osv"); err != nil {
		t.Fatal(err)
	}
	return New(db, Options{Now: func() time.Time { return time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC) }, ToolVersion: "test"})
}

const newDpkgEntry = `Package: newtool
Status: install ok installed
Priority: optional
Section: utils
Installed-Size: 10
Maintainer: Seller <seller@example.com>
Architecture: amd64
Source: newtool-src
Version: 2.1-1
Depends: libfoo1
Description: a tool a build installs

`

// TestScanOnIsScan: an incremental scan gives exactly the full scan's
// result, on every scan fixture (the dpkg and Alpine roots, each S3 check
// fixture, the hostile ones) made into a base and a layer changing it:
// installs, removals, upgrades, whiteouts, opaque directories, links and
// FIFOs.
func TestScanOnIsScan(t *testing.T) {
	testenv.RequireRoot(t)
	s := fixtureScanner(t)
	status, err := os.ReadFile("testdata/rootfs/var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	host := hostDir(t)
	type tc struct {
		name         string
		fixture      string            // the base's testdata tree, or
		baseSpec     map[string]string // its files
		top          map[string]string
		wantIncluded []string // packages the new image must have (the test must see the change)
	}
	cases := []tc{
		{name: "dpkg fixture as a layer on an empty base", baseSpec: map[string]string{"etc/os-release": base["etc/os-release"]},
			top: nil},
		{name: "a .deb install", fixture: "testdata/rootfs", top: map[string]string{
			"var/lib/dpkg/status":               string(status) + "\n" + newDpkgEntry,
			"var/lib/dpkg/info/newtool.list":    "/usr/bin/newtool\n/usr/share/doc/newtool\n",
			"var/lib/dpkg/info/newtool.md5sums": "0123456789abcdef0123456789abcdef  usr/bin/newtool\n",
			"usr/bin/newtool":                   "#!/bin/sh\n",
			"usr/share/doc/newtool/copyright":   "License: MIT\n",
		}, wantIncluded: []string{"newtool"}},
		{name: "a .deb removal", fixture: "testdata/rootfs", top: map[string]string{
			"var/lib/dpkg/status":                    dropParagraph(t, string(status), "python3-demo"),
			"var/lib/dpkg/info/python3-demo.md5sums": whiteoutEntry,
			"usr/lib/python3/dist-packages":          opaqueEntry,
		}},
		{name: "a pip install into /usr/local", fixture: "testdata/rootfs", top: map[string]string{
			"usr/local/lib/python3.11/dist-packages/newpkg-3.0.dist-info/METADATA":  "Metadata-Version: 2.1\nName: newpkg\nVersion: 3.0\nRequires-Dist: localpkg\n",
			"usr/local/lib/python3.11/dist-packages/newpkg-3.0.dist-info/RECORD":    "newpkg/__init__.py,,\nnewpkg-3.0.dist-info/METADATA,,\n",
			"usr/local/lib/python3.11/dist-packages/newpkg-3.0.dist-info/INSTALLER": "pip\n",
			"usr/local/lib/python3.11/dist-packages/newpkg/__init__.py":             "",
		}, wantIncluded: []string{"newpkg"}},
		{name: "a pip upgrade and a removal", fixture: "testdata/rootfs", top: map[string]string{
			"usr/local/lib/python3.11/dist-packages/localpkg-2.0.dist-info":          whiteoutEntry,
			"usr/local/lib/python3.11/dist-packages/localpkg-2.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: localpkg\nVersion: 2.1\n",
			"usr/lib/python3/dist-packages/demo-1.0.dist-info/METADATA":              "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nSummary: changed\n",
		}, wantIncluded: []string{"localpkg"}},
		{name: "the os-release changes", fixture: "testdata/rootfs", top: map[string]string{
			"etc/os-release": "ID=debian\nVERSION_ID=\"11\"\nPRETTY_NAME=\"Debian GNU/Linux 11 (bullseye)\"\n",
		}},
		{name: "alpine apk upgrade", fixture: "testdata/rootfs-alpine", top: map[string]string{
			"lib/apk/db/installed": alpineUpgraded(t),
		}},
		{name: "links and FIFOs in the layer", fixture: "testdata/rootfs", top: map[string]string{
			"var/lib/dpkg/status.d": "->" + host + "/var/lib/dpkg",
			"x":                     "->/var/lib",
			"usr/local/lib/python3.11/dist-packages/evil-1.0.dist-info": "->" + host + "/lib",
			"opt/pipe":    fifoEntry,
			"etc/app.pem": "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n",
			"loop/a":      "->/loop/b",
			"loop/b":      "->/loop/a",
		}},
		{name: "a directory becomes a link", fixture: "testdata/rootfs", top: map[string]string{
			"usr/local/lib/python3.11": "->/usr/lib/python3",
		}},
	}
	// Every S3 check fixture, as a layer changing the passing base.
	for name, files := range checkFixtures() {
		top := map[string]string{}
		for k, v := range files {
			if base[k] != v {
				top[k] = v
			}
		}
		for k := range base {
			if _, ok := files[k]; !ok {
				top[k] = whiteoutEntry
			}
		}
		cases = append(cases, tc{name: "checks: " + name, baseSpec: base, top: top})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var baseLayer string
			if c.fixture != "" {
				baseLayer = writeLayer(t, c.fixture, nil)
			} else {
				baseLayer = writeLayer(t, "", c.baseSpec)
			}
			var top string
			if c.top == nil {
				top = writeLayer(t, "testdata/rootfs", nil)
			} else {
				top = writeLayer(t, "", c.top)
			}
			inc := identity(t, s, []string{baseLayer, top})
			for _, want := range c.wantIncluded {
				if !slices.ContainsFunc(inc.inventory.Packages, func(p Package) bool { return p.Name == want }) {
					t.Errorf("the new image's inventory lacks %s: %+v", want, inc.inventory.Packages)
				}
			}
			if inc.Scope.ChangedPaths == 0 {
				t.Errorf("the report counts no changed path")
			}
		})
	}
}

// checkFixtures are TestChecks' and TestChecksStayInsideImage's images by
// name.
func checkFixtures() map[string]map[string]string {
	return map[string]map[string]string{
		"unset PasswordAuthentication": with(nil, "etc/ssh/sshd_config.d/10-pib.conf"),
		"blank root":                   with(map[string]string{"etc/shadow": "root::19700:0:99999:7:::\n"}),
		"root key":                     with(map[string]string{"root/.ssh/authorized_keys": "ssh-ed25519 AAAAC3Nza seller@laptop\n"}),
		"SSH host key":                 with(map[string]string{"etc/ssh/ssh_host_ed25519_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"}),
		"aws credentials":              with(map[string]string{"root/.aws/credentials": "[default]\naws_secret_access_key = x\n"}),
		"access key id in a script":    with(map[string]string{"opt/app/deploy.sh": "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"}),
		"PEM key in /etc":              with(map[string]string{"etc/app/tls.key": "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n"}),
		"PEM key in skipped dpkg dir":  with(map[string]string{"var/lib/dpkg/info/x.key": "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n"}),
		"no os-release":                with(nil, "etc/os-release"),
		"/opt links elsewhere":         with(map[string]string{"opt": "->/etc"}),
		"/home/admin removed":          with(nil, "home/admin/.bashrc"),
	}
}

func dropParagraph(t *testing.T, status, pkgName string) string {
	t.Helper()
	var out []string
	found := false
	for _, p := range strings.Split(status, "\n\n") {
		if strings.HasPrefix(p, "Package: "+pkgName+"\n") {
			found = true
			continue
		}
		out = append(out, p)
	}
	if !found {
		t.Fatalf("the fixture's status has no %s", pkgName)
	}
	return strings.Join(out, "\n\n")
}

func alpineUpgraded(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("testdata/rootfs-alpine/lib/apk/db/installed")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	done := false
	for _, l := range strings.Split(string(data), "\n") {
		if !done && strings.HasPrefix(l, "V:") {
			l += ".1"
			done = true
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// debianBuildLayer is a layer like a build's on debian-12: a .deb
// installed (dpkg status, info files, a binary, its copyright), a
// pip-style install into /usr/local, a package's files removed and a
// configuration file changed.
func debianBuildLayer(t testing.TB, rootfs string) string {
	t.Helper()
	status, err := os.ReadFile(filepath.Join(rootfs, "var/lib/dpkg/status"))
	if err != nil {
		t.Fatal(err)
	}
	spec := map[string]string{
		"var/lib/dpkg/status":               string(status) + "\n" + strings.Replace(newDpkgEntry, "libfoo1", "libc6", 1),
		"var/lib/dpkg/info/newtool.list":    "/usr/bin/newtool\n/usr/share/doc/newtool\n/usr/share/doc/newtool/copyright\n",
		"var/lib/dpkg/info/newtool.md5sums": "0123456789abcdef0123456789abcdef  usr/bin/newtool\n",
		"usr/bin/newtool":                   "#!/bin/sh\necho new\n",
		"usr/share/doc/newtool/copyright":   "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nLicense: MIT\n",
		"var/log/dpkg.log":                  "2026-12-01 installed newtool\n",
		"etc/newtool.conf":                  "setting = 1\n",
		"usr/local/lib/python3.11/dist-packages/newpkg-3.0.dist-info/METADATA":  "Metadata-Version: 2.1\nName: newpkg\nVersion: 3.0\n",
		"usr/local/lib/python3.11/dist-packages/newpkg-3.0.dist-info/RECORD":    "newpkg/__init__.py,,\nnewpkg-3.0.dist-info/METADATA,,\n",
		"usr/local/lib/python3.11/dist-packages/newpkg-3.0.dist-info/INSTALLER": "pip\n",
		"usr/local/lib/python3.11/dist-packages/newpkg/__init__.py":             "",
		"usr/local/bin/newpkg": "->../lib/python3.11/dist-packages/newpkg/__init__.py",
		// Packaged files deleted by hand: a binary, and a license file
		// the package's licenses come from.
		"usr/sbin/sgdisk":               whiteoutEntry,
		"usr/share/doc/gdisk/copyright": whiteoutEntry,
	}
	return writeLayer(t, "", spec)
}

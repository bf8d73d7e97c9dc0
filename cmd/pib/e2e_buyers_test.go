//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/testenv"
)

// market is a real pib serve on SQLite where a seller has published the
// demo product (the hello-pib .deb and its install script, version 1.0)
// through the load form, and two buyers exist. Every step runs the pib
// binary's own commands, as README's "Buyers" walkthrough does.
type market struct {
	srv                             *pibServer
	data                            string
	operator, seller, buyerA, buyer string // tokens; buyer is buyer B
	product                         string
}

// cli runs the pib binary (this test binary as pib) as token's account
// against the server: stdout, and stderr in the error.
func (m *market) cli(token string, args ...string) (string, error) {
	cmd := exec.Command(os.Args[0], append([]string{"--data", m.data, "--server", m.srv.url}, args...)...)
	cmd.Env = append(os.Environ(), "PIB_TEST_RUN_PIB=1", "PIB_TOKEN="+token, "PIB_SERVER="+m.srv.url)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), &cliError{args: args, stderr: strings.TrimSpace(errOut.String()), err: err}
	}
	return out.String(), nil
}

// must is cli, failing the test on an error.
func (m *market) must(t testing.TB, token string, args ...string) string {
	t.Helper()
	out, err := m.cli(token, args...)
	if err != nil {
		t.Fatalf("%v\nstdout: %s", err, out)
	}
	return out
}

// mustJSON is must with --json, decoded into v.
func (m *market) mustJSON(t testing.TB, v any, token string, args ...string) {
	t.Helper()
	out := m.must(t, token, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("pib %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cliError is a pib command that failed: what it wrote to stderr.
type cliError struct {
	args   []string
	stderr string
	err    error
}

func (e *cliError) Error() string {
	return fmt.Sprintf("pib %s: %v: %s", strings.Join(e.args, " "), e.err, e.stderr)
}

// stderrOf is what a failed pib command said, "" if it did not fail.
func stderrOf(err error) string {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.stderr
	}
	return ""
}

// lastLine is the last line a command printed (pib account create prints
// the token last).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// newMarket starts pib serve on a fresh data directory holding the shared
// debian-12 image (alias debian-12), and publishes the demo product:
// the seller creates and submits its group (a real sandbox build and
// scan), fills a "new product" row in the downloaded load form and sends
// it, the operator approves; the seller asks for version 1.0 to be public,
// the operator approves.
func newMarket(t testing.TB) *market {
	t.Helper()
	data := debianDataDir(t)
	m := &market{data: data, srv: startServerTB(t, data, freeAddrTB(t), 1)}
	raw, err := os.ReadFile(filepath.Join(data, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	m.operator = strings.TrimSpace(string(raw))

	// The operator: the OS version and the accounts.
	m.must(t, m.operator, "os", "add", "debian-12", "--image", "debian-12")
	m.seller = lastLine(m.must(t, m.operator, "account", "create", "--role", "seller", "acme"))
	m.buyerA = lastLine(m.must(t, m.operator, "account", "create", "--role", "buyer", "buyer-a"))
	m.buyer = lastLine(m.must(t, m.operator, "account", "create", "--role", "buyer", "buyer-b"))

	// The seller: the demo group with a software version, built and
	// scanned for real.
	dir := t.TempDir()
	deb := demoDeb(t)
	install := filepath.Join(dir, "install.sh")
	if err := os.WriteFile(install, []byte("#!/bin/sh\nset -e\ndpkg -i hello-pib_1.0_all.deb\nhello-pib\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.must(t, m.seller, "groups", "create", "--name", "HelloPib1_0Linux1", "--platform", "linux", "--os", "debian-12",
		"--installer", install, "--package", deb, "--software-version", "1.0")
	m.must(t, m.seller, "groups", "submit", "HelloPib1_0Linux1", "--watch")
	var st []api.GroupStatus
	m.mustJSON(t, &st, m.seller, "status", "HelloPib1_0Linux1")
	if len(st) != 1 || st[0].State != pipeline.Successful {
		out, _ := os.ReadFile(m.srv.log.Name())
		t.Fatalf("the seller's group: %+v\nserve log:\n%s", st, out)
	}

	// The load form (L1): a new product (F3), approved (L2).
	form := filepath.Join(dir, "form.xlsx")
	m.must(t, m.seller, "load-form", "download", "-o", form)
	fillLoadForm(t, form, map[loadform.Column]string{
		loadform.ColRequest: string(catalog.NewProduct), loadform.ColProductTitle: "Hello Pib", loadform.ColVersionTitle: "1.0",
		loadform.ColReleaseNotes: "First release.", loadform.ColUsage: "Run hello-pib.",
		loadform.ColPackageGroup: "HelloPib1_0Linux1", loadform.ColPlatform: "linux",
		loadform.ColShortDescription: "Says hello.", loadform.ColLongDescription: "Says hello\nfrom a pib-tested package.",
		loadform.ColHighlights: "Small\nFriendly", loadform.ColCategory: "Databases", loadform.ColSupportContact: "support@acme.example",
	})
	m.must(t, m.seller, "load-form", "submit", form)
	m.approvePending(t)
	var products []catalog.Product
	m.mustJSON(t, &products, m.seller, "products", "ls")
	if len(products) != 1 || products[0].Title != "Hello Pib" {
		t.Fatalf("the seller's products after approval: %+v", products)
	}
	m.product = products[0].ID
	// Not public yet: a buyer sees nothing.
	m.mustJSON(t, &products, m.buyerA, "products", "ls")
	if len(products) != 0 {
		t.Fatalf("a buyer sees the draft product: %+v", products)
	}
	m.must(t, m.seller, "products", "publish", m.product, "1.0")
	m.approvePending(t)
	m.mustJSON(t, &products, m.buyerA, "products", "ls")
	if len(products) != 1 || products[0].ID != m.product || products[0].Visibility != catalog.Public {
		t.Fatalf("a buyer's catalog after publishing: %+v", products)
	}
	return m
}

// approvePending approves the one pending change request, as the operator.
func (m *market) approvePending(t testing.TB) {
	t.Helper()
	var changes []catalog.Change
	m.mustJSON(t, &changes, m.operator, "changes", "ls")
	var pending []string
	for _, ch := range changes {
		if ch.State == catalog.Pending {
			pending = append(pending, ch.ID)
		}
	}
	if len(pending) != 1 {
		t.Fatalf("pending change requests: %v, want one", pending)
	}
	m.must(t, m.operator, "changes", "approve", pending[0])
}

// fillLoadForm fills row 2 of the Products sheet of the workbook at
// path, as a seller's spreadsheet would.
func fillLoadForm(t testing.TB, path string, row map[loadform.Column]string) {
	t.Helper()
	xf, err := excelize.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer xf.Close()
	for _, c := range loadform.Columns {
		if v, ok := row[c]; ok {
			if err := xf.SetCellStr(loadform.ProductsSheet, c.Letter()+"2", v); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Not xf.Save: excelize then declares a "bin" → vbaProject default
	// content type in an .xlsx, which pib refuses as macro-enabled.
	buf, err := xf.WriteToBuffer()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// addLayer writes to dst the docker archive base (as pib exports it, gzip
// layers; or none) with one more layer holding files, its config's OS set
// to osName.
func addLayer(t testing.TB, base, dst, osName string, files map[string]string) {
	t.Helper()
	type manifest struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var man []manifest
	cfg := map[string]any{"architecture": "amd64", "rootfs": map[string]any{"type": "layers", "diff_ids": []any{}}}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tw := tar.NewWriter(out)
	put := func(name string, body []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if base != "" {
		// Two passes: the manifest and config first, then the layers.
		entries := map[string][]byte{}
		f, err := os.Open(base)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Size < 1<<20 {
				b, _ := io.ReadAll(tr)
				entries[h.Name] = b
			}
		}
		if err := json.Unmarshal(entries["manifest.json"], &man); err != nil || len(man) != 1 {
			t.Fatalf("%s: manifest.json: %v", base, err)
		}
		if err := json.Unmarshal(entries[man[0].Config], &cfg); err != nil {
			t.Fatal(err)
		}
		f.Seek(0, io.SeekStart)
		tr = tar.NewReader(f)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name == "manifest.json" || h.Name == man[0].Config {
				continue
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(tw, tr); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		man = []manifest{{}}
	}
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	for name, body := range files {
		lw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
		lw.Write([]byte(body))
	}
	lw.Close()
	sum := sha256.Sum256(layer.Bytes())
	// gzip, as pib's own export: go-containerregistry tells a docker
	// archive's compression from its first layer alone.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layer.Bytes())
	zw.Close()
	layerName := hex.EncodeToString(sum[:]) + ".tar.gz"
	put(layerName, gz.Bytes())
	rootfs := cfg["rootfs"].(map[string]any)
	rootfs["diff_ids"] = append(rootfs["diff_ids"].([]any), "sha256:"+hex.EncodeToString(sum[:]))
	hist, _ := cfg["history"].([]any)
	cfg["history"] = append(hist, map[string]any{"created_by": "the buyer's customisation"})
	cfg["os"] = osName
	cfgRaw, _ := json.Marshal(cfg)
	cfgSum := sha256.Sum256(cfgRaw)
	man[0].Config = hex.EncodeToString(cfgSum[:]) + ".json"
	man[0].RepoTags = []string{"gold/custom:latest"}
	man[0].Layers = append(man[0].Layers, layerName)
	put(man[0].Config, cfgRaw)
	manRaw, _ := json.Marshal(man)
	put("manifest.json", manRaw)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// rootfsEntries reads a root file system tar: each regular file's body
// (up to 4 KiB) by its path without a leading "./" or "/".
func rootfsEntries(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(io.LimitReader(tr, 4096))
			files[strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")] = string(b)
		}
	}
}

// skopeoLayers is skopeo inspect's layer list of an archive (ref is
// docker-archive:FILE or oci-archive:FILE).
func skopeoLayers(t testing.TB, ref string) []string {
	t.Helper()
	out, err := exec.Command("skopeo", "inspect", ref).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, stderr)
	}
	var info struct {
		Os     string
		Layers []string
	}
	if err := json.Unmarshal(out, &info); err != nil || info.Os != "linux" {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
	}
	return info.Layers
}

// blobBytes is the bytes stored in the server's blob folder.
func blobBytes(t testing.TB, data string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(filepath.Join(data, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBuyersEndToEnd is issue 11's end-to-end test through the pib
// binary against a real pib serve: a seller publishes the demo product
// through the load form; buyer A imports two gold images through the API
// (debian-12 as exported by pib, and a customised one with one more layer
// holding /etc/gold-marker), subscribes and builds the product onto the
// customised one (a real sandbox build and scan, C1). The private image
// keeps the marker and gains the product, stores only its new layer, and
// exports in every format (C3), which skopeo reads. Buyer B can neither
// see, export nor build from buyer A's images (a foreign ID answers as a
// missing one), and C2, C4 and C5's refusals come before any build.
func TestBuyersEndToEnd(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Fatal("skopeo is needed (scripts/deps.sh test installs it)")
	}
	m := newMarket(t)
	dir := t.TempDir()

	// Gold images (C3): debian-12 exported by the operator on the server's
	// machine, imported by buyer A through the API; and the same with one
	// more layer, a customisation the private image must keep.
	plainTar := filepath.Join(dir, "debian-12.docker.tar")
	if _, err := runPib(m.data, "image", "export", "debian-12", "--format", "docker-archive", "-o", plainTar); err != nil {
		t.Fatal(err)
	}
	customTar := filepath.Join(dir, "custom.docker.tar")
	addLayer(t, plainTar, customTar, "linux", map[string]string{"etc/gold-marker": "gold image of buyer A\n"})
	plain := lastLine(m.must(t, m.buyerA, "image", "import", plainTar))
	custom := lastLine(m.must(t, m.buyerA, "image", "import", customTar))
	goldLayers := skopeoLayers(t, "docker-archive:"+customTar)
	var mine []map[string]any
	m.mustJSON(t, &mine, m.buyerA, "image", "ls")
	if len(mine) != 2 {
		t.Fatalf("buyer A's images: %v, want its two gold images", mine)
	}

	// C4: no subscription, no build.
	build := func(token, gold, name string, extra ...string) (string, error) {
		return m.cli(token, append([]string{"private-images", "build", "--product", m.product, "--version", "1.0",
			"--gold-image", gold, "--name", name}, extra...)...)
	}
	if _, err := build(m.buyerA, custom, "early"); !strings.Contains(stderrOf(err), "rule C4: product:") {
		t.Fatalf("a build before subscribing: %v, want SubscriptionNotFound (rule C4)", err)
	}
	m.must(t, m.buyerA, "subscriptions", "add", m.product)

	// C1, C4: the same request twice at once with one client token: one
	// build, and both get it.
	before := blobBytes(t, m.data)
	outs := make([]string, 2)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := build(m.buyerA, custom, "hello-on-gold", "--client-token", "e2e-1", "--tag", "team=red", "--wait", "--json")
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			outs[i] = out
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var pbs [2]privatebuilds.PrivateBuild
	for i, out := range outs {
		if err := json.Unmarshal([]byte(out), &pbs[i]); err != nil {
			t.Fatalf("private-images build --json: %v\n%s", err, out)
		}
	}
	pb := pbs[0]
	if pbs[1].ID != pb.ID {
		t.Fatalf("one client token made builds %s and %s", pb.ID, pbs[1].ID)
	}
	var list []privatebuilds.PrivateBuild
	m.mustJSON(t, &list, m.buyerA, "private-images", "ls")
	if len(list) != 1 {
		t.Fatalf("buyer A's private builds: %d, want 1", len(list))
	}
	if pb.Build == nil || pb.Build.State != pipeline.Successful || pb.Build.ImageID == "" || pb.GoldImageID != custom {
		log, _ := m.cli(m.buyerA, "private-images", "log", pb.ID)
		rep, _ := m.cli(m.buyerA, "private-images", "report", pb.ID)
		t.Fatalf("private build %+v %+v\nlog:\n%s\nreport:\n%s", pb, pb.Build, log, rep)
	}
	stored := blobBytes(t, m.data) - before
	private := pb.Build.ImageID
	var im images.Image
	m.mustJSON(t, &im, m.buyerA, "image", "inspect", private)
	for k, want := range map[string]string{"team": "red", privatebuilds.TagFulfillment: pb.FulfillmentID, privatebuilds.TagProduct: m.product,
		privatebuilds.TagVersion: pb.VersionID, privatebuilds.TagSourceImage: custom, privatebuilds.TagName: "hello-on-gold"} {
		if im.Tags[k] != want {
			t.Errorf("private image tag %s = %q, want %q (C5)", k, im.Tags[k], want)
		}
	}
	if im.ParentID != custom || im.DistroID != "debian" || im.DistroVersion != "12" {
		t.Errorf("private image %+v: want parent %s, debian 12", im, custom)
	}

	// C3: the private image exports in every format; skopeo reads the
	// archives, which hold the gold image's layers and one more (skopeo
	// lists a docker archive's layers by content digest, an OCI archive's
	// by blob digest).
	arch := map[string]string{}
	for _, f := range []string{"docker-archive", "oci-archive", "rootfs-tar"} {
		arch[f] = filepath.Join(dir, "private."+f+".tar")
		m.must(t, m.buyerA, "image", "export", private, "--format", f, "-o", arch[f])
	}
	if layers := skopeoLayers(t, "docker-archive:"+arch["docker-archive"]); len(layers) != len(goldLayers)+1 || fmt.Sprint(layers[:len(goldLayers)]) != fmt.Sprint(goldLayers) {
		t.Errorf("docker-archive: layers %v, want the gold image's %v and one more", layers, goldLayers)
	}
	if layers := skopeoLayers(t, "oci-archive:"+arch["oci-archive"]); len(layers) != len(goldLayers)+1 {
		t.Errorf("oci-archive: layers %v, want the gold image's %d and one more", layers, len(goldLayers))
	}
	files := rootfsEntries(t, arch["rootfs-tar"])
	if files["etc/gold-marker"] != "gold image of buyer A\n" {
		t.Errorf("the private image lost the gold image's /etc/gold-marker: %q", files["etc/gold-marker"])
	}
	if !strings.Contains(files["usr/bin/hello-pib"], "echo hello") {
		t.Errorf("the private image lacks the product's /usr/bin/hello-pib: %q", files["usr/bin/hello-pib"])
	}
	if !strings.Contains(files["usr/lib/os-release"], "bookworm") {
		t.Errorf("the flattened private image is not the gold image's Debian 12: os-release %q", files["usr/lib/os-release"])
	}
	if podman, err := exec.LookPath("podman"); err == nil {
		if out, err := exec.Command(podman, "load", "-i", arch["docker-archive"]).CombinedOutput(); err != nil {
			t.Errorf("podman load: %v\n%s", err, out)
		}
	}
	// Only the new layer is stored: the gold image's layers are shared
	// (the blobs the build added are that layer, the image's config and
	// manifest and the scan's SBOMs).
	var goldSize struct{ Size int64 }
	m.mustJSON(t, &goldSize, m.buyerA, "image", "inspect", custom)
	if stored <= 0 || stored > goldSize.Size/10 {
		t.Errorf("the private build stored %d bytes of blobs; the gold image's layers are %d bytes and must be shared, not copied", stored, goldSize.Size)
	}

	// C5: the private image carries the fulfillment; C2: a gold image of
	// another distribution, or of another platform, has no package group
	// to install. Refused before any build.
	alpine := lastLine(m.must(t, m.buyerA, "image", "import", rootfsTar(t)))
	windowsTar := filepath.Join(dir, "windows.docker.tar")
	addLayer(t, "", windowsTar, "windows", map[string]string{"Windows/System32/drivers/etc/hosts": "127.0.0.1 localhost\n"})
	windows := lastLine(m.must(t, m.buyerA, "image", "import", windowsTar))
	for _, tc := range []struct{ name, gold, want string }{
		{"C5: onto the private image", private, "rule C5: gold_image: gold image " + private + " already carries fulfillment"},
		{"C2: an alpine gold image", alpine, "rule C2: gold_image: gold image " + alpine + " is alpine 3.19.1, and package group HelloPib1_0Linux1 supports only debian-12"},
		{"C2: a windows gold image", windows, "rule C2: gold_image: gold image " + windows + " is windows, and version 1.0 of product " + m.product + " has no package group for windows"},
	} {
		if _, err := build(m.buyerA, tc.gold, "refused"); !strings.Contains(stderrOf(err), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
	// C4: the client token with other parameters.
	if _, err := build(m.buyerA, custom, "renamed", "--client-token", "e2e-1"); !strings.Contains(stderrOf(err), "rule C4: client_token:") {
		t.Errorf("a client token reused with other parameters: %v, want IdempotentParameterMismatch", err)
	}
	m.mustJSON(t, &list, m.buyerA, "private-images", "ls")
	if len(list) != 1 {
		t.Errorf("refused requests made builds: buyer A has %d", len(list))
	}

	// Isolation: buyer B, subscribed, sees none of buyer A's images or
	// builds; each foreign ID answers exactly as a missing one does.
	m.must(t, m.buyer, "subscriptions", "add", m.product)
	const missingImage, missingBuild = "img-00000000000000000", "b-0000000000000000"
	out := filepath.Join(dir, "stolen.tar")
	for _, tc := range []struct {
		what            string
		foreign, absent string
		args            func(id string) []string
	}{
		{"inspect the gold image", custom, missingImage, func(id string) []string { return []string{"image", "inspect", id} }},
		{"inspect the private image", private, missingImage, func(id string) []string { return []string{"image", "inspect", id} }},
		{"export the gold image", custom, missingImage, func(id string) []string {
			return []string{"image", "export", id, "--format", "rootfs-tar", "-o", out}
		}},
		{"export the private image", private, missingImage, func(id string) []string {
			return []string{"image", "export", id, "--format", "docker-archive", "-o", out}
		}},
		{"build from the gold image", plain, missingImage, func(id string) []string {
			return []string{"private-images", "build", "--product", m.product, "--version", "1.0", "--gold-image", id, "--name", "stolen"}
		}},
		{"build from the private image", private, missingImage, func(id string) []string {
			return []string{"private-images", "build", "--product", m.product, "--version", "1.0", "--gold-image", id, "--name", "stolen"}
		}},
		{"show the private build", pb.ID, missingBuild, func(id string) []string { return []string{"private-images", "show", id} }},
		{"read the private build's log", pb.ID, missingBuild, func(id string) []string { return []string{"private-images", "log", id} }},
	} {
		_, foreign := m.cli(m.buyer, tc.args(tc.foreign)...)
		_, absent := m.cli(m.buyer, tc.args(tc.absent)...)
		f, a := strings.ReplaceAll(stderrOf(foreign), tc.foreign, "ID"), strings.ReplaceAll(stderrOf(absent), tc.absent, "ID")
		if foreign == nil || f != a || !strings.Contains(f, "not found") {
			t.Errorf("buyer B: %s: %q; want the answer for a missing ID: %q", tc.what, stderrOf(foreign), stderrOf(absent))
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused export left a file")
	}
	var theirs []map[string]any
	m.mustJSON(t, &theirs, m.buyer, "image", "ls")
	m.mustJSON(t, &list, m.buyer, "private-images", "ls")
	if len(theirs) != 0 || len(list) != 0 {
		t.Errorf("buyer B lists images %v and builds %v of buyer A's", theirs, list)
	}
}

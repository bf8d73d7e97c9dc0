//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/testenv"
)

// pibServer is a real `pib serve` process.
type pibServer struct {
	t    testing.TB
	cmd  *exec.Cmd
	url  string
	data string
	log  *os.File
}

func startServer(t testing.TB, data, listen string) *pibServer {
	return startServerTB(t, data, listen, 1)
}

func startServerTB(t testing.TB, data, listen string, workers int, flags ...string) *pibServer {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(data, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--data", data, "--listen", listen, "--workers", fmt.Sprint(workers)}, flags...)...)
	cmd.Env = append(os.Environ(), "PIB_TEST_RUN_PIB=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &pibServer{t: t, cmd: cmd, url: "http://" + listen, data: data, log: logf}
	t.Cleanup(func() { s.stop(syscall.SIGTERM); logf.Close() })
	for range 100 {
		if resp, err := http.Get(s.url + "/healthz"); err == nil {
			resp.Body.Close()
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _ := os.ReadFile(logf.Name())
	t.Fatalf("pib serve did not answer:\n%s", out)
	return nil
}

func (s *pibServer) stop(sig syscall.Signal) {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(sig)
	s.cmd.Wait()
}

// seller registers debian-12 as an OS version (as the operator) and
// returns a client of a new seller account.
func (s *pibServer) seller(t testing.TB, name string) *client.Client {
	t.Helper()
	ctx := context.Background()
	token, _ := os.ReadFile(filepath.Join(s.data, "operator.token"))
	op := client.New(s.url, strings.TrimSpace(string(token)))
	if _, err := op.AddOSVersion(ctx, "debian-12", "debian-12"); err != nil {
		t.Fatal(err)
	}
	acc, err := op.CreateAccount(ctx, name, accounts.Seller)
	if err != nil {
		t.Fatal(err)
	}
	return client.New(s.url, acc.Token)
}

func freeAddr(t testing.TB) string { return freeAddrTB(t) }

func freeAddrTB(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeSurvivesKill9 kills pib serve with SIGKILL while the sandbox
// runs an installer, starts it again and checks the build is retried to
// its end and nothing of the killed run is left: no mount, no process, no
// staging or scratch folder.
func TestServeSurvivesKill9(t *testing.T) {
	testenv.RequireRoot(t)
	data := debianDataDir(t)

	addr := freeAddr(t)
	srv := startServer(t, data, addr)
	ctx := context.Background()
	seller := srv.seller(t, "acme")
	// A name of its own: other test packages run sandboxes at the same
	// time, and the process check below must see only this test's.
	installerName := fmt.Sprintf("kill9-%d.sh", os.Getpid())
	installer := "#!/bin/sh\necho started\nsleep 4\necho done > /opt/done\n"
	pkg, err := seller.UploadPackage(ctx, installerName, strings.NewReader(installer), int64(len(installer)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seller.CreateGroup(ctx, groups.Spec{Name: "Slow1", Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: pkg.ID}); err != nil {
		t.Fatal(err)
	}
	builds, err := seller.SubmitGroup(ctx, "Slow1")
	if err != nil {
		t.Fatal(err)
	}
	buildLog := filepath.Join(data, "builds", builds[0].ID, "build.log")
	waitFor(t, 60*time.Second, "the installer to start", func() bool {
		b, _ := os.ReadFile(buildLog)
		return strings.Contains(string(b), "started")
	})

	srv.stop(syscall.SIGKILL)
	srv = startServer(t, data, addr)
	var st *api.GroupStatus
	waitFor(t, 120*time.Second, "the build to end after the restart", func() bool {
		page, err := seller.Status(ctx, client.StatusQuery{Group: "Slow1"})
		if err != nil {
			t.Fatal(err)
		}
		st = page.Items[0]
		return st.State == pipeline.Successful || st.State == pipeline.Investigating || st.State == pipeline.GroupIssuesFound
	})
	if st.State != pipeline.Successful || st.Builds[0].Attempt < 2 {
		out, _ := os.ReadFile(srv.log.Name())
		t.Fatalf("after kill -9 and restart: %+v\nserve log:\n%s", st.Builds[0], out)
	}
	hist, _ := seller.GroupHistory(ctx, "Slow1")
	if !strings.Contains(fmt.Sprint(hist), "worker process died") {
		t.Errorf("history does not say the worker died: %+v", hist)
	}
	// The scan kept the SBOM, and it downloads in every format (S1).
	t.Setenv("PIB_SERVER", srv.url)
	t.Setenv("PIB_TOKEN", seller.Token)
	for format, want := range map[string]string{"cyclonedx-json": `"bomFormat":"CycloneDX"`, "spdx-json": `"spdxVersion"`, "syft-json": `"artifactRelationships"`} {
		out, err := run(t, data, "builds", "sbom", st.Builds[0].ID, "--format", format)
		if err != nil || !strings.Contains(out, want) || !strings.Contains(out, "openssh-server") {
			t.Errorf("%s SBOM: %v, %.300s", format, err, out)
		}
	}
	out, err := run(t, data, "builds", "report", st.Builds[0].ID)
	for _, want := range []string{"status: Successful", "image policy checks:", "pass S3.1", "Changed files", "/opt/done"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("builds report lacks %q: %v\n%s", want, err, out)
		}
	}
	srv.stop(syscall.SIGTERM)

	// Nothing of either run is left on the host.
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, data) {
			t.Errorf("mount left behind: %s", line)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(p)
		if strings.Contains(string(cmdline), installerName) || strings.Contains(string(cmdline), data) {
			t.Errorf("process left behind: %s: %q", p, cmdline)
		}
	}
	// The log is stored with the build: its directory (builds/<id>) goes.
	for _, d := range []string{"staging", "cache/tmp", "builds"} {
		if ents, _ := os.ReadDir(filepath.Join(data, d)); len(ents) != 0 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("left in %s: %v", d, names)
		}
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runPib runs the pib command (this test binary as pib) on data.
func runPib(data string, args ...string) (string, error) {
	cmd := exec.Command(os.Args[0], append([]string{"--data", data}, args...)...)
	cmd.Env = append(os.Environ(), "PIB_TEST_RUN_PIB=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("pib %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// sharedOSVZip finds the OSV data our machines keep beside the checkout
// (../shared/data/osv), or "" elsewhere.
func sharedOSVZip() string {
	dir, _ := os.Getwd()
	for ; dir != "/"; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "shared", "data", "osv", "debian-all-2025-02-12.zip")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// demoDeb builds the demo's hello-pib .deb with dpkg-deb.
func demoDeb(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "hello-pib")
	os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755)
	os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte("Package: hello-pib\nVersion: 1.0\nArchitecture: all\nMaintainer: pib <t@example.invalid>\nDescription: test\n"), 0o644)
	os.WriteFile(filepath.Join(root, "usr", "bin", "hello-pib"), []byte("#!/bin/sh\necho hello\n"), 0o755)
	deb := filepath.Join(dir, "hello-pib_1.0_all.deb")
	if out, err := exec.Command("dpkg-deb", "--build", "--root-owner-group", root, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	return deb
}

// debianDataDir returns a new data directory holding the debian-12 test
// image, for the tests that run pib on it.
func debianDataDir(t testing.TB) string {
	t.Helper()
	data := t.TempDir()
	s, closeStore, err := testenv.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	testenv.ImportDebian12(t, s)
	closeStore()
	return data
}

//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/s3test"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/testenv"
)

// pibProc is a pib process of a multi-node deployment: its own data
// directory, the shared database and blob store in its flags.
type pibProc struct {
	name string
	cmd  *exec.Cmd
	log  string
}

func startPib(t *testing.T, name, data string, args ...string) *pibProc {
	t.Helper()
	logPath := filepath.Join(data, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], append([]string{"--data", data}, args...)...)
	cmd.Env = append(append(os.Environ(), "PIB_TEST_RUN_PIB=1"), s3test.Env()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	p := &pibProc{name: name, cmd: cmd, log: logPath}
	t.Cleanup(func() { p.stop(syscall.SIGTERM) })
	return p
}

func (p *pibProc) stop(sig syscall.Signal) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(sig)
	p.cmd.Wait()
}

func (p *pibProc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// waitLog waits for text in the process's log.
func (p *pibProc) waitLog(t *testing.T, text string) {
	t.Helper()
	waitFor(t, 60*time.Second, p.name+" to log "+text, func() bool {
		if p.cmd.ProcessState != nil {
			t.Fatalf("%s exited:\n%s", p.name, p.logText())
		}
		return strings.Contains(p.logText(), text)
	})
}

// TestMultiNode runs pib as a deployment of separate machines would, on
// loopback: one `pib serve` (API only) and two `pib worker`s, each with a
// data directory of its own, sharing PostgreSQL and a real S3 server
// (SeaweedFS). A build on one worker must leave nothing the others need on
// its disk: an image worker 1 built is exported through pib serve,
// imported back and built on by worker 2 alone, with an empty cache; then
// 20 groups submitted at once are each built exactly once by the two.
func TestMultiNode(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	db := storetest.Open(t, store.Postgres)
	srv := s3test.Start(t)
	s3test.SetEnv(t)
	bucket := srv.Bucket(t)

	// The operator's base image goes straight into the shared stores, from
	// a data directory that is then removed: nothing of it stays local.
	seed := t.TempDir()
	openNode := func(dir, url string) (*blobs.S3, *images.Store) {
		bs, err := blobs.OpenS3(ctx, url, filepath.Join(dir, "blobs"), blobs.S3Options{Leases: blobs.NewLeases(db)})
		if err != nil {
			t.Fatal(err)
		}
		return bs, images.NewStore(db, bs, filepath.Join(dir, "cache"))
	}
	seedBlobs, seedImages := openNode(seed, bucket)
	testenv.ImportDebian12(t, seedImages)
	measureS3(t, ctx, seedBlobs, func(dir string) *blobs.S3 { bs, _ := openNode(dir, srv.Bucket(t)); return bs }, func(dir string) *blobs.S3 { bs, _ := openNode(dir, bucket); return bs })
	if err := os.RemoveAll(seed); err != nil {
		t.Fatal(err)
	}

	shared := []string{"--database-url", db.URL, "--blobs", bucket}
	apiData, w1Data, w2Data := t.TempDir(), t.TempDir(), t.TempDir()
	addr := freeAddr(t)
	serve := startPib(t, "serve", apiData, append(shared, "serve", "--listen", addr, "--workers", "0")...)
	waitFor(t, 60*time.Second, "pib serve to answer", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	worker := func(name, data string) *pibProc {
		p := startPib(t, name, data, append(shared, "worker", "--workers", "2")...)
		p.waitLog(t, "pib worker running")
		return p
	}
	w1 := worker("worker1", w1Data)

	token, err := os.ReadFile(filepath.Join(apiData, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr
	op := client.New(url, strings.TrimSpace(string(token)))
	if _, err := op.AddOSVersion(ctx, "debian-12", "debian-12"); err != nil {
		t.Fatal(err)
	}
	acc, err := op.CreateAccount(ctx, "multinode", accounts.Seller)
	if err != nil {
		t.Fatal(err)
	}
	seller := client.New(url, acc.Token)
	installer := "#!/bin/sh\nset -e\nmkdir -p /opt/multinode\necho \"$(hostname) $$\" > /opt/multinode/built-$(date +%s%N)\n"
	pkg, err := seller.UploadPackage(ctx, "multinode.sh", strings.NewReader(installer), int64(len(installer)))
	if err != nil {
		t.Fatal(err)
	}
	// The group built on worker 1's image fails unless that image's layer
	// is below it.
	onTopInstaller := "#!/bin/sh\nset -e\nls /opt/multinode/built-*\necho on top > /opt/on-top\n"
	onTopPkg, err := seller.UploadPackage(ctx, "on-top.sh", strings.NewReader(onTopInstaller), int64(len(onTopInstaller)))
	if err != nil {
		t.Fatal(err)
	}
	build := func(name, osName string) {
		t.Helper()
		id := pkg.ID
		if osName == "multinode-12" {
			id = onTopPkg.ID
		}
		if _, err := seller.CreateGroup(ctx, groups.Spec{Name: name, Platform: "linux", OSVersions: []string{osName}, InstallerID: id}); err != nil {
			t.Fatal(err)
		}
	}
	waitEnded := func(names ...string) map[string]*pipeline.Build {
		t.Helper()
		out := map[string]*pipeline.Build{}
		waitFor(t, 10*time.Minute, fmt.Sprintf("%d groups to end", len(names)), func() bool {
			for _, n := range names {
				if out[n] != nil {
					continue
				}
				st, err := seller.GroupBuilds(ctx, n)
				if err != nil {
					t.Fatal(err)
				}
				if len(st.Builds) == 1 && st.Builds[0].State.Ended() {
					out[n] = st.Builds[0]
				}
			}
			return len(out) == len(names)
		})
		return out
	}

	// Worker 1 alone builds on debian-12.
	build("MultiBase1", "debian-12")
	if _, err := seller.SubmitGroup(ctx, "MultiBase1"); err != nil {
		t.Fatal(err)
	}
	first := waitEnded("MultiBase1")["MultiBase1"]
	if first.State != pipeline.Successful {
		t.Fatalf("first build on worker 1: %+v\nworker 1 log:\n%s", first, w1.logText())
	}
	// Its image, exported by its owner through pib serve and imported back
	// as the operator's, becomes an OS version's base image.
	exported := filepath.Join(t.TempDir(), "built.tar")
	f, err := os.Create(exported)
	if err != nil {
		t.Fatal(err)
	}
	if err := seller.ExportImage(ctx, first.ImageID, images.DockerArchive, f); err != nil {
		t.Fatal(err)
	}
	size, _ := f.Seek(0, io.SeekEnd)
	f.Seek(0, io.SeekStart)
	based, err := op.ImportImage(ctx, f, size, "multinode-base")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.AddOSVersion(ctx, "multinode-12", based.ID); err != nil {
		t.Fatal(err)
	}
	// Worker 2, a new machine with an empty data directory, alone builds
	// on it: every layer comes from the bucket.
	w1.stop(syscall.SIGTERM)
	w2 := worker("worker2", w2Data)
	build("MultiOnTop1", "multinode-12")
	if _, err := seller.SubmitGroup(ctx, "MultiOnTop1"); err != nil {
		t.Fatal(err)
	}
	onTop := waitEnded("MultiOnTop1")["MultiOnTop1"]
	if onTop.State != pipeline.Successful {
		t.Fatalf("build on worker 2 on worker 1's image: %+v\nworker 2 log:\n%s", onTop, w2.logText())
	}
	var sbom strings.Builder
	if err := seller.BuildSBOM(ctx, onTop.ID, "cyclonedx-json", &sbom); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sbom.String(), "openssh-server") {
		t.Errorf("the SBOM of the build on worker 2 lacks the base's packages: %.400s", sbom.String())
	}

	// 20 groups at once, on both workers.
	w1 = worker("worker1", w1Data)
	const n = 20
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("Multi%02d", i))
		build(names[i], "debian-12")
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, name := range names {
		wg.Go(func() { _, errs[i] = seller.SubmitGroup(ctx, name) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	ended := waitEnded(names...)
	elapsed := time.Since(start)
	t.Logf("20 groups submitted at once on 2 workers (2 builds each): all ended in %s (%.1f builds/min)", elapsed.Round(100*time.Millisecond), float64(n)/elapsed.Minutes())

	// Exactly once: one build per group, one attempt each, all Successful,
	// its job worked by one process only (River's attempted_by), both
	// workers among them; each build's new layer in the bucket and in a
	// worker's cache (the builder pushed it from there; the other worker
	// may have read it too, to compare a build with the previous one of
	// the same inputs).
	inspect, inspectImages := openNode(t.TempDir(), bucket)
	byWorker := map[string]int{}
	for _, name := range names {
		b := ended[name]
		if b.State != pipeline.Successful || b.Attempt != 1 {
			t.Errorf("group %s: build %s state %s attempt %d, want Successful at the first attempt (%s)", name, b.ID, b.State, b.Attempt, b.Troubleshooting)
			continue
		}
		im, err := inspectImages.Get(ctx, b.ImageID)
		if err != nil {
			t.Fatal(err)
		}
		img, err := inspectImages.Image(im)
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		top, err := layers[len(layers)-1].Digest()
		if err != nil {
			t.Fatal(err)
		}
		cached := false
		for _, data := range []string{w1Data, w2Data} {
			if _, err := os.Stat(filepath.Join(data, "blobs", "sha256", top.Hex)); err == nil {
				cached = true
			}
		}
		if !cached {
			t.Errorf("group %s: layer %s is in neither worker's cache", name, top)
		}
		var by string
		if err := db.QueryRowContext(ctx, `SELECT array_to_string(j.attempted_by, ' ') FROM builds b JOIN river_job j ON j.id = b.job_id WHERE b.id = $1`, b.ID).Scan(&by); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(by, " ") {
			t.Errorf("group %s: build %s was worked by more than one process: %s", name, b.ID, by)
		}
		byWorker[by]++
		if _, err := inspect.Size(top); err != nil {
			t.Errorf("group %s: layer %s not in the bucket: %v", name, top, err)
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT group_id), COALESCE(MAX(attempt), 0) FROM builds`)
	if err != nil {
		t.Fatal(err)
	}
	var builds, groupsBuilt, maxAttempt int
	rows.Next()
	rows.Scan(&builds, &groupsBuilt, &maxAttempt)
	rows.Close()
	if builds != n+2 || groupsBuilt != n+2 || maxAttempt != 1 {
		t.Errorf("builds table: %d builds of %d groups, max attempt %d; want %d of %d, 1", builds, groupsBuilt, maxAttempt, n+2, n+2)
	}
	t.Logf("builds by the process that worked them: %v", byWorker)
	if len(byWorker) != 2 {
		t.Errorf("the 20 builds were worked by %v; want both workers", byWorker)
	}
	if t.Failed() {
		t.Logf("serve log:\n%s\nworker 1 log:\n%s\nworker 2 log:\n%s", serve.logText(), w1.logText(), w2.logText())
	}
}

// measureS3 logs the S3 store's throughput on the largest blob stored (the
// debian-12 base layer): uploaded by a node to an empty bucket, and
// downloaded (and checked) by a node with an empty cache.
func measureS3(t *testing.T, ctx context.Context, from *blobs.S3, uploader, downloader func(dir string) *blobs.S3) {
	t.Helper()
	all, err := from.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var big blobs.Info
	for _, b := range all {
		if b.Size > big.Size {
			big = b
		}
	}
	down := downloader(t.TempDir())
	start := time.Now()
	rc, err := down.Open(big.Digest)
	if err != nil {
		t.Fatal(err)
	}
	dsec := time.Since(start).Seconds()
	up := uploader(t.TempDir())
	start = time.Now()
	h, _, err := up.Put(ctx, rc, big.Digest)
	rc.Close()
	if err != nil || h != big.Digest {
		t.Fatalf("upload of %s: %v", big.Digest, err)
	}
	usec := time.Since(start).Seconds()
	mb := float64(big.Size) / 1e6
	t.Logf("S3 (SeaweedFS on loopback), the debian-12 base layer (%.1f MB): upload %.1f MB/s, download %.1f MB/s (both through the node's local cache, digest checked)", mb, mb/usec, mb/dsec)
}

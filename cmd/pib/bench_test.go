//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/testenv"
)

// benchService starts a real pib serve (this test binary, re-executed as
// pib) on a fresh data directory with the debian-12 base image (and the
// shared OSV data when it is there) and returns a seller client and a
// function that creates and submits a group. PIB_BENCH_SERVE_FLAGS adds
// pib serve flags (space-separated), so that bench/run.sh can measure a
// setting against the default in one session.
func benchService(b *testing.B, workers int) (*client.Client, func(name string) error) {
	data := debianDataDir(b)
	if zip := sharedOSVZip(); zip != "" {
		if _, err := runPib(data, "vulndb", "import", zip); err != nil {
			b.Fatal(err)
		}
	}
	addr := freeAddrTB(b)
	srv := startServerTB(b, data, addr, workers, strings.Fields(os.Getenv("PIB_BENCH_SERVE_FLAGS"))...)
	ctx := context.Background()
	seller := srv.seller(b, "bench")
	deb := demoDeb(b)
	script := "#!/bin/sh\nset -e\ndpkg -i hello-pib_1.0_all.deb\nhello-pib\n"
	inst, err := seller.UploadPackage(ctx, "install.sh", strings.NewReader(script), int64(len(script)))
	if err != nil {
		b.Fatal(err)
	}
	f, _ := os.Open(deb)
	defer f.Close()
	fi, _ := f.Stat()
	pkg, err := seller.UploadPackage(ctx, "hello-pib_1.0_all.deb", f, fi.Size())
	if err != nil {
		b.Fatal(err)
	}
	submit := func(name string) error {
		if _, err := seller.CreateGroup(ctx, groups.Spec{Name: name, Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: inst.ID, PackageIDs: []string{pkg.ID}}); err != nil {
			return err
		}
		_, err := seller.SubmitGroup(ctx, name)
		return err
	}
	return seller, submit
}

// waitGroup polls the group's status every 20 ms until it has ended.
func waitGroup(b *testing.B, c *client.Client, name string) *api.GroupStatus {
	for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		page, err := c.Status(context.Background(), client.StatusQuery{Group: name})
		if err != nil {
			b.Fatal(err)
		}
		switch st := page.Items[0]; st.State {
		case pipeline.Successful, pipeline.GroupIssuesFound, pipeline.Investigating:
			return st
		}
	}
	b.Fatalf("%s did not end", name)
	return nil
}

// stages collects where builds spent their time, from the timestamps the
// server keeps with each build: waiting in the queue (submitted → a worker
// started it), building (started → scan started: sandbox, storing the
// layer, the state change) and scanning (scan started → ended).
type stages struct{ queue, build, scan, total []time.Duration }

func (s *stages) add(b *testing.B, st *api.GroupStatus) {
	for _, bl := range st.Builds {
		if bl.Started == nil || bl.ScanStarted == nil || bl.Ended == nil {
			b.Fatalf("build %s has no stage times: %+v", bl.ID, bl)
		}
		s.queue = append(s.queue, bl.Started.Sub(bl.Submitted))
		s.build = append(s.build, bl.ScanStarted.Sub(*bl.Started))
		s.scan = append(s.scan, bl.Ended.Sub(*bl.ScanStarted))
		s.total = append(s.total, bl.Ended.Sub(bl.Submitted))
	}
}

// report adds the median of each stage, and its 90th percentile when the
// builds ran concurrently (a queue wait's spread is the point there).
func (s *stages) report(b *testing.B, spread bool) {
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"queue", s.queue}, {"build", s.build}, {"scan", s.scan}, {"server", s.total}} {
		b.ReportMetric(quantile(m.d, 0.5).Seconds(), m.name+"-median-s")
		if spread {
			b.ReportMetric(quantile(m.d, 0.9).Seconds(), m.name+"-p90-s")
		}
	}
}

// quantile is the nearest-rank q-quantile of d (sorted in place).
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

// BenchmarkSubmitToSuccessful: the demo group (a .deb and an installer
// script) on debian-12, from submit to Successful as the seller sees it
// (polling every 20 ms); reports the median and where the server spent it.
func BenchmarkSubmitToSuccessful(b *testing.B) {
	testenv.RequireRoot(b)
	seller, submit := benchService(b, 1)
	// Warm up: the first build unpacks the base image into the layer cache
	// and the first scan builds syft's license scanner, once per server.
	if err := submit("Warmup"); err != nil {
		b.Fatal(err)
	}
	waitGroup(b, seller, "Warmup")
	var times []time.Duration
	var st stages
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("Demo%d", i)
		start := time.Now()
		if err := submit(name); err != nil {
			b.Fatal(err)
		}
		g := waitGroup(b, seller, name)
		if g.State != pipeline.Successful {
			b.Fatalf("%s: %+v", name, g.Builds[0])
		}
		times = append(times, time.Since(start))
		st.add(b, g)
	}
	b.StopTimer()
	b.ReportMetric(quantile(times, 0.5).Seconds(), "median-s")
	st.report(b, false)
}

// Benchmark20Groups submits 20 groups at once (each created and submitted
// by its own goroutine) to a server with the default number of workers and
// waits for all: builds per minute from the first submit to the last
// Successful, and where the builds spent their time.
func Benchmark20Groups(b *testing.B) {
	testenv.RequireRoot(b)
	seller, submit := benchService(b, defaultWorkers())
	if err := submit("Warmup"); err != nil {
		b.Fatal(err)
	}
	waitGroup(b, seller, "Warmup")
	var st stages
	var perMinute []float64
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for j := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- submit(fmt.Sprintf("Many%d_%d", i, j))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		ok := 0
		for j := range 20 {
			g := waitGroup(b, seller, fmt.Sprintf("Many%d_%d", i, j))
			if g.State == pipeline.Successful {
				ok++
			}
			st.add(b, g)
		}
		if ok != 20 {
			b.Fatalf("%d of 20 groups Successful", ok)
		}
		perMinute = append(perMinute, 20/time.Since(start).Minutes())
	}
	b.StopTimer()
	slices.Sort(perMinute)
	b.ReportMetric(perMinute[len(perMinute)/2], "builds/min")
	st.report(b, true)
}

// BenchmarkPrivateBuildToSuccessful: the demo product (published as in
// TestBuyersEndToEnd) installed by a buyer onto its imported debian-12 gold
// image (pib image export --format docker-archive, then pib image import
// through the API), from the request to Successful, polling every 20 ms;
// reports the median, and the bytes each private image stores beyond its
// gold image: its new layer (the private image's layer bytes less the gold
// image's, which it shares) and all the blobs the build added (that layer,
// the image's config and manifest, the scan's SBOMs).
func BenchmarkPrivateBuildToSuccessful(b *testing.B) {
	testenv.RequireRoot(b)
	m := newMarket(b)
	ctx := context.Background()
	archive := filepath.Join(b.TempDir(), "debian-12.docker.tar")
	if _, err := runPib(m.data, "image", "export", "debian-12", "--format", "docker-archive", "-o", archive); err != nil {
		b.Fatal(err)
	}
	gold := lastLine(m.must(b, m.buyerA, "image", "import", archive))
	m.must(b, m.buyerA, "subscriptions", "add", m.product)
	buyer := client.New(m.srv.url, m.buyerA)
	goldImage, err := buyer.Image(ctx, gold)
	if err != nil {
		b.Fatal(err)
	}
	build := func(name string) *privatebuilds.PrivateBuild {
		pb, err := buyer.CreatePrivateBuild(ctx, privatebuilds.Request{Product: m.product, Version: "1.0", GoldImage: gold, Name: name})
		if err != nil {
			b.Fatal(err)
		}
		err = client.Wait(ctx, 20*time.Millisecond, func() (bool, error) {
			pb, err = buyer.PrivateBuild(ctx, pb.ID)
			return err == nil && pb.Build.State.Ended(), err
		})
		if err != nil || pb.Build.State != pipeline.Successful {
			b.Fatalf("%s: %v %+v", name, err, pb.Build)
		}
		return pb
	}
	// Warm up: the first build unpacks the gold image into the layer cache
	// and the first scan builds syft's license scanner, once per server.
	build("warmup")
	var times []time.Duration
	var layerBytes, blobBytesAdded int64
	b.ResetTimer()
	for i := range b.N {
		before := blobBytes(b, m.data)
		start := time.Now()
		pb := build(fmt.Sprintf("demo-%d", i))
		times = append(times, time.Since(start))
		blobBytesAdded += blobBytes(b, m.data) - before
		im, err := buyer.Image(ctx, pb.Build.ImageID)
		if err != nil {
			b.Fatal(err)
		}
		layerBytes += im.Size - goldImage.Size
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(times[len(times)/2].Seconds(), "median-s")
	b.ReportMetric(times[0].Seconds(), "min-s")
	b.ReportMetric(times[len(times)-1].Seconds(), "max-s")
	b.ReportMetric(float64(layerBytes)/float64(b.N), "new-layer-B")
	b.ReportMetric(float64(blobBytesAdded)/float64(b.N), "blobs-added-B")
	b.ReportMetric(float64(goldImage.Size), "gold-B")
}

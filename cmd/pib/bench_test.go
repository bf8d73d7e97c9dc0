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

// benchService starts a real pib serve on a fresh data directory with the
// debian-12 base image (and the shared OSV data when it is there) and
// returns a seller client and a function that creates and submits a group.
func benchService(b *testing.B, workers int) (*client.Client, func(name string) error) {
	data := b.TempDir()
	s, closeStore, err := testenv.OpenStore(data)
	if err != nil {
		b.Fatal(err)
	}
	testenv.ImportDebian12(b, s)
	closeStore()
	if zip := sharedOSVZip(); zip != "" {
		if _, err := runPib(data, "vulndb", "import", zip); err != nil {
			b.Fatal(err)
		}
	}
	addr := freeAddrTB(b)
	srv := startServerTB(b, data, addr, workers)
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

// BenchmarkSubmitToSuccessful: the demo group (a .deb and an installer
// script) on debian-12, from submit to Successful; reports the median.
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
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("Demo%d", i)
		start := time.Now()
		if err := submit(name); err != nil {
			b.Fatal(err)
		}
		if st := waitGroup(b, seller, name); st.State != pipeline.Successful {
			b.Fatalf("%s: %+v", name, st.Builds[0])
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	b.ReportMetric(times[len(times)/2].Seconds(), "median-s")
}

// Benchmark20Groups submits 20 groups at once and waits for all.
func Benchmark20Groups(b *testing.B) {
	testenv.RequireRoot(b)
	seller, submit := benchService(b, 2)
	if err := submit("Warmup"); err != nil {
		b.Fatal(err)
	}
	waitGroup(b, seller, "Warmup")
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
			if st := waitGroup(b, seller, fmt.Sprintf("Many%d_%d", i, j)); st.State == pipeline.Successful {
				ok++
			}
		}
		if ok != 20 {
			b.Fatalf("%d of 20 groups Successful", ok)
		}
		total := time.Since(start)
		b.ReportMetric(total.Seconds(), "total-s")
		b.ReportMetric(20/total.Minutes(), "builds/min")
	}
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

package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/pipeline"
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

package monitor_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/inventories"
	"github.com/pib-dev/pib/internal/monitor"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/vulndb"
	"github.com/pib-dev/pib/internal/vulndb/vulndbtest"
)

// benchImages is how many stored inventories the benchmark re-matches.
const benchImages = 10_000

// benchWorld is 10,000 private images with kept inventories and the full
// Debian OSV snapshot, made once per test binary.
var benchWorld struct {
	once sync.Once
	dir  string
	mon  *monitor.Monitor
	err  error
}

// refuseAnnouncements fails a run that announces: the benchmark's images
// have no scan report to compare with, so their first re-match is their
// baseline and later ones find the same.
type refuseAnnouncements struct{}

var errAnnounced = errors.New("the benchmark announced a change")

func (refuseAnnouncements) Announce(context.Context, *sql.Tx, string, string, string, func(string, time.Time) ([]byte, error)) error {
	return errAnnounced
}

func (refuseAnnouncements) Notify(context.Context, *sql.Tx, string, string, func(string, time.Time) ([]byte, error)) error {
	return errAnnounced
}

// benchInventory is image n's inventory: the debian-12 test image's real
// packages, each source at one of four versions (the base image's or one
// of three earlier ones, chosen per image and package), plus one package
// of the image's own, as images built months apart from one base differ.
func benchInventory(base *scan.Inventory, n int) *scan.Inventory {
	inv := &scan.Inventory{OS: base.OS, Packages: make([]scan.Package, 0, len(base.Packages)+1)}
	for _, p := range base.Packages {
		h := fnv.New32a()
		fmt.Fprintf(h, "%d/%s", n, p.SourceName)
		if k := h.Sum32() % 4; k > 0 {
			p.SourceVersion = fmt.Sprintf("%s~old%d", p.SourceVersion, k)
			if p.Name == p.SourceName {
				p.Version = p.SourceVersion
			}
		}
		inv.Packages = append(inv.Packages, p)
	}
	own := fmt.Sprintf("app%05d", n)
	inv.Packages = append(inv.Packages, scan.Package{Name: own, Version: "1.0-1", SourceName: own, SourceVersion: "1.0-1", Ecosystem: "Debian:12", Type: "deb"})
	return inv
}

func setupBench(b *testing.B) *monitor.Monitor {
	zip := vulndbtest.DebianZip(b)
	benchWorld.once.Do(func() { benchWorld.mon, benchWorld.err = makeBenchWorld(zip) })
	if benchWorld.err != nil {
		b.Fatal(benchWorld.err)
	}
	return benchWorld.mon
}

func makeBenchWorld(zip string) (*monitor.Monitor, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pib-monitor-bench-")
	if err != nil {
		return nil, err
	}
	benchWorld.dir = dir
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "pib.db"))
	if err != nil {
		return nil, err
	}
	bs, err := blobs.NewDir(filepath.Join(dir, "blobs"))
	if err != nil {
		return nil, err
	}
	vdb := vulndb.New(db)
	if _, err := vdb.Import(ctx, zip); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile("testdata/debian-12-inventory.json")
	if err != nil {
		return nil, err
	}
	var base scan.Inventory
	if err := json.Unmarshal(raw, &base); err != nil {
		return nil, err
	}
	buyer, _, err := accounts.NewStore(db).Create(ctx, "buyer", accounts.Buyer)
	if err != nil {
		return nil, err
	}
	ps := packages.NewStore(db, bs)
	oses := osversions.NewStore(db)
	if _, err := oses.Add(ctx, "debian-12", "linux", "img-00000000000000001"); err != nil {
		return nil, err
	}
	inst, err := ps.Upload(ctx, buyer.ID, "install.sh", strings.NewReader("#!/bin/sh\n"))
	if err != nil {
		return nil, err
	}
	g, err := groups.NewStore(db, ps, oses).Create(ctx, buyer.ID, groups.Spec{Name: "App", Platform: "linux", OSVersions: []string{"debian-12"},
		PackageIDs: []string{inst.ID}, InstallerID: inst.ID})
	if err != nil {
		return nil, err
	}
	invs := inventories.New(db, bs)
	now := time.Now().UTC()
	for n := range benchImages {
		id := fmt.Sprintf("img-%017x", 0x100000+n)
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO images (id, owner, os, distro_id, distro_version, architecture, manifest_digest, config_digest, size, created_at)
				VALUES ($1, $2, 'linux', 'debian', '12', 'amd64', 'sha256:00', 'sha256:00', 1, $3)`, id, buyer.ID, now); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO builds (id, kind, group_id, owner, submission, os_name, base_image_id, state, image_id, submitted_at, updated_at)
				VALUES ($1, 'private', $2, $3, $4, 'debian-12', 'img-00000000000000001', 'Successful', $5, $6, $6)`,
				fmt.Sprintf("b-%016x", n), g.ID, buyer.ID, -1-n, id, now)
			return err
		})
		if err != nil {
			return nil, err
		}
		if err := invs.Put(ctx, id, benchInventory(&base, n), []byte("{}")); err != nil {
			return nil, err
		}
	}
	m := monitor.New(db, monitor.Config{Inventories: invs, VulnDB: vdb, Logger: quiet()})
	m.SetAnnouncer(refuseAnnouncements{})
	// The first run writes every image's row (its baseline): the
	// benchmark measures the steady state, a run over kept rows.
	if _, err := m.Run(ctx, "", "benchmark: baseline"); err != nil {
		return nil, err
	}
	return m, nil
}

// BenchmarkRematch10k re-matches 10,000 stored inventories (variations of
// the real debian-12 package list) against the full Debian OSV snapshot:
// read every inventory, match, compare with the kept findings, write each
// image's row (S5; target: at most 30 s, memory bounded). peak-heap-MB is
// the highest heap in use sampled every 5 ms during the runs.
//
//	go test -run '^$' -bench Rematch10k -benchtime 1x -count 5 ./internal/monitor/
func BenchmarkRematch10k(b *testing.B) {
	m := setupBench(b)
	ctx := context.Background()
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		res, err := m.Run(ctx, "", "benchmark")
		if err != nil {
			b.Fatal(err)
		}
		if res.Images != benchImages || res.Changed != 0 {
			b.Fatalf("run = %+v; want %d images, none changed", res, benchImages)
		}
	}
	b.StopTimer()
	close(stop)
	<-done
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N), "s/op")
	// CPU time used (all threads): the shared machines run other work, so
	// wall time alone overstates a run's cost.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchWorld.dir != "" {
		os.RemoveAll(benchWorld.dir)
	}
	os.Exit(code)
}

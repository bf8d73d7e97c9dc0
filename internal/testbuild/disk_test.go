package testbuild_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/disk"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/testbuild"
	"github.com/pib-dev/pib/internal/testenv"
	"github.com/pib-dev/pib/internal/vmbuild"
)

// qemuImg runs qemu-img or fails the test.
func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// TestImportDiskRefuses: a qcow2 disk is imported only standalone and
// with its OS family; nothing is stored otherwise (T2: the file is the
// uploader's, and a backing file name must never make pib open a host
// file).
func TestImportDiskRefuses(t *testing.T) {
	testenv.RequireRoot(t)
	is, closeStore, err := testenv.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	ctx := context.Background()
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", plain, "64M")
	backed := filepath.Join(dir, "backed.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-F", "raw", "-u", "-b", "/etc/shadow", backed, "64M")
	dataFile := filepath.Join(dir, "data.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-o", "data_file="+filepath.Join(dir, "data.raw"), dataFile, "64M")
	for _, tc := range []struct {
		name, file, os, want string
	}{
		{"no OS family", plain, "", "--os"},
		{"an unknown OS family", plain, "plan9", "--os"},
		{"a backing file", backed, "windows", "backing file"},
		{"an external data file", dataFile, "windows", "external file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := is.Import(ctx, tc.file, images.ImportOptions{OS: tc.os})
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Code != problem.Invalid || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("import: %v; want an Invalid problem saying %q", err, tc.want)
			}
		})
	}
	if all, _ := is.List(ctx); len(all) != 0 {
		t.Errorf("a refused import stored %d image(s)", len(all))
	}
	im, err := is.Import(ctx, plain, images.ImportOptions{Alias: "win", OS: "windows"})
	if err != nil {
		t.Fatal(err)
	}
	if im.Disk != "disk/0.qcow2" || im.OS != "windows" {
		t.Errorf("imported disk image: disk %q, OS %q; want disk/0.qcow2, windows", im.Disk, im.OS)
	}
	chain, err := is.DiskChain(ctx, im)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := disk.InspectQCOW2(ctx, chain[0]); err != nil || info.VirtualSize != 64<<20 {
		t.Errorf("stored disk: %+v, %v; want the 64 MiB disk", info, err)
	}
	// A file-system image cannot take a disk layer, nor a disk image a
	// file one.
	if _, err := is.AddLayer(ctx, im, t.TempDir(), images.AddLayerOptions{}); err == nil {
		t.Error("AddLayer of a plain directory on a disk image was accepted")
	}
	// The sandbox cannot build on a disk.
	if _, _, err := testbuild.Install(ctx, is, im, filepath.Join(t.TempDir(), "build"), sandbox.Config{}, testbuild.InstallOptions{}); err == nil || !strings.Contains(err.Error(), "backend vm") {
		t.Errorf("a sandbox build on a disk image: %v; want a refusal naming backend vm", err)
	}
}

// TestDiskImageBuilds: an operator's disk image — here a Linux one,
// prepared as docs/agent.md tells for Windows: the agent installed as a
// service in a standalone qcow2 — builds in a machine twice over (a build
// on the first build's image), each build storing a qcow2 overlay whose
// header names the file below it; flattened, the chain holds both
// installs. Two real TCG boots.
func TestDiskImageBuilds(t *testing.T) {
	is, deb := machineBase(t)
	ctx := context.Background()
	work := t.TempDir()

	// The operator's preparation, on the host.
	raw, err := is.Disk(ctx, deb, 0, images.DiskRaw)
	if err != nil {
		t.Fatal(err)
	}
	prepared := filepath.Join(work, "prepared.raw")
	if out, err := exec.Command("cp", "--sparse=always", raw, prepared).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := vmbuild.InstallAgent(ctx, prepared, testenv.PibBinary(t)); err != nil {
		t.Fatal(err)
	}
	qcow := filepath.Join(work, "linux.qcow2")
	qemuImg(t, "convert", "-f", "raw", "-O", "qcow2", prepared, qcow)
	os.Remove(prepared)
	base, err := is.Import(ctx, qcow, images.ImportOptions{Alias: "linux-disk", OS: "linux"})
	if err != nil {
		t.Fatal(err)
	}

	pkgs := t.TempDir()
	first := filepath.Join(pkgs, "first.sh")
	os.WriteFile(first, []byte("#!/bin/sh\nset -e\necho first > /root/disk-first\necho wrote first\n"), 0o755)
	got := install(t, is, base, osversions.VM, first, 5*time.Minute)
	if got.exit != 0 || len(got.findings) != 0 || got.image == nil {
		t.Fatalf("first build: exit %d, findings %+v, image %v\n%s", got.exit, got.findings, got.image, got.log)
	}
	if got.image.Disk != "disk/1.qcow2" || got.image.OS != "linux" || got.image.ParentID != base.ID {
		t.Errorf("first build's image: disk %q, OS %q, parent %q", got.image.Disk, got.image.OS, got.image.ParentID)
	}
	if len(got.changes.Files) != 1 || got.changes.Files[0].Path != "disk/1.qcow2" {
		t.Errorf("first build's changes: %+v; want the overlay disk/1.qcow2", got.changes.Files)
	}
	if !strings.Contains(got.log, "wrote first") {
		t.Errorf("the installer's output is not in the log:\n%s", got.log)
	}

	second := filepath.Join(pkgs, "second.sh")
	os.WriteFile(second, []byte("#!/bin/sh\nset -e\ngrep -qx first /root/disk-first\necho second > /root/disk-second\n"), 0o755)
	got2 := install(t, is, got.image, osversions.VM, second, 5*time.Minute)
	if got2.exit != 0 || len(got2.findings) != 0 || got2.image == nil {
		t.Fatalf("second build (on the first's image): exit %d, findings %+v\n%s", got2.exit, got2.findings, got2.log)
	}
	chain, err := is.DiskChain(ctx, got2.image)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range chain[1:] {
		info, err := disk.InspectQCOW2(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%d.qcow2", i); info.BackingFile != want {
			t.Errorf("layer %d's overlay names backing %q; want %q (beside it in the image)", i+1, info.BackingFile, want)
		}
	}

	flat := filepath.Join(work, "flat.raw")
	if err := is.MakeDisk(ctx, got2.image, 0, flat); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"/root/disk-first": "first\n", "/root/disk-second": "second\n"} {
		out, err := exec.Command("debugfs", "-R", "cat "+file, fmt.Sprintf("%s?offset=%d", flat, disk.RootOffset)).Output()
		if err != nil || string(out) != want {
			t.Errorf("%s in the flattened disk: %q, %v; want %q", file, out, err, want)
		}
	}
}

// TestScanDiskImage: a disk image's scan lists nothing, runs no S3 check
// (none can look at a disk pib does not read: an empty root would "fail"
// S3.7 and "pass" the others) and says so plainly, in the report the
// pipeline stores; a build on it starts from a kept (empty) inventory as
// any other.
func TestScanDiskImage(t *testing.T) {
	e := newScanEnv(t)
	ctx := context.Background()
	qcow := filepath.Join(t.TempDir(), "win.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", qcow, "64M")
	im, err := e.images.Import(ctx, qcow, images.ImportOptions{Alias: "windows-2022", OS: "windows"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.server.PrepareBase(ctx, im.ID); err != nil {
		t.Fatal(err)
	}
	out, err := e.server.Scan(ctx, im.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Passed {
		t.Errorf("the scan of an unread disk failed: %+v", out.Violations)
	}
	for _, want := range []string{"not inventoried", "windows disk image", "no image policy check (S3) ran", `"packages":0`, `"policy":[]`, `"scan":"none"`} {
		if !strings.Contains(string(out.Report), want) {
			t.Errorf("the scan report does not say %q:\n%s", want, out.Report)
		}
	}
}

//go:build linux

package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/testenv"
)

// TestLayerDetailsCorruptConfig: pib image inspect lists the layers of an
// image whose config names fewer (or more) content digests than its
// manifest has layers, instead of panicking.
func TestLayerDetailsCorruptConfig(t *testing.T) {
	h := func(c string) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(c, 64)} }
	m := &v1.Manifest{Layers: []v1.Descriptor{{Digest: h("a"), Size: 10}, {Digest: h("b"), Size: 20}}}
	for _, tc := range []struct {
		name    string
		diffIDs []v1.Hash
		want    []layerDetail
	}{
		{"one each", []v1.Hash{h("1"), h("2")}, []layerDetail{{h("a").String(), h("1").String(), 10}, {h("b").String(), h("2").String(), 20}}},
		{"fewer", []v1.Hash{h("1")}, []layerDetail{{h("a").String(), h("1").String(), 10}, {h("b").String(), "", 20}}},
		{"none", nil, []layerDetail{{h("a").String(), "", 10}, {h("b").String(), "", 20}}},
		{"more", []v1.Hash{h("1"), h("2"), h("3")}, []layerDetail{{h("a").String(), h("1").String(), 10}, {h("b").String(), h("2").String(), 20}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &v1.ConfigFile{RootFS: v1.RootFS{Type: "layers", DiffIDs: tc.diffIDs}}
			if diff := cmp.Diff(tc.want, layerDetails(m, cfg)); diff != "" {
				t.Errorf("layers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDiskSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4G", 4 << 30, true},
		{"4GiB", 4 << 30, true},
		{"2048M", 2 << 30, true},
		{"512k", 512 << 10, true},
		{"1T", 1 << 40, true},
		{"1073741824", 1 << 30, true},
		{"", 0, false},
		{"-1G", 0, false},
		{"0", 0, false},
		{"4X", 0, false},
		{"99999999999T", 0, false},
	} {
		got, err := parseDiskSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseDiskSize(%q) = %d, %v; want %d (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestImportDiskCommand: pib image import takes a qcow2 disk with --os as
// a disk image, refuses one without it, and refuses --os for an archive;
// pib image ls --json shows the disk, and export flattens it to a disk.
func TestImportDiskCommand(t *testing.T) {
	testenv.RequireRoot(t)
	data := t.TempDir()
	qcow := filepath.Join(t.TempDir(), "win.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", qcow, "32M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	if _, err := run(t, data, "image", "import", qcow, "--alias", "win"); err == nil || !strings.Contains(err.Error(), "--os windows") {
		t.Fatalf("a disk without --os: %v; want a refusal naming --os", err)
	}
	if _, err := run(t, data, "image", "import", rootfsTar(t), "--os", "linux"); err == nil || !strings.Contains(err.Error(), "qcow2 disks only") {
		t.Fatalf("--os for an archive: %v; want a refusal", err)
	}
	if _, err := run(t, data, "image", "import", qcow, "--alias", "win", "--os", "windows"); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, data, "image", "ls", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"disk": "disk/0.qcow2"`) || !strings.Contains(out, `"os": "windows"`) {
		t.Errorf("image ls --json does not show the windows disk image:\n%s", out)
	}
	flat := filepath.Join(t.TempDir(), "flat.qcow2")
	if _, err := run(t, data, "image", "export", "win", "--format", "qcow2", "-o", flat); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "info", "--output=json", flat).Output(); err != nil || !strings.Contains(string(out), `"virtual-size": 33554432`) || strings.Contains(string(out), "backing") {
		t.Errorf("the exported disk: %s %v; want a standalone 32 MiB qcow2", out, err)
	}
}

//go:build linux

package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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

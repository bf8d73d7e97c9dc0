package images_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/testenv"
)

// upperTree writes what a deterministic installer leaves in an upper
// directory, with every time it sets (except old's) shifted by shift,
// and files created in another order when reverse is set.
func upperTree(t *testing.T, shift time.Duration, reverse bool, stamp string) string {
	t.Helper()
	dir := t.TempDir()
	files := []struct{ path, body string }{
		{"opt/app/bin/run", "#!/bin/sh\n"},
		{"opt/app/etc/app.conf", "port=80\n"},
		{"opt/app/stamp", stamp},
		{"opt/app/old", "from a package"},
	}
	if reverse {
		for i, j := 0, len(files)-1; i < j; i, j = i+1, j-1 {
			files[i], files[j] = files[j], files[i]
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Times newer than any clamp below, different in each tree.
	later := time.Now().Add(time.Hour + shift)
	for _, p := range []string{"opt/app/bin/run", "opt/app/etc/app.conf", "opt/app/stamp", "opt/app/bin", "opt/app/etc", "opt/app", "opt"} {
		if err := os.Chtimes(filepath.Join(dir, p), later, later); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Unix(1000000000, 0)
	if err := os.Chtimes(filepath.Join(dir, "opt/app/old"), old, old); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestAddLayerReproducible: two builds that leave the same files at other
// times give the same layer, blob and config (and so image) digests, by
// default and with a SOURCE_DATE_EPOCH; a file that differs in content is
// what DiffTopLayers names.
func TestAddLayerReproducible(t *testing.T) {
	testenv.RequireRoot(t)
	s, _ := openStore(t)
	ctx := context.Background()
	base, err := s.Import(ctx, writeFile(t, filepath.Join(t.TempDir(), "r.tar"), tarBytes(t, smallRootfs)), images.ImportOptions{Alias: "base"})
	if err != nil {
		t.Fatal(err)
	}
	baseCreated := configOf(t, s, base).Created.Time.Truncate(time.Second)
	fixed := time.Unix(1700000000, 0)

	first := upperTree(t, 0, false, "same")
	second := upperTree(t, 90*time.Minute+7*time.Millisecond, true, "same")
	changed := upperTree(t, 3*time.Hour, false, "other")

	for _, c := range []struct {
		name  string
		epoch *time.Time
		want  time.Time
	}{
		{"default: the base image's creation time", nil, baseCreated},
		{"a SOURCE_DATE_EPOCH", &fixed, fixed},
	} {
		t.Run(c.name, func(t *testing.T) {
			add := func(upper string) *images.Image {
				t.Helper()
				im, err := s.AddLayer(ctx, base, upper, images.AddLayerOptions{CreatedBy: "pib build setup.sh", SourceDateEpoch: c.epoch})
				if err != nil {
					t.Fatal(err)
				}
				return im
			}
			a, b, d := add(first), add(second), add(changed)
			if a.ID == b.ID {
				t.Fatalf("two AddLayer calls gave one image ID %s", a.ID)
			}
			top := func(im *images.Image) v1.Hash {
				t.Helper()
				h, err := s.TopLayer(im)
				if err != nil {
					t.Fatal(err)
				}
				return h
			}
			if top(a) != top(b) {
				t.Errorf("DiffIDs %s and %s of the same files at other times differ", top(a), top(b))
			}
			if a.Manifest != b.Manifest || a.Config != b.Config {
				t.Errorf("manifest/config digests %s/%s and %s/%s differ", a.Manifest, a.Config, b.Manifest, b.Config)
			}
			cfg := configOf(t, s, a)
			if !cfg.Created.Time.Equal(c.want) || !cfg.History[len(cfg.History)-1].Created.Time.Equal(c.want) {
				t.Errorf("config created %v, history %v; want %v", cfg.Created, cfg.History[len(cfg.History)-1].Created, c.want)
			}
			if top(d) == top(a) {
				t.Fatalf("a layer with other content has the same DiffID")
			}
			diffs, err := s.DiffTopLayers(ctx, a, d)
			if err != nil {
				t.Fatal(err)
			}
			want := []layer.Difference{{Path: "/opt/app/stamp", What: []string{layer.ChangeSize, layer.ChangeContent}}}
			if diff := cmp.Diff(want, diffs); diff != "" {
				t.Errorf("DiffTopLayers (-want +got):\n%s", diff)
			}
			if diffs, err := s.DiffTopLayers(ctx, a, b); err != nil || len(diffs) != 0 {
				t.Errorf("DiffTopLayers of equal layers: %v, %v; want none", diffs, err)
			}
			// The unpacked layer keeps an old time and clamps the rest.
			dirs, err := s.LayerDirs(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			top2 := dirs[len(dirs)-1]
			for p, want := range map[string]time.Time{"opt/app/old": time.Unix(1000000000, 0), "opt/app/stamp": c.want, "opt": c.want} {
				fi, err := os.Lstat(filepath.Join(top2, p))
				if err != nil {
					t.Fatal(err)
				}
				if !fi.ModTime().Equal(want) {
					t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), want)
				}
			}
		})
	}
}

package testbuild_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/testbuild"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestReproducibleLayers runs real sandbox builds on the debian-12 image,
// two of each installer, as the pipeline runs a group submitted twice:
// the second build is handed the first as its previous build of the same
// inputs. A deterministic installer gives the same layer both times (its
// files are written at other times: the clamp removes that); one that
// writes the time into a file gives two layers, and the report of the
// second names exactly that file.
func TestReproducibleLayers(t *testing.T) {
	testenv.RequireRoot(t)
	data := t.TempDir()
	is, closeStore, err := testenv.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	base := testenv.ImportDebian12(t, is)
	b := testbuild.NewBuilder(is, data, sandbox.Limits{}, sandbox.IDs{})
	fixed := time.Unix(1700000000, 0)

	for _, tc := range []struct {
		name, installer string
		epoch           *time.Time
		wantSame        bool
		wantDiffs       []layer.Difference
		wantNote        string
	}{
		{
			name: "deterministic",
			// A file, a directory, a symlink, a hard link, a deletion and
			// a change to an existing directory of the base (/etc).
			installer: "#!/bin/sh\nset -e\nmkdir -p /opt/app/bin /opt/app/empty\nprintf 'port=80\\n' > /opt/app/app.conf\n" +
				"printf '#!/bin/sh\\n' > /opt/app/bin/run\nchmod 755 /opt/app/bin/run\nln -s bin/run /opt/app/current\n" +
				"ln /opt/app/app.conf /opt/app/app.conf.bak\necho app > /etc/app.conf\nrm -f /etc/motd\n",
			wantSame: true,
			wantNote: "the layer is the same as that of build b-deterministic-1 of the same inputs",
		},
		{
			name:      "deterministic with a SOURCE_DATE_EPOCH",
			installer: "#!/bin/sh\nset -e\nmkdir -p /opt/app\necho hello > /opt/app/hello.txt\n",
			epoch:     &fixed,
			wantSame:  true,
		},
		{
			name:      "writes the time",
			installer: "#!/bin/sh\nset -e\nmkdir -p /opt/app\necho hello > /opt/app/hello.txt\ndate +%s%N > /opt/app/build-stamp\n",
			wantDiffs: []layer.Difference{{Path: "/opt/app/build-stamp", What: []string{layer.ChangeContent}}},
			wantNote:  "the layer differs from build b-writesthetime-1 of the same inputs only by content the installer itself made different: /opt/app/build-stamp",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkgs := t.TempDir()
			installer := filepath.Join(pkgs, "setup.sh")
			if err := os.WriteFile(installer, []byte(tc.installer), 0o755); err != nil {
				t.Fatal(err)
			}
			id := "b-" + strings.NewReplacer(" ", "", "_", "").Replace(tc.name)
			if tc.epoch != nil {
				id = "b-epoch"
			}
			var reps []*testbuild.BuildReport
			var prev *pipeline.PreviousBuild
			for i := 1; i <= 2; i++ {
				req := pipeline.BuildRequest{BuildID: id + "-" + string(rune('0'+i)), Owner: "acc-1", OSName: "debian-12",
					Platform: "linux", BaseImageID: base.ID, PackageDir: pkgs, Installer: installer,
					SourceDateEpoch: tc.epoch, InputsDigest: "sha256:inputs", Previous: prev}
				out, err := b.Build(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				if out.ImageID == "" {
					t.Fatalf("build %d made no image: %+v\n%s", i, out.Findings, out.Log)
				}
				var rep testbuild.BuildReport
				if err := json.Unmarshal(out.Report, &rep); err != nil {
					t.Fatal(err)
				}
				if rep.Reproducible == nil {
					t.Fatalf("build %d: no reproducibility in the report: %s", i, out.Report)
				}
				reps = append(reps, &rep)
				prev = &pipeline.PreviousBuild{BuildID: req.BuildID, ImageID: out.ImageID}
			}
			first, second := reps[0].Reproducible, reps[1].Reproducible
			if first.PreviousBuild != "" || first.Layer == "" || !strings.HasPrefix(first.Note, "first build") {
				t.Errorf("first build's reproducibility %+v, want a layer and no previous build", first)
			}
			wantEpoch := base.Created.Unix()
			if tc.epoch != nil {
				wantEpoch = tc.epoch.Unix()
			}
			if first.SourceDateEpoch > wantEpoch || (tc.epoch != nil && first.SourceDateEpoch != wantEpoch) {
				t.Errorf("source date epoch %d, want %d (the base's creation time or the setting)", first.SourceDateEpoch, wantEpoch)
			}
			if second.PreviousBuild != id+"-1" || second.PreviousLayer != first.Layer || second.InputsDigest != "sha256:inputs" {
				t.Errorf("second build's reproducibility %+v: want previous build %s-1 with layer %s", second, id, first.Layer)
			}
			if (first.Layer == second.Layer) != tc.wantSame || second.SameLayer != tc.wantSame {
				t.Errorf("layers %s and %s (same_layer %v); want the same: %v; differences %+v", first.Layer, second.Layer, second.SameLayer, tc.wantSame, second.Differences)
			}
			if diff := cmp.Diff(tc.wantDiffs, second.Differences); diff != "" {
				t.Errorf("differences (-want +got):\n%s", diff)
			}
			if tc.wantNote != "" && second.Note != tc.wantNote {
				t.Errorf("note %q, want %q", second.Note, tc.wantNote)
			}
		})
	}

	// The previous build's image was removed since: nothing to compare,
	// and the build is fine.
	pkgs := t.TempDir()
	installer := filepath.Join(pkgs, "setup.sh")
	if err := os.WriteFile(installer, []byte("#!/bin/sh\nmkdir -p /opt/app\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := b.Build(context.Background(), pipeline.BuildRequest{BuildID: "b-after-removal", Owner: "acc-1", OSName: "debian-12",
		Platform: "linux", BaseImageID: base.ID, PackageDir: pkgs, Installer: installer, InputsDigest: "sha256:inputs",
		Previous: &pipeline.PreviousBuild{BuildID: "b-removed", ImageID: "img-00000000000000fff"}})
	if err != nil {
		t.Fatal(err)
	}
	var rep testbuild.BuildReport
	if err := json.Unmarshal(out.Report, &rep); err != nil || out.ImageID == "" || rep.Reproducible == nil {
		t.Fatalf("outcome %+v, report %s (%v): want an image and a reproducible part", out, out.Report, err)
	}
	if r := rep.Reproducible; r.PreviousBuild != "b-removed" || r.SameLayer || r.PreviousLayer != "" || !strings.Contains(r.Note, "its image has been removed") {
		t.Errorf("reproducibility %+v, want a note that build b-removed's image is gone", r)
	}
}

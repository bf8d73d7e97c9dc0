package pipeline_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

func TestInputsDigest(t *testing.T) {
	inst := &packages.Package{ID: "pkg-1", Name: "install.sh", Digest: "sha256:aaaa"}
	data := &packages.Package{ID: "pkg-2", Name: "data.txt", Digest: "sha256:bbbb"}
	group := func(installer string, pkgs ...*packages.Package) *groups.Group {
		return &groups.Group{ID: "pg-1", Name: "A", Platform: "linux", InstallerID: installer, Packages: pkgs}
	}
	epoch := time.Unix(1700000000, 0)
	epoch2 := time.Unix(1700000001, 0)
	ref := pipeline.InputsDigest("img-1", "linux", group("pkg-1", inst, data), nil)
	for _, c := range []struct {
		name string
		got  string
		same bool
	}{
		{"packages in another order", pipeline.InputsDigest("img-1", "linux", group("pkg-1", data, inst), nil), true},
		{"another group with the same packages", pipeline.InputsDigest("img-1", "linux", &groups.Group{ID: "pg-2", Name: "B", InstallerID: "pkg-1", Packages: []*packages.Package{inst, data}}, nil), true},
		{"another base image", pipeline.InputsDigest("img-2", "linux", group("pkg-1", inst, data), nil), false},
		{"another platform", pipeline.InputsDigest("img-1", "windows", group("pkg-1", inst, data), nil), false},
		{"another installer of the same packages", pipeline.InputsDigest("img-1", "linux", group("pkg-2", inst, data), nil), false},
		{"a package with other content", pipeline.InputsDigest("img-1", "linux", group("pkg-1", inst, &packages.Package{ID: "pkg-2", Name: "data.txt", Digest: "sha256:cccc"}), nil), false},
		{"a package renamed", pipeline.InputsDigest("img-1", "linux", group("pkg-1", inst, &packages.Package{ID: "pkg-2", Name: "data.bin", Digest: "sha256:bbbb"}), nil), false},
		{"a package fewer", pipeline.InputsDigest("img-1", "linux", group("pkg-1", inst), nil), false},
		{"a SOURCE_DATE_EPOCH", pipeline.InputsDigest("img-1", "linux", group("pkg-1", inst, data), &epoch), false},
	} {
		if (c.got == ref) != c.same {
			t.Errorf("%s: digest %s, reference %s; want same=%v", c.name, c.got, ref, c.same)
		}
	}
	if pipeline.InputsDigest("img-1", "linux", group("pkg-1", inst), &epoch) == pipeline.InputsDigest("img-1", "linux", group("pkg-1", inst), &epoch2) {
		t.Error("two SOURCE_DATE_EPOCH values give one digest")
	}
}

// TestPreviousBuild: a build is handed the owner's latest earlier build of
// the same inputs that made an image — never another account's, never
// one of other inputs.
func TestPreviousBuild(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seed(t, db, t.TempDir())
		var mu sync.Mutex
		reqs := map[string]pipeline.BuildRequest{}
		builder := builderFunc(func(ctx context.Context, r pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
			mu.Lock()
			reqs[r.BuildID] = r
			mu.Unlock()
			return &pipeline.BuildOutcome{ImageID: "img-of-" + r.BuildID}, nil
		})
		p := start(t, db, testConfig(t, e, builder, okScanner))
		req := func(b *pipeline.Build) pipeline.BuildRequest {
			mu.Lock()
			defer mu.Unlock()
			return reqs[b.ID]
		}
		submit := func(owner string, g *groups.Group) map[string]*pipeline.Build {
			t.Helper()
			if _, err := p.Submit(ctx, owner, g.ID); err != nil {
				t.Fatal(err)
			}
			byOS := map[string]*pipeline.Build{}
			for _, b := range waitEnded(t, p, owner, g.ID, 20*time.Second) {
				byOS[b.OSName] = b
			}
			return byOS
		}
		upload := func(owner, name, content string) string {
			t.Helper()
			pkg, err := e.packages.Upload(ctx, owner, name, strings.NewReader(content))
			if err != nil {
				t.Fatal(err)
			}
			return pkg.ID
		}
		newGroup := func(owner, name, installer string) *groups.Group {
			t.Helper()
			g, err := e.groups.Create(ctx, owner, groups.Spec{Name: name, Platform: "linux", OSVersions: []string{"debian-12", "ubuntu-24"},
				PackageIDs: []string{upload(owner, "data.txt", "payload")}, InstallerID: upload(owner, "install.sh", installer)})
			if err != nil {
				t.Fatal(err)
			}
			return g
		}

		first := submit(e.seller, e.group)
		second := submit(e.seller, e.group)
		for _, os := range []string{"debian-12", "ubuntu-24"} {
			if r := req(first[os]); r.Previous != nil || r.InputsDigest == "" {
				t.Errorf("first build on %s: previous %+v, inputs %q; want none and a digest", os, r.Previous, r.InputsDigest)
			}
			r := req(second[os])
			want := &pipeline.PreviousBuild{BuildID: first[os].ID, ImageID: first[os].ImageID}
			if r.Previous == nil || *r.Previous != *want || r.InputsDigest != req(first[os]).InputsDigest {
				t.Errorf("second build on %s: previous %+v, want %+v with the same inputs", os, r.Previous, want)
			}
		}
		if req(first["debian-12"]).InputsDigest == req(first["ubuntu-24"]).InputsDigest {
			t.Error("builds on two base images have the same inputs digest")
		}
		third := submit(e.seller, e.group)
		if r := req(third["debian-12"]); r.Previous == nil || r.Previous.BuildID != second["debian-12"].ID {
			t.Errorf("third build: previous %+v, want the latest, %s", r.Previous, second["debian-12"].ID)
		}

		// The same packages in another group of the seller: the same inputs.
		same := submit(e.seller, newGroup(e.seller, "Same1", "#!/bin/sh\necho hello\n"))
		if r := req(same["debian-12"]); r.Previous == nil || r.Previous.BuildID != third["debian-12"].ID {
			t.Errorf("same packages in another group: previous %+v, want %s", r.Previous, third["debian-12"].ID)
		}
		// Another installer: other inputs.
		changed := submit(e.seller, newGroup(e.seller, "Changed1", "#!/bin/sh\necho changed\n"))
		if r := req(changed["debian-12"]); r.Previous != nil {
			t.Errorf("another installer: previous %+v, want none", r.Previous)
		}
		// Another account with the very same files: never compared.
		foreign := submit(e.other, newGroup(e.other, "Same1", "#!/bin/sh\necho hello\n"))
		if r := req(foreign["debian-12"]); r.Previous != nil || r.InputsDigest != req(first["debian-12"]).InputsDigest {
			t.Errorf("another account's build: previous %+v (inputs %s), want none with the same inputs", r.Previous, r.InputsDigest)
		}
	})
}

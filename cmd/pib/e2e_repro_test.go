//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/testbuild"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestServeReproducibleRebuild submits one group twice to a real pib
// serve: the second build is compared with the first through the whole
// chain (inputs digest, previous build, sandbox build, report, CLI) and
// its deterministic installer gives the same layer.
func TestServeReproducibleRebuild(t *testing.T) {
	testenv.RequireRoot(t)
	data := debianDataDir(t)

	srv := startServer(t, data, freeAddr(t))
	defer srv.stop(syscall.SIGTERM)
	ctx := context.Background()
	seller := srv.seller(t, "acme")
	installer := "#!/bin/sh\nset -e\nmkdir -p /opt/app\necho hello > /opt/app/hello.txt\n"
	pkg, err := seller.UploadPackage(ctx, "setup.sh", strings.NewReader(installer), int64(len(installer)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seller.CreateGroup(ctx, groups.Spec{Name: "Repro1", Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: pkg.ID}); err != nil {
		t.Fatal(err)
	}
	build := func() string {
		t.Helper()
		builds, err := seller.SubmitGroup(ctx, "Repro1")
		if err != nil {
			t.Fatal(err)
		}
		var st *api.GroupStatus
		waitFor(t, 180*time.Second, "the build to end", func() bool {
			page, err := seller.Status(ctx, client.StatusQuery{Group: "Repro1"})
			if err != nil {
				t.Fatal(err)
			}
			st = page.Items[0]
			return len(st.Builds) == 1 && st.Builds[0].ID == builds[0].ID && st.Builds[0].State.Ended()
		})
		if st.Builds[0].State != pipeline.Successful {
			out, _ := os.ReadFile(srv.log.Name())
			t.Fatalf("build %+v, want Successful\nserve log:\n%s", st.Builds[0], out)
		}
		return builds[0].ID
	}
	first, second := build(), build()

	rep, err := seller.BuildReport(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	var br testbuild.BuildReport
	if err := json.Unmarshal(rep.Build, &br); err != nil || br.Reproducible == nil {
		t.Fatalf("build report %s: %v; want a reproducible part", rep.Build, err)
	}
	r := br.Reproducible
	if !r.SameLayer || r.PreviousBuild != first || r.Layer != r.PreviousLayer || !strings.HasPrefix(r.InputsDigest, "sha256:") {
		t.Errorf("second build's reproducibility %+v: want the same layer as build %s", r, first)
	}
	t.Setenv("PIB_SERVER", srv.url)
	t.Setenv("PIB_TOKEN", seller.Token)
	out, err := run(t, data, "builds", "report", second)
	if want := fmt.Sprintf("the layer is the same as that of build %s of the same inputs", first); err != nil || !strings.Contains(out, want) {
		t.Errorf("pib builds report %s: %v; lacks %q:\n%s", second, err, want, out)
	}
}

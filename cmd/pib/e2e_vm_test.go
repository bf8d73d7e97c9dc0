//go:build linux

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/machine"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/testbuild"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestDemoGroupOnBothBackends runs the demo group (scripts/demo.sh: the
// hello-pib .deb and its installer) through a real `pib serve` on the
// bootable debian-12, once on an OS version with backend sandbox and once
// on one with backend vm, and wants both Successful (built, scanned, S3
// policy passing). It logs submit → Successful for each: the figures of
// issue 18. The vm build is a real TCG boot.
func TestDemoGroupOnBothBackends(t *testing.T) {
	testenv.RequireRoot(t)
	if err := machine.CheckQEMU(machine.BIOS); err != nil {
		t.Fatal(err)
	}
	// The guest's agent: a pib built from this tree (this test binary
	// runs pib only with PIB_TEST_RUN_PIB set, which the guest has not).
	t.Setenv("PIB_VM_AGENT", testenv.PibBinary(t))

	data := t.TempDir()
	s, closeStore, err := testenv.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	testenv.ImportDebian12Machine(t, s)
	closeStore()
	srv := startServer(t, data, freeAddr(t))
	ctx := context.Background()
	token, _ := os.ReadFile(filepath.Join(data, "operator.token"))
	op := client.New(srv.url, strings.TrimSpace(string(token)))
	for name, backend := range map[string]string{"debian-12": osversions.Sandbox, "debian-12-vm": osversions.VM} {
		b := backend
		if v, err := op.AddOSVersionWith(ctx, api.AddOSVersionRequest{Name: name, Image: "debian-12", Backend: &b}); err != nil || v.Backend != backend {
			t.Fatalf("register %s with backend %s: %+v, %v", name, backend, v, err)
		}
	}
	acc, err := op.CreateAccount(ctx, "demo-seller", "seller")
	if err != nil {
		t.Fatal(err)
	}
	seller := client.New(srv.url, acc.Token)
	deb := demoDeb(t)
	debData, _ := os.ReadFile(deb)
	installer := "#!/bin/sh\n# Installs hello-pib unattended, offline, without reboot (rules I1–I8).\nset -e\ndpkg -i hello-pib_1.0_all.deb\nhello-pib\n"
	inst, err := seller.UploadPackage(ctx, "install.sh", strings.NewReader(installer), int64(len(installer)))
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := seller.UploadPackage(ctx, "hello-pib_1.0_all.deb", strings.NewReader(string(debData)), int64(len(debData)))
	if err != nil {
		t.Fatal(err)
	}
	took := map[string]time.Duration{}
	changed := map[string][]string{}
	for _, osName := range []string{"debian-12", "debian-12-vm"} {
		name := "HelloPib1_0Linux" + strings.ReplaceAll(osName, "-", "")
		if _, err := seller.CreateGroup(ctx, groups.Spec{Name: name, Platform: "linux", OSVersions: []string{osName}, InstallerID: inst.ID, PackageIDs: []string{inst.ID, pkg.ID}}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := seller.SubmitGroup(ctx, name); err != nil {
			t.Fatal(err)
		}
		var st *api.GroupStatus
		waitFor(t, 20*time.Minute, name+" to end", func() bool {
			page, err := seller.Status(ctx, client.StatusQuery{Group: name})
			if err != nil {
				t.Fatal(err)
			}
			st = page.Items[0]
			return st.State == pipeline.Successful || st.State == pipeline.Investigating || st.State == pipeline.GroupIssuesFound
		})
		took[osName] = time.Since(start)
		if st.State != pipeline.Successful {
			out, _ := os.ReadFile(srv.log.Name())
			t.Fatalf("%s on %s ended %s: %+v\nserve log (tail):\n%s", name, osName, st.State, st.Builds[0], lastN(out, 4000))
		}
		rep, err := seller.BuildReport(ctx, st.Builds[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		var br testbuild.BuildReport
		if err := json.Unmarshal(rep.Build, &br); err != nil {
			t.Fatal(err)
		}
		changed[osName] = rep.ChangedFiles
		if !strings.Contains(strings.Join(rep.ChangedFiles, "\n"), "/usr/bin/hello-pib") {
			t.Errorf("%s: changed files lack /usr/bin/hello-pib: %v", osName, rep.ChangedFiles)
		}
		if osName == "debian-12-vm" {
			if br.Backend != osversions.VM || br.MachineBootSeconds <= 0 {
				t.Errorf("the vm build's report does not say it ran in a machine: backend %q, boot %v s", br.Backend, br.MachineBootSeconds)
			}
			t.Logf("vm build: machine boot %.1f s", br.MachineBootSeconds)
		}
		t.Logf("%s (backend %s): submit → Successful %s, %d changed files", name, map[bool]string{true: "vm", false: "sandbox"}[osName == "debian-12-vm"], took[osName].Round(100*time.Millisecond), len(rep.ChangedFiles))
	}
	// The backends' lists differ only by what BootNoise leaves out of a
	// vm build (dpkg's log under /var/log): logged for the report.
	for _, pair := range [][2]string{{"debian-12", "debian-12-vm"}, {"debian-12-vm", "debian-12"}} {
		for _, f := range changed[pair[0]] {
			path := strings.Fields(f)
			if len(path) > 1 && !strings.Contains(strings.Join(changed[pair[1]], "\n"), " "+path[1]+" ") {
				t.Logf("only on %s: %s", pair[0], f)
			}
		}
	}
	t.Logf("figures: submit → Successful, sandbox %s, vm %s", took["debian-12"].Round(100*time.Millisecond), took["debian-12-vm"].Round(100*time.Millisecond))
}

func lastN(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

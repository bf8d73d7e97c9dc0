//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/testbuild"
)

// buildReport is the --json output of pib build, one object.
type buildReport struct {
	Status      string            `json:"status"` // successful, issues_found, error
	BuildID     string            `json:"build_id"`
	ImageID     string            `json:"image_id,omitempty"`
	BaseImageID string            `json:"base_image_id,omitempty"`
	Installer   string            `json:"installer,omitempty"`
	ExitCode    *int              `json:"exit_code"`
	Signal      string            `json:"signal,omitempty"`
	DurationMS  int64             `json:"duration_ms"`
	Findings    []sandbox.Finding `json:"findings"`
	Changes     *sandbox.Changes  `json:"changed_files,omitempty"`
	Log         string            `json:"log,omitempty"`
	KeptUpper   string            `json:"kept_upper_dir,omitempty"`
	Error       string            `json:"error,omitempty"`
}

// buildExit carries pib build's exit status: 1 issues found, 2 platform
// error. The message has already been printed.
type buildExit struct {
	code int
	msg  string
}

func (e *buildExit) Error() string { return e.msg }
func (e *buildExit) ExitCode() int { return e.code }

func newBuildCommand(g *globals) *cobra.Command {
	var (
		base, installer string
		packages        []string
		timeout         time.Duration
		keep, asJSON    bool
		limits          sandbox.Limits
		ids             sandbox.IDs
		memoryMiB       int64
		diskMiB         int64
		epoch           epochFlag
	)
	cmd := &cobra.Command{
		Use:   "build --base ID|ALIAS --installer FILE [--package FILE]...",
		Short: "Test-build a package group on a base image: install it in a sandbox and check rules I1–I8",
		Long: `Install the installer (and the group's other packages) on a base image inside a
hermetic sandbox — no network, no terminal, limits on memory, processes, CPU and disk —
and check the installer rules: unattended (I1), complete (I2), synchronous (I3), exit
status (I4), no reboot (I5), no network change (I6), time limit (I7). The build log and
the list of changed files are kept under <data>/builds/<build-id>/ (I8). A successful
build stores a new image (base + one layer) and prints its ID.

Exit status: 0 successful, 1 issues found, 2 platform error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			limits.MemoryBytes = memoryMiB << 20
			limits.DiskBytes = diskMiB << 20
			// SIGTERM/SIGINT cancel the build: the sandbox is killed and
			// torn down before pib exits.
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			r := runBuild(ctx, g, buildRequest{base: base, installer: installer, packages: packages,
				timeout: timeout, keep: keep, limits: limits, ids: ids, epoch: epoch}, cmd.ErrOrStderr())
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				enc.Encode(r)
			} else {
				printBuildReport(out, r)
			}
			switch r.Status {
			case "successful":
				return nil
			case "issues_found":
				return &buildExit{1, fmt.Sprintf("build %s: issues found; see the build log %s", r.BuildID, r.Log)}
			}
			return &buildExit{2, r.Error}
		},
	}
	f := cmd.Flags()
	f.StringVar(&base, "base", "", "base image ID or alias (required)")
	f.StringVar(&installer, "installer", "", "installer file: .sh, .run, .exe, .deb or .rpm (required)")
	f.StringArrayVar(&packages, "package", nil, "another file of the package group (repeatable)")
	f.DurationVar(&timeout, "timeout", sandbox.DefaultTimeout, "time limit of the build (I7)")
	f.BoolVar(&keep, "keep-on-failure", false, "keep the upper directory of a failed build and print its path")
	f.BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	f.Int64Var(&memoryMiB, "memory", sandbox.DefaultMemoryBytes>>20, "memory limit in MiB")
	f.Int64Var(&diskMiB, "disk", sandbox.DefaultDiskBytes>>20, "limit in MiB on what the install may write")
	f.IntVar(&limits.Pids, "pids", sandbox.DefaultPids, "process limit")
	f.Float64Var(&limits.CPUs, "cpus", sandbox.DefaultCPUs, "CPU limit, in CPUs")
	addEpochFlag(f, &epoch)
	f.Uint32Var(&ids.Base, "id-base", sandbox.DefaultIDBase, "first host user/group ID of the builds' user namespaces (T1)")
	f.IntVar(&ids.Slots, "id-slots", sandbox.DefaultIDSlots, "builds on this machine at once, each with its own range of 65,536 host IDs")
	return cmd
}

type buildRequest struct {
	base, installer string
	packages        []string
	timeout         time.Duration
	keep            bool
	limits          sandbox.Limits
	ids             sandbox.IDs
	// epoch clamps the new layer's file times (--source-date-epoch).
	epoch epochFlag
}

// runBuild never fails: errors become a report with status "error".
func runBuild(ctx context.Context, g *globals, req buildRequest, stderr io.Writer) (r *buildReport) {
	start := time.Now()
	var idb [6]byte
	rand.Read(idb[:])
	r = &buildReport{BuildID: "b-" + hex.EncodeToString(idb[:]), Findings: []sandbox.Finding{}}
	defer func() {
		r.DurationMS = time.Since(start).Milliseconds()
		if r.Error != "" {
			r.Status = "error"
		}
	}()
	fail := func(format string, args ...any) *buildReport {
		r.Error = fmt.Sprintf(format, args...)
		return r
	}
	if req.base == "" || req.installer == "" {
		return fail("--base and --installer are required")
	}
	r.Installer = filepath.Base(req.installer)
	epoch, err := req.epoch.value()
	if err != nil {
		return fail("%v", err)
	}
	for _, p := range append([]string{req.installer}, req.packages...) {
		fi, err := os.Stat(p)
		if err != nil {
			return fail("package %s: %v", p, err)
		}
		if !fi.Mode().IsRegular() {
			return fail("package %s: not a regular file", p)
		}
	}
	if !groups.IsInstaller("linux", r.Installer) {
		types := groups.InstallerTypes["linux"]
		return fail("installer %s: a Linux installer must be a %s or %s file (P2)", r.Installer, strings.Join(types[:len(types)-1], ", "), types[len(types)-1])
	}

	s, closeStore, err := g.openImages(ctx)
	if err != nil {
		return fail("open the data directory: %v", err)
	}
	defer closeStore()
	baseImg, err := s.Get(ctx, req.base)
	if err != nil {
		return fail("base image %q: %v", req.base, err)
	}
	r.BaseImageID = baseImg.ID
	if baseImg.OS != "" && baseImg.OS != "linux" {
		return fail("base image %s is %s; pib build runs Linux installers only (P3)", baseImg.ID, baseImg.OS)
	}
	// Builds of a pib that was SIGKILLed left a mount and a cgroup behind.
	if stale, _ := filepath.Glob(testbuild.Dir(g.dataDir, "b-*")); len(stale) > 0 {
		if err := sandbox.Sweep(stale...); err != nil {
			fmt.Fprintf(stderr, "pib: cleaning up after earlier builds: %v\n", err)
		}
	}
	absBuild := testbuild.Dir(g.dataDir, r.BuildID)
	r.Log = filepath.Join(absBuild, "build.log")
	res, im, err := testbuild.Install(ctx, s, baseImg, absBuild, sandbox.Config{
		Installer:     req.installer,
		Packages:      req.packages,
		Timeout:       req.timeout,
		Limits:        req.limits,
		IDs:           req.ids,
		KeepOnFailure: req.keep,
	}, testbuild.InstallOptions{CreatedBy: "pib build --installer " + r.Installer, SourceDateEpoch: epoch})
	if res == nil {
		if errors.Is(err, context.Canceled) {
			return fail("build cancelled (signal); the sandbox was torn down")
		}
		return fail("sandbox: %v", err)
	}
	defer res.Close()
	code := res.ExitCode
	r.ExitCode, r.Signal = &code, res.Signal
	r.Findings = res.Findings
	r.Changes = &res.Changes
	r.KeptUpper = res.KeptDir
	if cj, err := json.MarshalIndent(res.Changes, "", "  "); err == nil {
		os.WriteFile(filepath.Join(absBuild, "changes.json"), cj, 0o600)
	}
	if err != nil {
		return fail("%v", err)
	}
	if !res.Passed() {
		r.Status = "issues_found"
		return r
	}
	r.ImageID = im.ID
	r.Status = "successful"
	return r
}

func printBuildReport(w io.Writer, r *buildReport) {
	fmt.Fprintf(w, "build %s: %s\n", r.BuildID, strings.ReplaceAll(r.Status, "_", " "))
	if r.Error != "" {
		fmt.Fprintf(w, "error: %s\n", r.Error)
	}
	if r.BaseImageID != "" {
		fmt.Fprintf(w, "base image: %s\n", r.BaseImageID)
	}
	if r.ImageID != "" {
		fmt.Fprintf(w, "new image:  %s\n", r.ImageID)
	}
	if r.ExitCode != nil {
		status := fmt.Sprint(*r.ExitCode)
		if *r.ExitCode < 0 {
			status = "none (did not exit on its own)"
		}
		if r.Signal != "" {
			status += ", killed by " + r.Signal
		}
		fmt.Fprintf(w, "installer:  %s, exit status %s, %s\n", r.Installer, status, (time.Duration(r.DurationMS) * time.Millisecond).String())
	}
	if len(r.Findings) > 0 {
		fmt.Fprintf(w, "findings (%d):\n", len(r.Findings))
		for _, f := range r.Findings {
			fmt.Fprintf(w, "  [%s] %s\n", f.Rule, f.Message)
			if f.Detail != "" {
				for _, l := range strings.Split(strings.TrimRight(f.Detail, "\n"), "\n") {
					fmt.Fprintf(w, "        %s\n", l)
				}
			}
		}
	}
	if r.Changes != nil {
		c := r.Changes
		fmt.Fprintf(w, "changed files: %d added, %d modified, %d deleted\n", c.Added, c.Modified, c.Deleted)
		const max = 30
		for i, f := range c.Files {
			if i == max {
				fmt.Fprintf(w, "  … %d more (see changes.json beside the log)\n", len(c.Files)-max)
				break
			}
			fmt.Fprintf(w, "  %-8s %10d  /%s\n", f.Change, f.Size, f.Path)
		}
	}
	if r.Log != "" {
		fmt.Fprintf(w, "log: %s\n", r.Log)
	}
	if r.KeptUpper != "" {
		fmt.Fprintf(w, "upper directory kept for inspection: %s\n", r.KeptUpper)
	}
}

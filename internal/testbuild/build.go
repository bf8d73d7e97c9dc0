//go:build linux

package testbuild

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/vmbuild"
)

// Dir is the directory build buildID runs in: <dataDir>/builds/<buildID>,
// made absolute.
func Dir(dataDir, buildID string) string {
	dir, _ := filepath.Abs(filepath.Join(dataDir, "builds", buildID))
	return dir
}

// Builder runs the pipeline's test builds in the sandbox, on the base
// image's cached layers, and stores a successful install as a new image
// (pipeline.Builder and pipeline.Cleaner).
type Builder struct {
	images  *images.Store
	dataDir string
	limits  sandbox.Limits
	ids     sandbox.IDs
	// bootTests says which OS versions boot-test their builds (V1–V3).
	bootTests BootTests
	// backends says which OS versions build in a machine (SetVM).
	backends    Backends
	agentBinary string
}

// NewBuilder returns a Builder that stores images in is and runs builds
// under dataDir (see Dir) with the sandbox's limits and host ID range.
func NewBuilder(is *images.Store, dataDir string, limits sandbox.Limits, ids sandbox.IDs) *Builder {
	return &Builder{images: is, dataDir: dataDir, limits: limits, ids: ids}
}

// Build runs one test build. Its outcome carries the log and a
// BuildReport; the build's directory is removed once they are read.
func (b *Builder) Build(ctx context.Context, req pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
	base, err := b.images.Get(ctx, req.BaseImageID)
	if err != nil {
		return nil, fmt.Errorf("base image of %s: %w", req.OSName, err)
	}
	var others []string
	ents, err := os.ReadDir(req.PackageDir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if p := filepath.Join(req.PackageDir, e.Name()); p != req.Installer {
			others = append(others, p)
		}
	}
	dir := Dir(b.dataDir, req.BuildID)
	backend, err := b.backendOf(ctx, req.OSName)
	if err != nil {
		return nil, err
	}
	// The history entry names the installer but not the build: with the
	// times clamped, the same install then gives the same image config.
	opts := InstallOptions{Owner: req.Owner, CreatedBy: "pib build " + filepath.Base(req.Installer), Tags: req.Tags, SourceDateEpoch: req.SourceDateEpoch}
	var res *sandbox.Result
	var im *images.Image
	var vm *vmbuild.Result
	if backend == osversions.VM {
		vm, im, err = InstallVM(ctx, b.images, base, dir, vmbuild.Config{Agent: b.agentBinary, Installer: req.Installer,
			Packages: others, Timeout: req.Timeout}, opts)
		if vm != nil {
			defer vm.Close()
			res = vm.AsSandboxResult()
		}
	} else {
		res, im, err = Install(ctx, b.images, base, dir, sandbox.Config{
			Installer: req.Installer,
			Packages:  others,
			Timeout:   req.Timeout,
			Limits:    b.limits,
			IDs:       b.ids,
		}, opts)
	}
	if res != nil {
		defer res.Close()
	}
	if err != nil {
		// A platform fault: the pipeline stores no outcome, so the
		// directory and its log stay for the operators' investigation.
		return nil, err
	}
	out := &pipeline.BuildOutcome{}
	out.Log, _ = os.ReadFile(res.LogPath)
	for _, f := range res.Findings {
		out.Findings = append(out.Findings, pipeline.Finding{Rule: f.Rule, Message: f.Message, Detail: f.Detail})
	}
	for _, f := range res.Changes.Files {
		out.ChangedFiles = append(out.ChangedFiles, fmt.Sprintf("%s /%s (%d bytes)", f.Change, f.Path, f.Size))
	}
	if im != nil {
		out.ImageID = im.ID
	}
	rep := NewBuildReport(res)
	if vm != nil {
		rep.Backend = osversions.VM
		rep.MachineBootSeconds = vm.Boot.Seconds()
	}
	if im != nil {
		// V1–V3 run after I1–I8 passed, before the scan.
		boot, err := b.bootTest(ctx, req.OSName, base, im, dir)
		if err != nil {
			return nil, fmt.Errorf("boot test: %w", err)
		}
		if boot != nil {
			rep.BootTest = boot
			out.BootTest = bootHistory(boot)
			if !boot.Passed {
				out.Findings = append(out.Findings, boot.Findings...)
				// A build with findings keeps no image.
				if _, err := b.images.Remove(ctx, im.ID); err != nil {
					return nil, fmt.Errorf("remove the image that failed its boot test: %w", err)
				}
				im, out.ImageID = nil, ""
			}
		}
	}
	if im != nil {
		if rep.Reproducible, err = b.reproducibility(ctx, req, base, im); err != nil {
			return nil, err
		}
	}
	if out.Report, err = json.Marshal(rep); err != nil {
		return nil, err
	}
	// The log is in the outcome, which the pipeline stores with the build:
	// nothing of the build stays on this machine. Only once the sandbox is
	// torn down (no mount left under dir) is the directory removed.
	if res.Close() == nil {
		os.RemoveAll(dir)
	}
	return out, nil
}

// Cleanup removes what a build whose process died left on this machine.
func (b *Builder) Cleanup(ctx context.Context, buildID string) error {
	// A boot test's throw-away disk (its QEMU died with the process:
	// machine sets a parent-death signal).
	disks, _ := filepath.Glob(filepath.Join(Dir(b.dataDir, buildID), "boot-*"))
	for _, d := range disks {
		os.RemoveAll(d)
	}
	// A vm build's disk copy, loop device and mount (its QEMU died with
	// the process too).
	vmErr := vmbuild.Sweep(Dir(b.dataDir, buildID))
	return errors.Join(vmErr, sandbox.Sweep(Dir(b.dataDir, buildID)))
}

// InstallOptions describe the image Install stores.
type InstallOptions struct {
	Owner     string            // base's owner when empty
	CreatedBy string            // the image's history entry
	Tags      map[string]string // C5
	// SourceDateEpoch clamps the times of what the install adds or
	// changes (images.AddLayerOptions); nil: the base's creation time.
	SourceDateEpoch *time.Time
	// disk is the new disk layer's file on a disk image (InstallVM).
	disk string
}

// Install runs one sandboxed install on base in dir (swept first: a
// retried build reuses its directory) and stores a passing result as a new
// image, with its layer's times clamped (reproducible layers). The build
// log is dir/build.log. The caller closes the result, which may come with
// an error when storing the image failed.
func Install(ctx context.Context, s *images.Store, base *images.Image, dir string, cfg sandbox.Config, opts InstallOptions) (*sandbox.Result, *images.Image, error) {
	if base.Disk != "" {
		return nil, nil, problem.New(problem.Invalid, "image %s is a disk image (%s): the sandbox runs on a file-system image's layers; build on it in a machine (an OS version with backend vm, through pib serve)", base.ID, base.OS)
	}
	lowers, err := s.LayerDirs(ctx, base)
	if err != nil {
		return nil, nil, fmt.Errorf("unpack the base image's layers: %w", err)
	}
	if err := sandbox.Sweep(dir); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create the build directory: %w", err)
	}
	cfg.LowerDirs, cfg.WorkDir, cfg.LogPath = lowers, dir, filepath.Join(dir, "build.log")
	res, err := sandbox.Run(ctx, cfg)
	if err != nil {
		return res, nil, err
	}
	explainNoSystemd(res)
	if !res.Passed() {
		return res, nil, nil
	}
	im, err := storeLayer(ctx, s, base, res.UpperDir, &res.Findings, opts)
	return res, im, err
}

// storeLayer stores an upper directory as base's new layer, as both
// backends make it. Special files the packer refuses are the build's T2
// findings (added to findings), not a platform fault.
func storeLayer(ctx context.Context, s *images.Store, base *images.Image, upper string, findings *[]sandbox.Finding, opts InstallOptions) (*images.Image, error) {
	im, err := s.AddLayer(ctx, base, upper, images.AddLayerOptions{Owner: opts.Owner, CreatedBy: opts.CreatedBy,
		Exclude: sandbox.ExcludePath, Tags: opts.Tags, SourceDateEpoch: opts.SourceDateEpoch, Disk: opts.disk})
	var special *layer.SpecialFilesError
	if errors.As(err, &special) {
		// The backends report these themselves (T2); this is the packer's
		// second look, and the build's failure, not the platform's.
		for _, f := range special.Files {
			*findings = append(*findings, sandbox.Finding{Rule: "T2",
				Message: "the installer left " + f.String() + " in the image; an image must not ship device nodes, FIFOs or sockets: remove it before the installer exits"})
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store the new image: %w", err)
	}
	return im, nil
}

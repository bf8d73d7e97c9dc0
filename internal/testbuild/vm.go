//go:build linux

package testbuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/vmbuild"
)

// Backends says where an OS version's builds run: osversions.Sandbox or
// osversions.VM (an operator setting, osversions.Store.BackendOf).
type Backends interface {
	BackendOf(ctx context.Context, osName string) (string, error)
}

// SetVM lets the OS versions src says build in a machine (package
// vmbuild), with agentBinary (a linux/amd64 pib: os.Executable() in pib
// itself) as the guest's agent. Without it every build runs in the
// sandbox.
func (b *Builder) SetVM(src Backends, agentBinary string) {
	b.backends, b.agentBinary = src, agentBinary
}

func (b *Builder) backendOf(ctx context.Context, osName string) (string, error) {
	if b.backends == nil {
		return osversions.Sandbox, nil
	}
	backend, err := b.backends.BackendOf(ctx, osName)
	if err != nil {
		return "", fmt.Errorf("build backend of OS version %s: %w", osName, err)
	}
	if backend == osversions.VM && b.agentBinary == "" {
		return "", errors.New("OS version " + osName + " builds in a machine (backend vm) but this worker has no agent binary; start it with pib serve or pib worker")
	}
	return backend, nil
}

// InstallVM is Install in a machine: it boots base's disk (made once per
// image and kept in the image cache) in dir (swept first), runs the
// installer through the guest agent and stores a passing result as a new
// image, exactly as Install stores a sandbox build's. The log is
// dir/build.log. The caller closes the result.
//
// A disk image (base.Disk) boots its own qcow2 chain under a new overlay,
// with the agent the operator installed in it, and a passing result is
// stored as that overlay: one more disk layer.
func InstallVM(ctx context.Context, s *images.Store, base *images.Image, dir string, cfg vmbuild.Config, opts InstallOptions) (*vmbuild.Result, *images.Image, error) {
	if base.Disk != "" {
		chain, err := s.DiskChain(ctx, base)
		if err != nil {
			return nil, nil, fmt.Errorf("read the base disk image for a vm build: %w", err)
		}
		cfg.BaseChain, cfg.OS = chain, base.OS
		opts.disk = images.DiskName(len(chain))
	} else {
		disk, err := s.Disk(ctx, base, 0, images.DiskRaw)
		if err != nil {
			return nil, nil, fmt.Errorf("make the base image's disk for a vm build: %w", err)
		}
		root, release, err := s.Rootfs(ctx, base)
		if err != nil {
			return nil, nil, fmt.Errorf("unpack the base image: %w", err)
		}
		defer release()
		cfg.BaseDisk, cfg.BaseRoot = disk, root
	}
	if err := vmbuild.Sweep(dir); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create the build directory: %w", err)
	}
	cfg.WorkDir, cfg.LogPath = dir, filepath.Join(dir, "build.log")
	res, err := vmbuild.Run(ctx, cfg)
	if err != nil || !res.Passed() {
		return res, nil, err
	}
	im, err := storeLayer(ctx, s, base, res.UpperDir, &res.Findings, opts)
	return res, im, err
}

// noSystemd is what systemctl prints where systemd is not PID 1.
var noSystemd = []byte("System has not been booted with systemd as init system")

// explainNoSystemd adds to a failed sandbox build whose log shows
// systemctl failing for want of a running systemd why, and what to do:
// the sandbox runs no init system, so an installer that starts services
// or waits for them needs a vm build.
func explainNoSystemd(res *sandbox.Result) {
	if res.Passed() || res.LogPath == "" {
		return
	}
	f, err := os.Open(res.LogPath)
	if err != nil {
		return
	}
	defer f.Close()
	log, _ := io.ReadAll(io.LimitReader(f, 16<<20))
	if !bytes.Contains(log, noSystemd) {
		return
	}
	res.Findings = append(res.Findings, sandbox.Finding{Rule: "I4",
		Message: "the installer needs a running systemd (systemctl said \"System has not been booted with systemd as init system\"), and systemd is not running in the sandbox: a sandbox build has no init system, so services cannot be started or waited for. " +
			"Either only enable units (systemctl enable works without a running systemd) and let them start at boot, or ask the operator to build this OS version in a machine (pib os add NAME --image ID --backend vm)",
		Detail: "see the build log for the failing systemctl command"})
}

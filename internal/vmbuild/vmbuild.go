//go:build linux

package vmbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/agent"
	"github.com/pib-dev/pib/internal/machine"
	"github.com/pib-dev/pib/internal/sandbox"
)

// Defaults for Config fields left zero.
const (
	// DefaultBootTimeout bounds the boot until the agent says hello: TCG
	// boots took 15–40 s here, and minutes on a machine loaded many-fold
	// (as boottest found).
	DefaultBootTimeout = 10 * time.Minute
	// DefaultRunMargin is how long past the guest's own time limit the
	// host waits for the agent's result: the guest kills the installer at
	// the limit, inspects and reports.
	DefaultRunMargin = 2 * time.Minute
	// shutdownTimeout bounds the guest's power-off after the host asked.
	shutdownTimeout = 3 * time.Minute
)

// Config is one vm build.
type Config struct {
	// BaseDisk is a raw disk of the base image (images.Store.Disk); it is
	// copied, never written.
	BaseDisk string
	// BaseRoot is the base image's root file system (images.Store.Rootfs),
	// read-only: the result is what differs from it.
	BaseRoot string
	// BaseChain, set instead of BaseDisk and BaseRoot, is a disk image's
	// qcow2 chain, bottom first (images.Store.DiskChain): a disk pib
	// cannot read or write (NTFS), with the agent installed as a service
	// by the operator (docs/agent.md). The machine boots it under a new
	// qcow2 overlay and nothing is injected; the result is that overlay,
	// UpperDir/images.DiskName(len(BaseChain)), whose header names the
	// file below it beside it in the image.
	BaseChain []string
	// OS is the OS family the guest's agent must report: "linux" when
	// empty (a file-system image), the disk image's OS for a BaseChain.
	OS string
	// Agent is the pib binary for linux/amd64 that runs `pib agent` in
	// the guest (os.Executable() in pib itself).
	Agent string
	// Installer is the host path of the installer; Packages the group's
	// other files. Their base names must be unique.
	Installer string
	Packages  []string
	// Timeout is the I7 time limit; zero means sandbox.DefaultTimeout.
	Timeout     time.Duration
	BootTimeout time.Duration // zero: DefaultBootTimeout
	// RunMargin is how long past Timeout the host waits for the agent's
	// result before it stops the machine itself (an agent the installer
	// stopped or killed cannot enforce the limit); zero: DefaultRunMargin.
	RunMargin time.Duration
	// WorkDir holds the build's directory (the disk copy, the agent
	// socket, the result's upper directory); it must exist.
	WorkDir string
	// LogPath is the I8 build log.
	LogPath  string
	MemoryMB int    // machine.Config.MemoryMB
	CPUs     int    // machine.Config.CPUs
	Accel    string // machine.Config.Accel
}

// Result is one vm build. Close it to remove the build's directory (disk
// copy and upper directory); the log stays.
type Result struct {
	ExitCode int
	Signal   string
	Findings []sandbox.Finding
	Changes  sandbox.Changes
	LogPath  string
	// UpperDir is what the install changed as an overlay upper directory
	// (images.Store.AddLayer with sandbox.ExcludePath); "" when the guest
	// did not shut down cleanly (then there is nothing to compare).
	UpperDir string
	// Boot is how long the machine took from start to the agent's hello;
	// Duration the whole build.
	Boot     time.Duration
	Duration time.Duration
	// Console is the tail of the guest's serial console (hostile text).
	Console []byte

	dir string
}

// Passed reports whether the build broke no rule.
func (r *Result) Passed() bool { return len(r.Findings) == 0 }

// Close removes the build's directory.
func (r *Result) Close() error {
	if r == nil || r.dir == "" {
		return nil
	}
	d := r.dir
	r.dir = ""
	return os.RemoveAll(d)
}

// dirPrefix names a vm build's directory under WorkDir (Sweep finds them).
const dirPrefix = "pib-vm-"

// Run runs one installer in a machine booted from the base disk. An error
// means the platform failed (the disk could not be made, the machine did
// not boot, the agent broke the protocol, ctx ended); rule violations are
// Result.Findings. The caller must Close the result.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	start := time.Now()
	if os.Geteuid() != 0 {
		return nil, errors.New("vm builds need root (a loop mount of the build disk to read its result); run pib as root")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = sandbox.DefaultTimeout
	}
	if cfg.BootTimeout <= 0 {
		cfg.BootTimeout = DefaultBootTimeout
	}
	if cfg.RunMargin <= 0 {
		cfg.RunMargin = DefaultRunMargin
	}
	if err := machine.CheckQEMU(machine.BIOS); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(cfg.WorkDir, dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("create the vm build directory: %w", err)
	}
	r := &Result{ExitCode: -1, Findings: []sandbox.Finding{}, Changes: sandbox.Changes{Files: []sandbox.FileChange{}}, LogPath: cfg.LogPath, dir: dir}
	res = r
	defer func() {
		// A platform fault keeps the log (beside, not in, dir) for the
		// investigation, not the disk copy.
		if err != nil {
			r.Close()
		}
	}()
	// The lock tells Sweep this build is alive; it goes with the process.
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(cfg.LogPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create build log: %w", err)
	}
	defer logFile.Close()

	mc := machine.Config{Firmware: machine.BIOS, NoReboot: true, WorkDir: dir, MemoryMB: cfg.MemoryMB, CPUs: cfg.CPUs, Accel: cfg.Accel}
	raw := filepath.Join(dir, "disk.raw")
	wantOS := "linux"
	if len(cfg.BaseChain) > 0 {
		if cfg.OS != "" {
			wantOS = cfg.OS
		}
		if mc.Chain, err = overlay(ctx, cfg.BaseChain, dir); err != nil {
			return nil, err
		}
		if mc.MemoryMB == 0 && wantOS == "windows" {
			mc.MemoryMB = WindowsMemoryMB
		}
	} else {
		if err := copyDisk(ctx, cfg.BaseDisk, raw); err != nil {
			return nil, err
		}
		if err := inject(ctx, raw, cfg.Agent); err != nil {
			return nil, fmt.Errorf("put the agent into the build disk: %w", err)
		}
		mc.Disk, mc.Format = raw, "raw"
	}

	// The host's own limit: boot + the installer's limit + margins.
	hctx, cancel := context.WithTimeout(ctx, cfg.BootTimeout+cfg.Timeout+cfg.RunMargin+shutdownTimeout)
	defer cancel()
	sock, cleanSock, err := socketPath(dir)
	if err != nil {
		return nil, err
	}
	defer cleanSock()
	mc.AgentSocket = sock
	m, err := machine.Start(hctx, mc)
	if err != nil {
		return nil, err
	}
	defer m.Stop()
	defer func() { r.Console = m.Console() }()

	bctx, bcancel := context.WithTimeout(hctx, cfg.BootTimeout)
	defer bcancel()
	conn, err := m.DialAgent(bctx, sock)
	if err != nil {
		return nil, fmt.Errorf("boot the build machine: %w", err)
	}
	defer conn.Close()
	// A guest that stops the agent's session by going away must not
	// leave a read blocked: the connection closes with QEMU.
	go func() { <-m.Done(); conn.Close() }()
	c := agent.NewClient(conn)
	hello, err := c.Hello(bctx)
	if err != nil {
		return nil, fmt.Errorf("the build machine's agent did not answer within %s (%w); its console ended with: %s", cfg.BootTimeout, err, consoleTail(m.Console(), 2000))
	}
	res.Boot = time.Since(start)
	if hello.OS != wantOS {
		return nil, fmt.Errorf("the build machine's agent runs on %q, but the image is %s: register the image with its own OS family (pib image import --os)", hello.OS, wantOS)
	}
	fmt.Fprintf(logFile, "pib: build machine up in %s (agent protocol %d, %s/%s)\n", res.Boot.Round(100*time.Millisecond), hello.Version, hello.OS, hello.Arch)

	seen := map[string]bool{}
	for _, p := range append([]string{cfg.Installer}, cfg.Packages...) {
		name := filepath.Base(p)
		if seen[name] {
			if p == cfg.Installer {
				continue
			}
			return nil, fmt.Errorf("two packages named %q: package names must be unique", name)
		}
		seen[name] = true
		if err := put(hctx, c, p); err != nil {
			return nil, err
		}
	}

	rctx, rcancel := context.WithTimeout(hctx, cfg.Timeout+cfg.RunMargin)
	defer rcancel()
	rr, err := c.Run(rctx, agent.RunRequest{Installer: filepath.Base(cfg.Installer), Timeout: cfg.Timeout}, func(o agent.Output) {
		if o.Stream == "pib" {
			fmt.Fprintf(logFile, "pib: %s\n", o.Data)
			return
		}
		logFile.Write(o.Data)
	})
	var gone *agent.GuestGoneError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, fmt.Errorf("build cancelled: %w", ctx.Err())
	case errors.As(err, &gone) || machineGone(m):
		// -no-reboot: a reboot ends QEMU, as a power-off does (I5).
		waitExit(m, 30*time.Second)
		res.Findings = append(res.Findings, powerFinding(gone, m.Console()))
		res.Duration = time.Since(start)
		return res, nil
	case rctx.Err() != nil:
		fmt.Fprintf(logFile, "pib: the agent sent no result within %s of the time limit (%s): the host stops the machine\n", cfg.RunMargin, cfg.Timeout)
		m.Stop()
		res.Findings = append(res.Findings, sandbox.Finding{Rule: "I7",
			Message: fmt.Sprintf("the build ran past its time limit (%s) and the machine was stopped: the installer may be waiting for input (I1) or hung; installers must finish unattended", cfg.Timeout)})
		res.Duration = time.Since(start)
		return res, nil
	default:
		return nil, fmt.Errorf("run the installer in the build machine: %w", err)
	}
	res.ExitCode, res.Signal = rr.ExitCode, rr.Signal
	for _, f := range rr.Findings {
		res.Findings = append(res.Findings, sandbox.Finding{Rule: f.Rule, Message: f.Message, Detail: f.Detail})
	}

	// A clean power-off, so the disk's file system is consistent.
	sctx, scancel := context.WithTimeout(hctx, shutdownTimeout)
	defer scancel()
	if err := c.Shutdown(sctx); err != nil && !machineGone(m) {
		return nil, fmt.Errorf("ask the build machine to power off: %w", err)
	}
	select {
	case <-m.Done():
	case <-sctx.Done():
		return nil, fmt.Errorf("the build machine did not power off within %s of the agent's acknowledgement; its console ended with: %s", shutdownTimeout, consoleTail(m.Console(), 2000))
	}
	if bytes := m.Console(); rebootLine.Match(bytes) && !powerDown.Match(bytes) {
		// The guest restarted instead of powering off: something the
		// installer left behind asked for it (I5).
		res.Findings = append(res.Findings, powerFinding(nil, bytes))
	}
	if len(mc.Chain) > 0 {
		if err := keepOverlay(ctx, res, mc.Chain); err != nil {
			return nil, err
		}
		res.Duration = time.Since(start)
		return res, nil
	}

	mnt, unmount, err := mountRoot(ctx, raw, dir)
	var corrupt *corruptError
	if errors.As(err, &corrupt) {
		res.Findings = append(res.Findings, sandbox.Finding{Rule: "T2",
			Message: "the build disk's file system was left damaged, so its result cannot be read; installers must not write to block devices or the file system's structures",
			Detail:  clip(corrupt.out, 2000)})
		res.Duration = time.Since(start)
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	upper := filepath.Join(dir, "upper")
	res.Changes, err = Diff(mnt, cfg.BaseRoot, upper)
	if uerr := unmount(); err == nil && uerr != nil {
		err = uerr
	}
	if err != nil {
		return nil, err
	}
	res.UpperDir = upper
	netFiles, err := sandbox.NetworkFileFindings(upper, res.Changes)
	if err != nil {
		return nil, fmt.Errorf("check the changed network files (I6): %w", err)
	}
	res.Findings = append(res.Findings, dedupe(res.Findings, netFiles)...)
	res.Findings = append(res.Findings, sandbox.SpecialFileFindings(res.Changes)...)
	res.Duration = time.Since(start)
	return res, nil
}

// put sends one package into the guest's staging directory.
func put(ctx context.Context, c *agent.Client, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("open package: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := c.Put(ctx, filepath.Base(p), fi.Mode().Perm(), fi.Size(), io.LimitReader(f, fi.Size())); err != nil {
		return fmt.Errorf("send %s to the build machine: %w", filepath.Base(p), err)
	}
	return nil
}

// socketPath is where QEMU listens for the agent's port: in the build's
// directory when the path fits a Unix socket address (108 bytes), else in
// a private temporary directory.
func socketPath(dir string) (string, func(), error) {
	p := filepath.Join(dir, "agent.sock")
	if len(p) < 100 {
		return p, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", dirPrefix+"sock-")
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(tmp, "agent.sock"), func() { os.RemoveAll(tmp) }, nil
}

func machineGone(m *machine.Machine) bool {
	select {
	case <-m.Done():
		return true
	default:
		return false
	}
}

// waitExit waits for QEMU to exit on its own (a guest reboot or power-off
// ends it), then kills it.
func waitExit(m *machine.Machine, d time.Duration) {
	select {
	case <-m.Done():
	case <-time.After(d):
		m.Stop()
	}
}

// The kernel's last words on the console (hostile text: matched, bounded
// and cleaned before it is quoted).
var (
	rebootLine = regexp.MustCompile(`reboot: (Restarting system|Power down|System halted)[^\r\n]{0,80}`)
	powerDown  = regexp.MustCompile(`reboot: Power down`)
)

// powerFinding is the I5 finding for a guest that went away: what the
// agent saw the installer run, else the kernel's console line.
func powerFinding(gone *agent.GuestGoneError, console []byte) sandbox.Finding {
	line := ""
	if all := rebootLine.FindAll(console, -1); len(all) > 0 {
		line = clean(string(all[len(all)-1]), 120)
	}
	if gone != nil && gone.Power != nil && !gone.Power.Inferred {
		f := sandbox.Finding{Rule: "I5",
			Message: fmt.Sprintf("the installer ran `%s` (%s) and the machine went down; installers must never reboot or shut down", clean(gone.Power.Command, 200), clean(gone.Power.Verb, 20))}
		if line != "" {
			f.Detail = "the guest's console: " + line
		}
		return f
	}
	// No command seen (reboot(2) itself, or init stopped the agent as the
	// system went down: an inferred power event): the kernel's console
	// line says which, the agent's note goes in the detail.
	note := ""
	if gone != nil && gone.Power != nil {
		note = "; the agent saw: " + clean(gone.Power.Command, 200)
	}
	switch {
	case strings.Contains(line, "Restarting"):
		return sandbox.Finding{Rule: "I5", Message: "the installer restarted the system (the guest's kernel rebooted); installers must never reboot", Detail: "the guest's console: " + line + note}
	case line != "":
		return sandbox.Finding{Rule: "I5", Message: "the installer halted or powered off the system; installers must never shut down", Detail: "the guest's console: " + line + note}
	}
	return sandbox.Finding{Rule: "I5", Message: "the build machine went away while the installer ran (a reboot, halt or power-off, or the agent was killed); installers must never reboot or shut down",
		Detail: "the guest's console ended with: " + consoleTail(console, 300) + note}
}

// clean drops non-printable runes and bounds s.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\t' || (r >= ' ' && r != 0x7f && r != 0xfffd) {
			return r
		}
		return -1
	}, strings.ToValidUTF8(s, ""))
	return clip(s, n)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// consoleTail is the console's last n bytes as one cleaned line.
func consoleTail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return clean(strings.Join(strings.Fields(string(b)), " "), n)
}

// dedupe returns the findings of add that have no twin (rule and
// message) in have: the agent may report a network file itself.
func dedupe(have, add []sandbox.Finding) []sandbox.Finding {
	var out []sandbox.Finding
	for _, a := range add {
		dup := false
		for _, h := range have {
			if h.Rule == a.Rule && strings.Contains(h.Message, strings.TrimPrefix(a.Message, "the installer ")) {
				dup = true
			}
		}
		if !dup {
			out = append(out, a)
		}
	}
	return out
}

// Sweep removes what vm builds whose process died left in the work
// directories: their disk copies and upper directories (their QEMU died
// with them: machine sets a parent-death signal). A mount left by a
// killed build is undone first. Builds still running are left alone.
func Sweep(workDirs ...string) error {
	var errs []error
	for _, wd := range workDirs {
		ents, err := os.ReadDir(wd)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), dirPrefix) {
				continue
			}
			dir := filepath.Join(wd, e.Name())
			if lock, err := os.Open(filepath.Join(dir, "lock")); err == nil {
				if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
					lock.Close()
					continue // alive
				}
				lock.Close()
			}
			mounts, _ := filepath.Glob(filepath.Join(dir, "root-*"))
			for _, m := range mounts {
				if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
					errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
				}
			}
			// The loop device was attached with autoclear off by losetup;
			// detach whatever still backs onto this build's disk.
			detachLoops(filepath.Join(dir, "disk.raw"))
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// AsSandboxResult is the result in the sandbox's terms, for the reports
// and the pipeline that both backends share. Closing it does nothing:
// close r.
func (r *Result) AsSandboxResult() *sandbox.Result {
	return &sandbox.Result{ExitCode: r.ExitCode, Signal: r.Signal, Findings: r.Findings, Changes: r.Changes,
		LogPath: r.LogPath, UpperDir: r.UpperDir, Duration: r.Duration}
}

//go:build linux

package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout     = 60 * time.Minute // I7
	DefaultMemoryBytes = 4 << 30
	DefaultPids        = 2048
	DefaultCPUs        = 2
	DefaultDiskBytes   = 2 << 30
)

// Config describes one test build.
type Config struct {
	// LowerDirs are the base image's unpacked layers, bottom-most first.
	// They are mounted read-only and may be shared by concurrent builds.
	LowerDirs []string
	// Installer is the host path of the installer; its extension picks how it
	// runs (P2). Packages are the group's other files.
	Installer string
	Packages  []string
	// Timeout is the I7 time limit; zero means DefaultTimeout.
	Timeout time.Duration
	Limits  Limits
	// WorkDir holds the per-build directory; empty means os.TempDir().
	WorkDir string
	// LogPath is where the I8 build log is written; empty means a file
	// beside the build directory (build.log), kept after Close.
	LogPath string
	// KeepOnFailure copies the upper directory of a build with findings to
	// a directory that outlives Close (Result.KeptDir).
	KeepOnFailure bool
	// IDs is the host ID range of the build's user namespace (T1); zero
	// fields take the defaults.
	IDs IDs
}

// Limits bound what one build may use (zero fields take the defaults).
type Limits struct {
	MemoryBytes int64   // memory cgroup limit, init and installer together
	Pids        int     // process/thread limit
	CPUs        float64 // CPU time, in CPUs
	DiskBytes   int64   // bytes the installer may write to the root file system
}

func (l Limits) withDefaults() Limits {
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = DefaultMemoryBytes
	}
	if l.Pids <= 0 {
		l.Pids = DefaultPids
	}
	if l.CPUs <= 0 {
		l.CPUs = DefaultCPUs
	}
	if l.DiskBytes <= 0 {
		l.DiskBytes = DefaultDiskBytes
	}
	return l
}

// Finding is one broken rule. Rule is the SPEC ID ("I5"), or "limits" for a
// resource limit the build hit.
type Finding struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Detail  string `json:"detail,omitempty"`
}

// Result is what a build produced. Close it to remove the upper directory
// and everything else left on the host. Its host paths (LogPath, KeptDir,
// UpperDir) never go into JSON: a report shown to a seller must not name
// the host's directories.
type Result struct {
	// ExitCode is the installer's exit status, -1 when it did not exit on
	// its own (killed, timed out, reboot).
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	// Findings lists each broken rule; none means the install passed I1–I8.
	Findings []Finding `json:"findings"`
	Changes  Changes   `json:"changed_files"`
	LogPath  string    `json:"-"`
	// UpperDir is the overlay's upper directory: what the install changed,
	// with overlay whiteouts. Valid until Close.
	UpperDir string `json:"-"`
	// KeptDir is a copy of the upper directory kept for inspection
	// (Config.KeepOnFailure); it outlives Close.
	KeptDir  string        `json:"-"`
	Duration time.Duration `json:"-"`

	cleanup func() error
}

// Passed reports whether the build broke no rule.
func (r *Result) Passed() bool { return len(r.Findings) == 0 }

// Close removes the build's host-side leftovers: the tmpfs of the upper
// directory, the cgroup and the build directory. The log and KeptDir stay.
func (r *Result) Close() error {
	if r == nil || r.cleanup == nil {
		return nil
	}
	f := r.cleanup
	r.cleanup = nil
	return f()
}

// ExcludePath reports whether rel (slash-separated, relative to the root)
// is one of pib's own transient paths that must not reach the new layer.
func ExcludePath(rel string) bool {
	rel = strings.TrimPrefix(rel, "./")
	rel = strings.TrimPrefix(rel, "/")
	return rel == "var/tmp/pib" || strings.HasPrefix(rel, "var/tmp/pib/")
}

// transient env markers: see Main.
const (
	envInit   = "_PIB_SANDBOX_INIT"
	envExec   = "_PIB_SANDBOX_EXEC"
	envConfig = "_PIB_SANDBOX_CONFIG"
)

// initConfig is what Run hands to the sandbox init. It holds no host path:
// the init receives its layers as mounts over the go socket.
type initConfig struct {
	Layers    int      `json:"layers"`    // lower layers sent, bottom-most first
	Installer string   `json:"installer"` // base name
	Packages  []string `json:"packages"`  // base names, in fd order after the installer
	TimeoutMS int64    `json:"timeout_ms"`
}

// event is one line of the init's report stream.
type event struct {
	Kind     string   `json:"kind"` // finding, exit, done
	Finding  *Finding `json:"finding,omitempty"`
	ExitCode int      `json:"exit_code,omitempty"`
	Signal   string   `json:"signal,omitempty"`
}

// testHookStarted, when set by a test, runs once the init is running: the
// teardown test panics there to prove a panic leaves nothing behind.
var testHookStarted func()

// Run runs one test build. An error means the platform failed (the sandbox
// could not start or was cancelled); rule violations are Result.Findings.
// The caller must Close the result.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	start := time.Now()
	if os.Geteuid() != 0 {
		return nil, errors.New("the sandbox needs root (namespaces, mounts, cgroups); run pib build as root")
	}
	if len(cfg.LowerDirs) == 0 {
		return nil, errors.New("no lower directories: the base image has no layers")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	lim := cfg.Limits.withDefaults()
	if _, err := installerCommand(filepath.Base(cfg.Installer), nil); err != nil {
		return nil, err
	}

	workDir := cfg.WorkDir
	if workDir == "" {
		workDir = os.TempDir()
	}
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	dir, err := os.MkdirTemp(workDir, "pib-build-")
	if err != nil {
		return nil, fmt.Errorf("create build directory: %w", err)
	}
	var cleanups []func() error // run in reverse order
	cleanupAll := func() error {
		var errs []error
		for i := len(cleanups) - 1; i >= 0; i-- {
			errs = append(errs, cleanups[i]())
		}
		return errors.Join(errs...)
	}
	cleanups = append(cleanups, func() error { return os.RemoveAll(dir) })
	// The lock tells Sweep this build is alive; it is released with the
	// process, so a build whose pib was SIGKILLed is found stale.
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		return nil, err
	}
	cleanups = append(cleanups, lock.Close)
	defer func() {
		if p := recover(); p != nil {
			cleanupAll()
			panic(p)
		}
		if err != nil {
			cleanupAll()
		}
	}()

	// The upper directory lives on a tmpfs whose size is the disk limit.
	fsDir := filepath.Join(dir, "fs")
	if err := os.Mkdir(fsDir, 0o700); err != nil {
		return nil, err
	}
	if err := unix.Mount("pib-upper", fsDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV,
		fmt.Sprintf("size=%d,mode=0700", lim.DiskBytes)); err != nil {
		return nil, fmt.Errorf("mount tmpfs for the upper directory: %w", err)
	}
	cleanups = append(cleanups, func() error {
		if err := unix.Unmount(fsDir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", fsDir, err)
		}
		return nil
	})
	upper, ovWork := filepath.Join(fsDir, "upper"), filepath.Join(fsDir, "work")
	for _, d := range []string{upper, ovWork} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}

	logPath := cfg.LogPath
	if logPath == "" {
		logPath = dir + ".log"
	}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create build log: %w", err)
	}
	defer logFile.Close()

	// Package files are handed to the init as open files: it copies them
	// after it has pivoted into the build's root, so no path of the
	// (possibly hostile) image is ever resolved on the host.
	files := []*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	ic := initConfig{Layers: len(cfg.LowerDirs), TimeoutMS: cfg.Timeout.Milliseconds()}
	seen := map[string]bool{}
	for i, p := range append([]string{cfg.Installer}, cfg.Packages...) {
		name := filepath.Base(p)
		if seen[name] {
			if i == 0 || p == cfg.Installer {
				continue
			}
			return nil, fmt.Errorf("two packages named %q: package names must be unique", name)
		}
		seen[name] = true
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("open package: %w", err)
		}
		files = append(files, f)
		if i == 0 {
			ic.Installer = name
		} else {
			ic.Packages = append(ic.Packages, name)
		}
	}
	cj, _ := json.Marshal(ic)

	cg, err := newCgroup(filepath.Base(dir), lim)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, cg.remove)
	idBase, releaseIDs, err := acquireIDs(cfg.IDs)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, releaseIDs)
	idSize := cfg.IDs.withDefaults().Size

	evR, evW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer evR.Close()
	// The go socket carries the start signal and the build's mounts.
	goPair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		evW.Close()
		return nil, err
	}
	goW, goR := os.NewFile(uintptr(goPair[0]), "go"), os.NewFile(uintptr(goPair[1]), "go")
	defer goW.Close()

	procs, err := cg.openInstallerProcs()
	if err != nil {
		evW.Close()
		return nil, err
	}
	defer procs.Close()

	var stderr bytes.Buffer
	// /proc/self/exe, resolved by the child before its exec, is this very
	// binary: no host path to it needs to be searchable by the build's
	// unprivileged IDs.
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"pib-sandbox-init"}
	cmd.Env = []string{envInit + "=1", envConfig + "=" + string(cj), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin = nil
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	// fd 3 log, 4 events, 5 go signal, 6 the installer's cgroup.procs,
	// 7… packages.
	cmd.ExtraFiles = append([]*os.File{logFile, evW, goR, procs}, files...)
	// T1: a user namespace whose 0…size-1 are the host's unprivileged
	// idBase…; it owns the other namespaces, so the init's capabilities
	// act on the build's own mounts, network and processes only. setgroups
	// stays allowed (the maps are written by root): package managers drop
	// privileges with it.
	idmap := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(idBase), Size: int(idSize)}}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
			unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
		UidMappings:                idmap,
		GidMappings:                idmap,
		GidMappingsEnableSetgroups: true,
		Credential:                 &syscall.Credential{Uid: 0, Gid: 0},
		Pdeathsig:                  syscall.SIGKILL,
		Setsid:                     true,
	}
	if err := cmd.Start(); err != nil {
		evW.Close()
		goR.Close()
		return nil, fmt.Errorf("start the sandbox init: %w", err)
	}
	evW.Close()
	goR.Close()
	procs.Close()
	killed := false
	waitc := make(chan error, 1)
	go func() { waitc <- cmd.Wait() }()
	exited := false
	defer func() {
		// Reached with the init still running only on a panic or an early
		// return: its death takes the whole sandbox with it.
		if !exited {
			cmd.Process.Kill()
			<-waitc
		}
	}()
	if err := cg.add(cmd.Process.Pid); err != nil {
		return nil, err
	}
	// The OOM killer picks a victim among the installer's processes, never
	// the init that reports what happened; inside its user namespace the
	// init could not lower its own score.
	os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", cmd.Process.Pid), []byte("-1000"), 0)
	if err := sendMounts(goW, cmd.Process.Pid, cfg.LowerDirs, fsDir); err != nil {
		return nil, err
	}
	goW.Close()
	if testHookStarted != nil {
		testHookStarted()
	}

	// Collect events until the init closes its end.
	res = &Result{ExitCode: -1, LogPath: logPath, UpperDir: upper, Findings: []Finding{}}
	evc := make(chan event, 64)
	go func() {
		defer close(evc)
		sc := bufio.NewScanner(evR)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				evc <- e
			}
		}
	}()

	// The init enforces the time limit itself; this is the backstop.
	hard := time.NewTimer(cfg.Timeout + 30*time.Second)
	defer hard.Stop()
	done := false
	var waitErr error
	for !exited || evc != nil {
		select {
		case e, ok := <-evc:
			if !ok {
				evc = nil
				continue
			}
			switch e.Kind {
			case "finding":
				res.Findings = append(res.Findings, *e.Finding)
			case "exit":
				res.ExitCode, res.Signal = e.ExitCode, e.Signal
			case "done":
				done = true
			}
		case waitErr = <-waitc:
			exited = true
			waitc = nil
		case <-ctx.Done():
			if !killed {
				killed = true
				cmd.Process.Kill()
			}
		case <-hard.C:
			if !killed {
				killed = true
				cmd.Process.Kill()
				res.Findings = append(res.Findings, Finding{Rule: "I7",
					Message: fmt.Sprintf("the build ran past its time limit (%s) and was killed", cfg.Timeout)})
			}
		}
	}
	cg.kill()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("build cancelled: %w", ctx.Err())
	}
	// reboot(2) in a PID namespace kills its init; the parent sees SIGHUP
	// for a restart and SIGINT for halt/power-off (I5).
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && !killed {
			switch ws.Signal() {
			case syscall.SIGHUP:
				res.Findings = append(res.Findings, Finding{Rule: "I5",
					Message: "the installer restarted the system (reboot(2) with RESTART); installers must never reboot",
					Detail:  "the kernel ended the build's PID namespace with SIGHUP"})
				done = true
			case syscall.SIGINT:
				res.Findings = append(res.Findings, Finding{Rule: "I5",
					Message: "the installer halted or powered off the system (reboot(2) with HALT/POWER_OFF); installers must never shut down",
					Detail:  "the kernel ended the build's PID namespace with SIGINT"})
				done = true
			}
		}
	}
	if !done && !killed {
		return nil, fmt.Errorf("the sandbox init failed (%v): %s", waitErr, strings.TrimSpace(stderr.String()))
	}
	res.Findings = append(res.Findings, cg.findings(lim)...)
	if f := diskFinding(fsDir, lim); f != nil {
		res.Findings = append(res.Findings, *f)
	}
	res.Changes, err = changedFiles(upper, cfg.LowerDirs)
	if err != nil {
		return nil, fmt.Errorf("list changed files: %w", err)
	}
	netFiles, err := NetworkFileFindings(upper, res.Changes)
	if err != nil {
		return nil, fmt.Errorf("check the changed network files (I6): %w", err)
	}
	res.Findings = append(res.Findings, netFiles...)
	res.Findings = append(res.Findings, SpecialFileFindings(res.Changes)...)
	if cfg.KeepOnFailure && !res.Passed() {
		kept := dir + ".upper"
		if err := keepUpper(upper, kept); err != nil {
			return nil, fmt.Errorf("keep the upper directory: %w", err)
		}
		res.KeptDir = kept
	}
	res.Duration = time.Since(start)
	res.cleanup = cleanupAll
	return res, nil
}

// diskFinding reports a build that filled its upper-directory tmpfs.
func diskFinding(fsDir string, lim Limits) *Finding {
	var st unix.Statfs_t
	if unix.Statfs(fsDir, &st) != nil {
		return nil
	}
	free := int64(st.Bavail) * st.Bsize
	if free > 1<<20 {
		return nil
	}
	return &Finding{Rule: "limits",
		Message: fmt.Sprintf("the installer filled the build's disk limit (%d MiB written); installers must not write unbounded data", lim.DiskBytes>>20)}
}

// Sweep removes what builds whose process died without cleaning up (pib was
// SIGKILLed) left in the work directories: the upper directory's tmpfs,
// the cgroup and the build directory. Builds still running are left alone.
func Sweep(workDirs ...string) error {
	var errs []error
	for _, wd := range workDirs {
		ents, err := os.ReadDir(wd)
		if err != nil {
			continue
		}
		for _, e := range ents {
			name := e.Name()
			if !e.IsDir() || !strings.HasPrefix(name, "pib-build-") || strings.Contains(name, ".") {
				continue
			}
			dir := filepath.Join(wd, name)
			lock, err := os.Open(filepath.Join(dir, "lock"))
			if err == nil {
				err = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
				if err != nil {
					lock.Close()
					continue // alive
				}
			}
			fsDir := filepath.Join(dir, "fs")
			if err := unix.Unmount(fsDir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", fsDir, err))
			}
			if err := removeCgroups(name); err != nil {
				errs = append(errs, err)
			}
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, err)
			}
			if lock != nil {
				lock.Close()
			}
		}
	}
	return errors.Join(errs...)
}

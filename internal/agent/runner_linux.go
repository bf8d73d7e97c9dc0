//go:build linux

package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/power"
	"github.com/pib-dev/pib/internal/procs"
)

// linuxRunner runs installers in a Linux guest (Debian 12 with systemd).
type linuxRunner struct {
	dir string
	// cgroupRoot is where cgroup v2 is mounted ("" finds it; "-" means
	// none: the process-tree walk is used). Tests set it.
	cgroupRoot string
	// powerOff is what Shutdown ends with; tests replace it.
	powerOff func() error
	// watchNet runs the I2 recorder and the I6 snapshot, and binds
	// resolv.conf: only where the agent owns the network namespace (a
	// guest; a test's own namespaces), never on a shared host.
	watchNet bool
}

// NewRunner returns the runner of this OS, staging files in stagingDir.
func NewRunner(stagingDir string) (Runner, error) {
	if !filepath.IsAbs(stagingDir) {
		return nil, fmt.Errorf("staging directory %q must be an absolute path", stagingDir)
	}
	return &linuxRunner{dir: stagingDir, powerOff: linuxPowerOff, watchNet: true}, nil
}

func linuxPowerOff() error {
	unix.Sync()
	// Through systemd when it runs, so units stop and file systems are
	// unmounted cleanly; reboot(2) only when that failed.
	if err := exec.Command("systemctl", "poweroff").Run(); err == nil {
		return nil
	}
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// ShutdownVerb tells what systemd is shutting the guest down for, from
// its queued jobs ("" when it cannot tell).
func (r *linuxRunner) ShutdownVerb() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "systemctl", "list-jobs", "--no-legend", "--no-pager").Output()
	switch s := string(out); {
	case strings.Contains(s, "poweroff.target"):
		return "power off"
	case strings.Contains(s, "halt.target"):
		return "halt"
	case strings.Contains(s, "reboot.target"), strings.Contains(s, "kexec.target"):
		return "reboot"
	}
	return ""
}

func (r *linuxRunner) Dir() string     { return r.dir }
func (r *linuxRunner) PowerOff() error { return r.powerOff() }

// installerEnv is the installer's whole environment: nothing of the
// agent's leaks in, and package managers are told there is no one to ask.
func installerEnv(pathPrefix string) []string {
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	if pathPrefix != "" {
		path = pathPrefix + ":" + path
	}
	return []string{
		"PATH=" + path,
		"HOME=/root",
		"LANG=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive",
		"DEBCONF_NONINTERACTIVE_SEEN=true",
	}
}

// linuxCommand is how the installer runs, relative to dir (P2); the same
// commands as the sandbox's.
func linuxCommand(dir, installer string) ([]string, error) {
	switch strings.ToLower(filepath.Ext(installer)) {
	case ".sh":
		return []string{"/bin/sh", "./" + installer}, nil
	case ".exe":
		return []string{"./" + installer}, nil
	case ".run":
		if isELF(filepath.Join(dir, installer)) {
			return []string{"./" + installer}, nil
		}
		return []string{"/bin/sh", "./" + installer}, nil
	case ".deb":
		argv := []string{"dpkg", "-i", "--force-confold", "./" + installer}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Name() != installer && strings.EqualFold(filepath.Ext(e.Name()), ".deb") {
				argv = append(argv, "./"+e.Name())
			}
		}
		return argv, nil
	case ".rpm":
		return []string{"/bin/sh", "-c", `command -v rpm >/dev/null || { echo "pib: this base image has no rpm; an .rpm installer needs an RPM-based image" >&2; exit 127; }; exec rpm -i "$0"`, "./" + installer}, nil
	}
	return nil, fmt.Errorf("installer %q: want a .sh, .run, .exe, .deb or .rpm file (P2)", installer)
}

func isELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "\x7fELF"
}

// group is what holds the installer's processes: a cgroup v2 child when
// the guest has one (I3 the sure way: nothing escapes it), else the
// process tree below the agent (the agent is a child subreaper, so
// orphans of the installer are reparented to it, not to init).
type group struct {
	dir string   // cgroup directory, "" for the tree walk
	fd  *os.File // open cgroup directory for CLONE_INTO_CGROUP
}

func (g *group) path() string {
	if g.dir != "" {
		return "cgroup v2 " + g.dir
	}
	return "process-tree walk"
}

// cgroup2Root finds where the unified hierarchy is mounted: /sys/fs/cgroup
// on a unified host (Debian 12), /sys/fs/cgroup/unified on a hybrid one.
func cgroup2Root() string {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	return ""
}

// newGroup makes a cgroup v2 child of the agent's own cgroup, or returns
// the tree-walk group (with the reason) when it cannot.
func (r *linuxRunner) newGroup() (*group, string) {
	root := r.cgroupRoot
	if root == "" {
		root = cgroup2Root()
	}
	if root == "-" {
		return &group{}, "cgroups are not used by this runner's configuration"
	}
	if root == "" {
		return &group{}, "no cgroup v2 hierarchy is mounted"
	}
	own, err := ownCgroup2()
	if err != nil {
		return &group{}, err.Error()
	}
	dir := filepath.Join(root, own, fmt.Sprintf("pib-installer-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return &group{}, fmt.Sprintf("cannot create a cgroup: %v", err)
	}
	fd, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return &group{}, fmt.Sprintf("cannot open the cgroup: %v", err)
	}
	return &group{dir: dir, fd: fd}, ""
}

// ownCgroup2 reads the agent's cgroup v2 path ("0::/path").
func ownCgroup2() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("the agent is in no cgroup v2")
}

// members lists the live processes of the group (installer included
// while it runs).
func (g *group) members(agentPID int) []procs.Process {
	if g.dir == "" {
		return procs.Descendants(agentPID)
	}
	b, _ := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
	var out []procs.Process
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if p, ok := procs.Read(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// kill kills every member and waits (up to 5 s) until none is left,
// reaping those reparented to the agent.
func (g *group) kill(agentPID int) {
	if g.dir != "" {
		if err := os.WriteFile(filepath.Join(g.dir, "cgroup.kill"), []byte("1"), 0); err != nil {
			// Kernels before 5.14 have no cgroup.kill.
			for _, p := range g.members(agentPID) {
				unix.Kill(p.PID, unix.SIGKILL)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := g.members(agentPID)
		for _, p := range left {
			if g.dir == "" {
				unix.Kill(p.PID, unix.SIGKILL)
			}
			var ws unix.WaitStatus
			unix.Wait4(p.PID, &ws, unix.WNOHANG, nil)
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *group) close() {
	if g.fd != nil {
		g.fd.Close()
	}
	if g.dir != "" {
		// rmdir fails while a killed process is still exiting; retry briefly.
		for i := 0; i < 50; i++ {
			if err := os.Remove(g.dir); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

var subreaperOnce sync.Once

func (r *linuxRunner) Run(ctx context.Context, req RunRequest, ev Events) (*RunResult, error) {
	argv, err := linuxCommand(r.dir, req.Installer)
	if err != nil {
		return nil, err
	}
	// Orphans of the installer come to us, not to init, so the tree walk
	// sees them and we reap them.
	subreaperOnce.Do(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) })
	self := os.Getpid()

	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	w, err := startWatch(ev, filepath.Dir(r.dir), r.watchNet)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := w.stop(); err != nil {
			note(ev, "restoring the guest after the install: %v", err)
		}
	}()

	g, why := r.newGroup()
	defer g.close()
	if g.dir == "" {
		note(ev, "I3 via the process-tree walk: %s", why)
	} else {
		note(ev, "I3 via %s", g.path())
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = r.dir
	cmd.Env = installerEnv(w.path())
	// stdin is /dev/null (os/exec's default for a nil Stdin) and the
	// installer leads a new session: no terminal at all (I1).
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if g.fd != nil {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(g.fd.Fd())
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	if err != nil && g.fd != nil {
		// CLONE_INTO_CGROUP refused (an old kernel, a cgroup with
		// controllers of its own): the tree walk still names leftovers.
		note(ev, "I3 via the process-tree walk: starting in %s failed: %v", g.dir, err)
		g.close()
		g = &group{}
		cmd.SysProcAttr.UseCgroupFD = false
		err = cmd.Start()
	}
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		res := &RunResult{ExitCode: -1}
		res.Findings = append(res.Findings, Finding{Rule: "I4", Message: fmt.Sprintf("the installer could not be started: %v", err)})
		return res, nil
	}
	var streams sync.WaitGroup
	streams.Add(2)
	go func() { defer streams.Done(); copyOutput("stdout", outR, ev.Output) }()
	go func() { defer streams.Done(); copyOutput("stderr", errR, ev.Output) }()

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	limit := time.NewTimer(req.Timeout)
	defer limit.Stop()

	res := &RunResult{}
	reaped := false
	select {
	case err := <-exited:
		reaped = true
		// Output of processes left behind would keep the pipes open.
		waitTimeout(&streams, 200*time.Millisecond)
		res.ExitCode, res.Signal = exitStatus(cmd, err)
		if f := procs.Exited(res.ExitCode, res.Signal); f != nil {
			res.Findings = append(res.Findings, Finding(*f))
		}
		left := g.members(self)
		if len(left) > 0 {
			// Let processes caught between fork and exec show their own
			// command line.
			time.Sleep(100 * time.Millisecond)
			left = g.members(self)
		}
		if f := procs.LeftRunning(left); f != nil {
			res.Findings = append(res.Findings, Finding(*f))
		}
	case <-limit.C:
		res.ExitCode = -1
		tree := g.members(self)
		for _, f := range procs.TimedOut(req.Timeout, tree) {
			res.Findings = append(res.Findings, Finding(f))
		}
	case what := <-w.powerc:
		// The wrapper stopped the installer there, as a reboot would (I5).
		res.ExitCode = -1
		res.Findings = append(res.Findings, Finding{Rule: "I5", Message: power.Message(what)})
	case <-ctx.Done():
		g.kill(self)
		cmd.Process.Kill()
		<-exited
		return nil, fmt.Errorf("run cancelled: %w", ctx.Err())
	}
	g.kill(self)
	if !reaped {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	}
	waitTimeout(&streams, time.Second)
	outR.Close()
	errR.Close()
	res.Findings = append(res.Findings, w.findings()...)
	return res, nil
}

func exitStatus(cmd *exec.Cmd, err error) (int, string) {
	if cmd.ProcessState == nil {
		return -1, ""
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, unix.SignalName(ws.Signal())
	}
	return cmd.ProcessState.ExitCode(), ""
}

// copyOutput sends r's data as timestamped chunks of at most one line
// (or ChunkSize bytes).
func copyOutput(stream string, r io.Reader, out func(Output)) {
	br := bufio.NewReaderSize(r, ChunkSize)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 && out != nil {
			out(Output{Time: time.Now().UTC(), Stream: stream, Data: append([]byte(nil), line...)})
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	select {
	case <-c:
	case <-time.After(d):
	}
}

//go:build linux

package sandbox

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/netwatch"
	"github.com/pib-dev/pib/internal/power"
	"github.com/pib-dev/pib/internal/procs"
)

// Main runs the sandbox's own processes when the running binary was
// re-executed as one of them, and returns at once otherwise. Call it first
// thing in main (and in TestMain of tests that use Run):
//
//	func main() { sandbox.Main(); … }
func Main() {
	switch {
	case os.Getenv(envInit) == "1":
		os.Exit(runInit())
	case os.Getenv(envExec) == "1":
		runExec() // never returns
	}
}

// The init's fds, as passed by Run.
const (
	fdLog     = 3
	fdEvents  = 4
	fdGo      = 5
	fdCgroup  = 6 // the installer cgroup's cgroup.procs, open for writing
	fdPackage = 7
)

const (
	packagesDir = "/var/tmp/pib/packages"
	pibRunDir   = "/run/pib"
)

// sandboxInit is the state of PID 1 inside the sandbox.
type sandboxInit struct {
	cfg         initConfig
	log         *logWriter
	events      *json.Encoder
	evMu        sync.Mutex
	net         *netwatch.Recorder
	attempts    *attempts
	cgroupProcs *os.File
	// devices are the host devices the build gets (mount fds, until bound).
	devices map[string]int
	// boundResolv is the image's resolv.conf with the DNS recorder's bound
	// over it; createdResolv is set when the image had none.
	boundResolv, createdResolv string
}

func (s *sandboxInit) emit(e event) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	s.events.Encode(e)
}

func (s *sandboxInit) finding(rule, msg, detail string) {
	s.log.note("finding %s: %s", rule, msg)
	s.emit(event{Kind: "finding", Finding: &Finding{Rule: rule, Message: msg, Detail: detail}})
}

func runInit() int {
	// The kernel reports reboot(2) in this PID namespace as our death by
	// SIGHUP/SIGINT; ignoring both keeps that report unambiguous.
	// Every other signal an installer (root, same uid) could send us would
	// otherwise end the Go runtime — a way to turn its own failed build
	// into a platform error. Only SIGCHLD and SIGURG (goroutine
	// preemption) keep their meaning; SIGKILL and SIGSTOP from inside the
	// namespace never reach an init.
	for sig := syscall.Signal(1); sig < 32; sig++ {
		if sig != syscall.SIGCHLD && sig != syscall.SIGURG && sig != syscall.SIGKILL && sig != syscall.SIGSTOP {
			signal.Ignore(sig)
		}
	}
	// Our inherited descriptors must not reach the installer: the event
	// stream would let it forge findings or its exit status.
	for fd := fdLog; fd < fdPackage+256; fd++ {
		unix.CloseOnExec(fd)
	}
	// Not dumpable: the installer (same uid) must not read our memory,
	// environment or /proc/1/exe (the pib binary on the host).
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)

	s := &sandboxInit{
		log:         &logWriter{w: os.NewFile(fdLog, "log")},
		events:      json.NewEncoder(os.NewFile(fdEvents, "events")),
		cgroupProcs: os.NewFile(fdCgroup, "cgroup.procs"),
	}
	if err := json.Unmarshal([]byte(os.Getenv(envConfig)), &s.cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox init: bad config:", err)
		return 1
	}
	// Wait until Run has put us into the build's cgroups; the go socket
	// then brings the build's layers as mounts.
	layers, err := receiveMounts(fdGo, s.cfg.Layers+1)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox init:", err)
		return 1
	}
	if err := s.run(layers); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox init:", err)
		s.log.note("sandbox error: %v", err)
		return 1
	}
	return 0
}

func (s *sandboxInit) run(layers []int) error {
	if err := s.setupRoot(layers); err != nil {
		return err
	}
	nr, err := netwatch.StartRecorder(s.log.note)
	if err != nil {
		return fmt.Errorf("network recorder: %w", err)
	}
	s.net = nr
	before, err := netwatch.Snapshot()
	if err != nil {
		return fmt.Errorf("record network state: %w", err)
	}
	if err := s.setupInside(); err != nil {
		return err
	}
	resolvBefore, _ := os.ReadFile("/etc/resolv.conf")
	powerEvents := startPowerWatch(s)

	argv, err := installerCommand(s.cfg.Installer, s.cfg.Packages)
	if err != nil {
		return err
	}
	s.log.note("running %s", strings.Join(argv, " "))
	exitCode, sig, ended := s.runInstaller(argv, powerEvents)

	switch ended {
	case endExit:
		if f := procs.Exited(exitCode, sig); f != nil {
			s.finding(f.Rule, f.Message, f.Detail)
		}
		// I3: whatever is still running was started by the installer and
		// not waited for.
		left := listProcesses()
		if len(left) > 0 {
			// Let processes caught between fork and exec show their own
			// command line.
			time.Sleep(100 * time.Millisecond)
			left = listProcesses()
		}
		if f := procs.LeftRunning(left); f != nil {
			s.finding(f.Rule, f.Message, f.Detail)
		}
	case endTimeout:
		for _, f := range procs.TimedOut(time.Duration(s.cfg.TimeoutMS)*time.Millisecond, listProcesses()) {
			s.finding(f.Rule, f.Message, f.Detail)
		}
	case endPower:
		// The finding was emitted by the power watcher.
	}
	killAll()
	s.emit(event{Kind: "exit", ExitCode: exitCode, Signal: sig})

	after, err := netwatch.Snapshot()
	if err != nil {
		s.log.note("record network state after the install: %v", err)
	} else {
		for _, d := range netwatch.Diff(before, after) {
			s.finding("I6", d, "")
		}
	}
	if resolvAfter, err := os.ReadFile("/etc/resolv.conf"); err == nil && string(resolvAfter) != string(resolvBefore) {
		s.finding("I6", "the installer changed /etc/resolv.conf; installers must not change network configuration", string(resolvAfter))
	}
	s.unbindResolv()
	if s.attempts != nil {
		for _, f := range s.attempts.findings() {
			s.finding(f.Rule, f.Message, f.Detail)
		}
	}
	s.net.Stop()
	for _, f := range s.net.Findings() {
		s.finding("I2", f.Message, f.Detail)
	}
	os.RemoveAll(packagesDir)
	os.Remove(filepath.Dir(packagesDir)) // only if the install left it empty
	s.emit(event{Kind: "done"})
	return nil
}

type ending int

const (
	endExit ending = iota
	endTimeout
	endPower
)

// runInstaller runs argv through the exec stage and waits for it, the time
// limit or a power event, reaping orphans meanwhile.
func (s *sandboxInit) runInstaller(argv []string, powerc <-chan string) (code int, sig string, how ending) {
	cmd := exec.Command("/proc/self/exe", argv...)
	cmd.Args[0] = "pib-sandbox-exec"
	cmd.Dir = packagesDir
	cmd.Env = append(installerEnv(), envExec+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// The exec stage hands back its seccomp listener on this socket.
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		s.finding("I4", fmt.Sprintf("the installer could not be started: %v", err), "")
		return -1, "", endExit
	}
	ours, theirs := os.NewFile(uintptr(pair[0]), "notify"), os.NewFile(uintptr(pair[1]), "notify")
	s.attempts = s.watchSeccomp(ours)
	cmd.ExtraFiles = []*os.File{theirs}
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		outW.Close()
		errW.Close()
		theirs.Close()
		s.finding("I4", fmt.Sprintf("the installer could not be started: %v", err), "")
		return -1, "", endExit
	}
	outW.Close()
	errW.Close()
	theirs.Close()
	// Into the installer's cgroup (the process limit) before it may go on:
	// the exec stage waits for our byte on the socket.
	pid := cmd.Process.Pid
	if _, err := s.cgroupProcs.WriteString(strconv.Itoa(pid)); err != nil {
		cmd.Process.Kill()
		s.log.note("cannot move the installer into its cgroup: %v", err)
	}
	ours.Write([]byte{1})
	var logs sync.WaitGroup
	logs.Add(2)
	go func() { defer logs.Done(); s.log.copyLines("stdout", outR) }()
	go func() { defer logs.Done(); s.log.copyLines("stderr", errR) }()

	exited := make(chan unix.WaitStatus, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			exited <- ws
			return
		}
	}()
	reap := time.NewTicker(500 * time.Millisecond)
	defer reap.Stop()
	limit := time.NewTimer(time.Duration(s.cfg.TimeoutMS) * time.Millisecond)
	defer limit.Stop()
	for {
		select {
		case ws := <-exited:
			// Output of processes left behind would keep the pipes open.
			waitTimeout(&logs, 200*time.Millisecond)
			if ws.Signaled() {
				s.log.note("installer killed by signal %s", unix.SignalName(ws.Signal()))
				return -1, unix.SignalName(ws.Signal()), endExit
			}
			s.log.note("installer exited with status %d", ws.ExitStatus())
			return ws.ExitStatus(), "", endExit
		case <-limit.C:
			s.log.note("time limit reached")
			return -1, "", endTimeout
		case what := <-powerc:
			s.finding("I5", power.Message(what), "")
			return -1, "", endPower
		case <-reap.C:
			reapOrphans(pid)
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

// reapOrphans collects zombies reparented to us, but never the installer's
// own status (its waiter needs it).
func reapOrphans(installer int) {
	for {
		var info unix.Siginfo
		// waitid(P_ALL, WEXITED|WNOHANG|WNOWAIT) peeks without reaping.
		_, _, e := unix.Syscall6(unix.SYS_WAITID, unix.P_ALL, 0, uintptr(unsafe.Pointer(&info)),
			unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, 0, 0)
		if e != 0 {
			return
		}
		pid := siginfoPid(&info)
		if pid == 0 || pid == installer {
			return
		}
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	}
}

// killAll kills every process of the namespace but us and reaps them.
func killAll() {
	for range 50 {
		procs := listProcesses()
		if len(procs) == 0 {
			break
		}
		// From a PID namespace's init, kill(-1) reaches every other
		// process of the namespace at once.
		unix.Kill(-1, unix.SIGKILL)
		for _, p := range procs {
			unix.Kill(p.PID, unix.SIGKILL)
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// installerEnv is the installer's whole environment.
func installerEnv() []string {
	return []string{
		"PATH=" + pibRunDir + "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"LANG=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive",
		"DEBCONF_NONINTERACTIVE_SEEN=true",
	}
}

// installerCommand returns how the installer runs inside the sandbox,
// relative to the packages folder (P2). A .deb is installed together with
// the group's other .deb files, so its dependencies among them resolve
// offline.
func installerCommand(installer string, packages []string) ([]string, error) {
	switch strings.ToLower(filepath.Ext(installer)) {
	case ".sh":
		return []string{"/bin/sh", "./" + installer}, nil
	case ".exe":
		return []string{"./" + installer}, nil
	case ".run":
		// A self-extracting archive is a shell script with a payload;
		// one that is really an ELF program is executed as such.
		if isELF(filepath.Join(packagesDir, installer)) {
			return []string{"./" + installer}, nil
		}
		return []string{"/bin/sh", "./" + installer}, nil
	case ".deb":
		argv := []string{"dpkg", "-i", "--force-confold", "./" + installer}
		for _, p := range packages {
			if strings.EqualFold(filepath.Ext(p), ".deb") {
				argv = append(argv, "./"+p)
			}
		}
		return argv, nil
	case ".rpm":
		return []string{"/bin/sh", "-c", `command -v rpm >/dev/null || { echo "pib: this base image has no rpm; an .rpm installer needs an RPM-based image" >&2; exit 127; }; exec rpm -i "$0"`, "./" + installer}, nil
	}
	return nil, fmt.Errorf("installer %q: want a .sh, .run, .exe, .deb or .rpm file (P2)", installer)
}

// logWriter writes the I8 build log: one line per output line, stamped.
// Past maxLogBytes only pib's own notes are written, so a chatty (or
// hostile) installer cannot fill the host's disk through its log.
type logWriter struct {
	mu        sync.Mutex
	w         io.Writer
	n         int64
	truncated bool
}

const maxLogBytes = 32 << 20

func (l *logWriter) line(stream, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > maxLogBytes && stream != "pib" {
		if !l.truncated {
			l.truncated = true
			fmt.Fprintf(l.w, "%s %-6s| %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "pib", "log limit reached: further installer output is dropped")
		}
		return
	}
	n, _ := fmt.Fprintf(l.w, "%s %-6s| %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), stream, text)
	l.n += int64(n)
}

func (l *logWriter) note(format string, args ...any) { l.line("pib", fmt.Sprintf(format, args...)) }

func (l *logWriter) copyLines(stream string, r io.ReadCloser) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		s, err := br.ReadString('\n')
		if s != "" {
			l.line(stream, strings.TrimRight(s, "\r\n"))
		}
		if err != nil {
			return
		}
	}
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

// siginfoPid reads si_pid, which sits right after the three leading ints
// on every 64-bit Linux architecture.
func siginfoPid(si *unix.Siginfo) int {
	b := (*[24]byte)(unsafe.Pointer(si))
	return int(int32(binary.NativeEndian.Uint32(b[16:20])))
}

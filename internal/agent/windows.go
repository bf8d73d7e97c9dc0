package agent

// The Windows runner's logic, kept free of Windows calls so it builds and
// is tested on Linux: winRunner drives a winOS (runner_windows.go is the
// real one; windows_test.go fakes it) and words the findings.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/pib-dev/pib/internal/netwatch"
)

// winOS is what the Windows runner needs from the OS.
type winOS interface {
	// Start starts argv in dir inside a new job object (I3), with stdin
	// on NUL and stdout/stderr to the writers.
	Start(argv []string, dir string, stdout, stderr io.Writer) (winJob, error)
	// PendingReboot names the pending-reboot registry entries present now.
	PendingReboot() ([]string, error)
	// PowerShell runs a script with -NoProfile -NonInteractive and returns
	// its stdout.
	PowerShell(ctx context.Context, script string) ([]byte, error)
	// PowerOff shuts Windows down.
	PowerOff() error
}

// winJob is one installer process and its job object.
type winJob interface {
	// Wait waits for the installer process itself (not its job).
	Wait() (exitCode int, err error)
	// PIDs lists the processes still in the job.
	PIDs() ([]int, error)
	// Terminate ends every process of the job.
	Terminate() error
	Close() error
}

// Windows exit codes that mean "installed, reboot required" (I5):
// ERROR_SUCCESS_REBOOT_REQUIRED and ERROR_SUCCESS_REBOOT_INITIATED.
const (
	exitRebootRequired  = 3010
	exitRebootInitiated = 1641
)

// pendingRebootKeys are where Windows records a reboot it waits for; the
// runner compares them before and after the install (I5).
var pendingRebootKeys = []string{
	`HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending`,
	`HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired`,
	`HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\PendingFileRenameOperations`, // a value, not a key
}

// windowsCommand is how a Windows installer runs (P2), relative to dir;
// log is where msiexec writes its verbose log.
func windowsCommand(dir, installer, log string) ([]string, error) {
	path := filepath.Join(dir, installer)
	switch strings.ToLower(filepath.Ext(installer)) {
	case ".msi":
		return []string{"msiexec", "/i", path, "/qn", "/norestart", "/l*v", log}, nil
	case ".ps1":
		return []string{"powershell", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", path}, nil
	case ".bat":
		return []string{"cmd", "/c", path}, nil
	case ".exe":
		return []string{path}, nil
	}
	return nil, fmt.Errorf("installer %q: want a .msi, .ps1, .bat or .exe file (P2)", installer)
}

// PowerShell scripts whose JSON the I6 snapshot parses.
const (
	psRoutes    = `Get-NetRoute | Select-Object DestinationPrefix,NextHop,InterfaceAlias,RouteMetric | ConvertTo-Json -Compress`
	psFirewall  = `Get-NetFirewallRule | Select-Object Name,DisplayName,Enabled,Direction,Action,Profile | ConvertTo-Json -Compress`
	psIfaces    = `Get-NetIPInterface | Select-Object InterfaceAlias,AddressFamily,ConnectionState,Dhcp,Forwarding,NlMtu | ConvertTo-Json -Compress`
	psProcesses = `Get-CimInstance Win32_Process | Select-Object ProcessId,ParentProcessId,Name,CommandLine | ConvertTo-Json -Compress`
)

// psObjects decodes ConvertTo-Json output: one object, an array of them,
// or nothing at all (an empty result prints nothing). PowerShell 5.1
// writes enums as numbers, 7 as numbers too unless -EnumsAsStrings.
func psObjects(b []byte) ([]map[string]any, error) {
	b = trimBOM(b)
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, nil
	}
	var many []map[string]any
	if err := json.Unmarshal(b, &many); err == nil {
		return many, nil
	}
	var one map[string]any
	if err := json.Unmarshal(b, &one); err != nil {
		return nil, fmt.Errorf("parse ConvertTo-Json output: %w", err)
	}
	return []map[string]any{one}, nil
}

func trimBOM(b []byte) []byte {
	return []byte(strings.TrimPrefix(string(b), "\ufeff"))
}

// psField renders one property for a state line.
func psField(o map[string]any, k string) string {
	switch v := o[k].(type) {
	case nil:
		return "-"
	case string:
		return v
	case float64:
		return fmt.Sprint(v)
	case bool:
		return fmt.Sprint(v)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// winNetState turns the three cmdlets' JSON into the same kind of state
// the Linux snapshot has, so netwatch.Diff words the I6 findings alike.
func winNetState(routes, firewall, ifaces []byte) (netwatch.State, error) {
	st := netwatch.State{}
	add := func(kind string, b []byte, line func(map[string]any) string) error {
		objs, err := psObjects(b)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		for _, o := range objs {
			st[kind] = append(st[kind], line(o))
		}
		slices.Sort(st[kind])
		return nil
	}
	err := errors.Join(
		add("route", routes, func(o map[string]any) string {
			return fmt.Sprintf("%s via %s dev %s metric %s", psField(o, "DestinationPrefix"), psField(o, "NextHop"), psField(o, "InterfaceAlias"), psField(o, "RouteMetric"))
		}),
		add("firewall rule", firewall, func(o map[string]any) string {
			return fmt.Sprintf("%s (%s) enabled %s direction %s action %s profile %s", psField(o, "Name"), psField(o, "DisplayName"),
				psField(o, "Enabled"), psField(o, "Direction"), psField(o, "Action"), psField(o, "Profile"))
		}),
		add("interface", ifaces, func(o map[string]any) string {
			return fmt.Sprintf("%s family %s state %s dhcp %s forwarding %s mtu %s", psField(o, "InterfaceAlias"), psField(o, "AddressFamily"),
				psField(o, "ConnectionState"), psField(o, "Dhcp"), psField(o, "Forwarding"), psField(o, "NlMtu"))
		}),
	)
	return st, err
}

// winProcess is one process from psProcesses.
type winProcess struct {
	PID, PPID     int
	Name, Cmdline string
}

func (p winProcess) String() string {
	return fmt.Sprintf("pid %d (parent %d): %s", p.PID, p.PPID, p.Cmdline)
}

// winProcesses picks pids out of psProcesses' JSON, in pid order.
func winProcesses(b []byte, pids []int) ([]winProcess, error) {
	objs, err := psObjects(b)
	if err != nil {
		return nil, err
	}
	var out []winProcess
	for _, o := range objs {
		pid, _ := o["ProcessId"].(float64)
		if !slices.Contains(pids, int(pid)) {
			continue
		}
		ppid, _ := o["ParentProcessId"].(float64)
		p := winProcess{PID: int(pid), PPID: int(ppid), Name: psField(o, "Name"), Cmdline: psField(o, "CommandLine")}
		if p.Cmdline == "-" || p.Cmdline == "" {
			p.Cmdline = "[" + p.Name + "]"
		}
		out = append(out, p)
	}
	// A pid the query no longer saw still gets named.
	for _, pid := range pids {
		if !slices.ContainsFunc(out, func(p winProcess) bool { return p.PID == pid }) {
			out = append(out, winProcess{PID: pid, Cmdline: "[exited before it could be named]"})
		}
	}
	slices.SortFunc(out, func(a, b winProcess) int { return a.PID - b.PID })
	return out, nil
}

// decodeLog turns an msiexec log (UTF-16LE with a BOM) into text.
func decodeLog(b []byte) string {
	if len(b) >= 2 && b[0] == 0xff && b[1] == 0xfe {
		u := make([]uint16, (len(b)-2)/2)
		for i := range u {
			u[i] = uint16(b[2+2*i]) | uint16(b[3+2*i])<<8
		}
		return string(utf16.Decode(u))
	}
	return string(b)
}

// winRunner runs installers in a Windows guest.
type winRunner struct {
	dir string
	os  winOS
	// readFile reads the msiexec log (os.ReadFile; tests replace it).
	readFile func(string) ([]byte, error)
}

func (r *winRunner) Dir() string     { return r.dir }
func (r *winRunner) PowerOff() error { return r.os.PowerOff() }

func (r *winRunner) netState(ctx context.Context) (netwatch.State, error) {
	var outs [3][]byte
	for i, s := range []string{psRoutes, psFirewall, psIfaces} {
		b, err := r.os.PowerShell(ctx, s)
		if err != nil {
			return nil, err
		}
		outs[i] = b
	}
	return winNetState(outs[0], outs[1], outs[2])
}

// outputWriter turns a stream into timestamped Output chunks.
type outputWriter struct {
	stream string
	ev     Events
}

func (w outputWriter) Write(b []byte) (int, error) {
	if w.ev.Output != nil {
		for rest := b; len(rest) > 0; {
			n := min(len(rest), ChunkSize)
			w.ev.Output(Output{Time: time.Now().UTC(), Stream: w.stream, Data: append([]byte(nil), rest[:n]...)})
			rest = rest[n:]
		}
	}
	return len(b), nil
}

func (r *winRunner) Run(ctx context.Context, req RunRequest, ev Events) (*RunResult, error) {
	log := filepath.Join(r.dir, req.Installer+".msi-log.txt")
	argv, err := windowsCommand(r.dir, req.Installer, log)
	if err != nil {
		return nil, err
	}
	pendingBefore, err := r.os.PendingReboot()
	if err != nil {
		return nil, fmt.Errorf("read the pending-reboot registry entries (I5): %w", err)
	}
	netBefore, err := r.netState(ctx)
	if err != nil {
		return nil, fmt.Errorf("record the network state (I6): %w", err)
	}
	note(ev, "I3 via a job object; running %s", strings.Join(argv, " "))
	job, err := r.os.Start(argv, r.dir, outputWriter{"stdout", ev}, outputWriter{"stderr", ev})
	if err != nil {
		return &RunResult{ExitCode: -1, Findings: []Finding{{Rule: "I4", Message: fmt.Sprintf("the installer could not be started: %v", err)}}}, nil
	}
	defer job.Close()
	type waited struct {
		code int
		err  error
	}
	exited := make(chan waited, 1)
	go func() { c, err := job.Wait(); exited <- waited{c, err} }()
	limit := time.NewTimer(req.Timeout)
	defer limit.Stop()
	res := &RunResult{}
	select {
	case w := <-exited:
		if w.err != nil {
			job.Terminate()
			return nil, fmt.Errorf("wait for the installer: %w", w.err)
		}
		res.ExitCode = w.code
		switch w.code {
		case 0:
		case exitRebootRequired, exitRebootInitiated:
			what := "requires a reboot to finish (exit code 3010, ERROR_SUCCESS_REBOOT_REQUIRED)"
			if w.code == exitRebootInitiated {
				what = "started a reboot (exit code 1641, ERROR_SUCCESS_REBOOT_INITIATED)"
			}
			res.Findings = append(res.Findings, Finding{Rule: "I5", Message: "the installer " + what + "; installers must never reboot, halt or power off"})
			res.Findings = append(res.Findings, Finding{Rule: "I4", Message: fmt.Sprintf("the installer exited with status %d; status 0 means success, anything else fails the build", w.code)})
		default:
			res.Findings = append(res.Findings, Finding{Rule: "I4", Message: fmt.Sprintf("the installer exited with status %d; status 0 means success, anything else fails the build", w.code)})
		}
		left, err := r.jobProcesses(ctx, job)
		if err != nil {
			note(ev, "list the processes left in the job: %v", err)
		}
		if len(left) > 0 {
			var lines []string
			for _, p := range left {
				lines = append(lines, p.String())
			}
			res.Findings = append(res.Findings, Finding{Rule: "I3",
				Message: fmt.Sprintf("%d process(es) the installer started were still running when it exited; installers must wait for what they start", len(left)),
				Detail:  strings.Join(lines, "\n")})
		}
	case <-limit.C:
		res.ExitCode = -1
		tree, _ := r.jobProcesses(ctx, job)
		var lines []string
		for _, p := range tree {
			lines = append(lines, p.String())
		}
		// Windows shows no "blocked reading stdin" as /proc does: stdin is
		// NUL, so a prompt that reads it gets end of file. I1 cannot be
		// told apart here; the message says so.
		res.Findings = append(res.Findings, Finding{Rule: "I7",
			Message: fmt.Sprintf("the installer did not finish within the time limit (%s); it may be waiting for input it cannot get (I1), or for a window nobody sees", req.Timeout),
			Detail:  "process tree at the time limit:\n" + strings.Join(lines, "\n")})
	case <-ctx.Done():
		job.Terminate()
		return nil, fmt.Errorf("run cancelled: %w", ctx.Err())
	}
	if err := job.Terminate(); err != nil {
		note(ev, "terminate the job: %v", err)
	}
	if strings.EqualFold(filepath.Ext(req.Installer), ".msi") && r.readFile != nil {
		if b, err := r.readFile(log); err == nil {
			text := decodeLog(b)
			if len(text) > 1<<20 {
				text = text[:1<<20] + "\n…(msiexec log cut at 1 MiB)"
			}
			outputWriter{"pib", ev}.Write([]byte("msiexec log:\n" + text))
		}
	}
	if pendingAfter, err := r.os.PendingReboot(); err != nil {
		note(ev, "read the pending-reboot registry entries after the install: %v", err)
	} else {
		for _, k := range pendingAfter {
			if !slices.Contains(pendingBefore, k) {
				res.Findings = append(res.Findings, Finding{Rule: "I5",
					Message: fmt.Sprintf("the installer left Windows waiting for a reboot (%s is set); installers must never reboot, halt or power off", k)})
			}
		}
	}
	if netAfter, err := r.netState(ctx); err != nil {
		note(ev, "record the network state after the install: %v", err)
	} else {
		for _, d := range netwatch.Diff(netBefore, netAfter) {
			res.Findings = append(res.Findings, Finding{Rule: "I6", Message: d})
		}
	}
	return res, nil
}

// jobProcesses names the processes still in the job.
func (r *winRunner) jobProcesses(ctx context.Context, job winJob) ([]winProcess, error) {
	pids, err := job.PIDs()
	if err != nil || len(pids) == 0 {
		return nil, err
	}
	b, err := r.os.PowerShell(ctx, psProcesses)
	if err != nil {
		// Still name them, by pid.
		return winProcesses(nil, pids)
	}
	return winProcesses(b, pids)
}

//go:build linux

// Package procs reads the processes an installer left or is blocked in,
// from /proc, and words the findings about them (I1, I3, I7) the same way
// for every backend: the sandbox's init and the VM guest agent both call
// it, so one installer gives the same findings on both.
package procs

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Process is one live process as /proc shows it.
type Process struct {
	PID, PPID int
	Name      string // comm
	Cmdline   string
	State     string
	// ReadingInput names what the process is blocked reading (I1), if it is.
	ReadingInput string
}

func (p Process) String() string {
	s := fmt.Sprintf("pid %d (parent %d) %s: %s", p.PID, p.PPID, p.State, p.Cmdline)
	if p.ReadingInput != "" {
		s += " [blocked reading " + p.ReadingInput + "]"
	}
	return s
}

// Read reads pid from /proc; ok is false when it is gone or a zombie
// (dead, only not yet reaped).
func Read(pid int) (p Process, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, false
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	s := string(stat)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return p, false
	}
	p = Process{PID: pid, Name: s[open+1 : close]}
	f := strings.Fields(s[close+1:])
	if len(f) < 2 {
		return p, false
	}
	p.State = f[0]
	p.PPID, _ = strconv.Atoi(f[1])
	if p.State == "Z" || p.State == "X" {
		return p, false
	}
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	p.Cmdline = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
	if p.Cmdline == "" {
		p.Cmdline = "[" + p.Name + "]"
	}
	p.ReadingInput = ReadingInput(pid)
	return p, true
}

// List lists the live processes whose PID keep accepts (nil: all), in
// PID order.
func List(keep func(pid int) bool) []Process {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || (keep != nil && !keep(pid)) {
			continue
		}
		if p, ok := Read(pid); ok {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// Descendants lists the live processes below pid (not pid itself), in
// PID order: the process-tree walk for when no cgroup holds the installer.
func Descendants(pid int) []Process {
	all := List(nil)
	parent := map[int]int{}
	for _, p := range all {
		parent[p.PID] = p.PPID
	}
	var out []Process
	for _, p := range all {
		for q, n := p.PPID, 0; q > 0 && n < 4096; q, n = parent[q], n+1 {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// ReadingInput tells whether pid sleeps in a read(2)-like call or in
// opening a FIFO, and on what.
func ReadingInput(pid int) string {
	wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
	if string(wchan) == "wait_for_partner" || string(wchan) == "fifo_open" {
		return "a FIFO it is opening"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return ""
	}
	nr, err := strconv.Atoi(f[0])
	if err != nil {
		return ""
	}
	switch nr {
	case unix.SYS_READ, unix.SYS_READV, unix.SYS_PREAD64:
	default:
		return ""
	}
	fd, err := strconv.ParseInt(strings.TrimPrefix(f[1], "0x"), 16, 64)
	if err != nil {
		return ""
	}
	target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	if err != nil {
		target = "?"
	}
	if fd == 0 {
		return fmt.Sprintf("stdin (%s)", target)
	}
	return fmt.Sprintf("fd %d (%s)", fd, target)
}

// Finding is a rule finding's text, for the caller to put in its own type.
type Finding struct {
	Rule, Message, Detail string
}

// LeftRunning words the I3 finding for the processes still running when
// the installer exited; nil when there are none.
func LeftRunning(left []Process) *Finding {
	if len(left) == 0 {
		return nil
	}
	var lines []string
	for _, p := range left {
		lines = append(lines, p.String())
	}
	return &Finding{"I3", fmt.Sprintf("%d process(es) the installer started were still running when it exited; installers must wait for what they start", len(left)),
		strings.Join(lines, "\n")}
}

// TimedOut words the findings for an installer stopped at its time limit:
// I1 when a process of tree was blocked reading input, then I7.
func TimedOut(limit time.Duration, tree []Process) []Finding {
	var lines, blocked []string
	for _, p := range tree {
		lines = append(lines, p.String())
		if p.ReadingInput != "" {
			blocked = append(blocked, fmt.Sprintf("%d (%s) reading %s", p.PID, p.Name, p.ReadingInput))
		}
	}
	msg := fmt.Sprintf("the installer did not finish within the time limit (%s)", limit)
	var out []Finding
	if len(blocked) > 0 {
		msg += "; it may be waiting for input (I1): " + strings.Join(blocked, ", ")
		out = append(out, Finding{"I1", "the installer may be waiting for input: " + strings.Join(blocked, ", ") + "; installers must run unattended (stdin is empty, there is no terminal)", strings.Join(lines, "\n")})
	}
	return append(out, Finding{"I7", msg, "process tree at the time limit:\n" + strings.Join(lines, "\n")})
}

// Exited words the I4 finding for how the installer ended on its own; nil
// for status 0.
func Exited(code int, signal string) *Finding {
	if signal != "" {
		return &Finding{"I4", fmt.Sprintf("the installer was killed by signal %s; installers must exit with status 0", signal), ""}
	}
	if code != 0 {
		return &Finding{"I4", fmt.Sprintf("the installer exited with status %d; status 0 means success, anything else fails the build", code), ""}
	}
	return nil
}

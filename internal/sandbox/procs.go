package sandbox

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// proc is one process of the sandbox as /proc shows it.
type proc struct {
	PID, PPID int
	Name      string // comm
	Cmdline   string
	State     string
	// ReadingInput names what the process is blocked reading (I1), if it is.
	ReadingInput string
}

func (p proc) String() string {
	s := fmt.Sprintf("pid %d (parent %d) %s: %s", p.PID, p.PPID, p.State, p.Cmdline)
	if p.ReadingInput != "" {
		s += " [blocked reading " + p.ReadingInput + "]"
	}
	return s
}

// listProcesses lists the live processes of our PID namespace but PID 1
// (us), in PID order. Zombies are dead and not listed.
func listProcesses() []proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 || pid == os.Getpid() {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(stat)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		p := proc{PID: pid, Name: s[open+1 : close]}
		f := strings.Fields(s[close+1:])
		if len(f) < 2 {
			continue
		}
		p.State = f[0]
		p.PPID, _ = strconv.Atoi(f[1])
		if p.State == "Z" || p.State == "X" {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		p.Cmdline = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		if p.Cmdline == "" {
			p.Cmdline = "[" + p.Name + "]"
		}
		p.ReadingInput = readingInput(pid)
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// readingInput tells whether pid sleeps in a read(2)-like call or in
// opening a FIFO, and on what.
func readingInput(pid int) string {
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

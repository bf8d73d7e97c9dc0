//go:build linux

package pipeline

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ownerSuffix names the file beside a run's staging folder that says which
// process on which machine runs it.
const ownerSuffix = ".owner"

// writeOwner records this process (host, PID and start time, so a reused
// PID is not mistaken for it) in path.
func writeOwner(path string) error {
	host, _ := os.Hostname()
	pid := os.Getpid()
	return os.WriteFile(path, []byte(fmt.Sprintf("%s %d %s\n", host, pid, procStart(pid))), 0o600)
}

// ownerDead reports whether the owner file at path names a process of this
// machine that no longer runs. Unknown or foreign owners are not dead: the
// heartbeat decides for them.
func ownerDead(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	f := strings.Fields(string(data))
	if len(f) != 3 {
		return false
	}
	host, _ := os.Hostname()
	pid, err := strconv.Atoi(f[1])
	if err != nil || f[0] != host {
		return false
	}
	if pid == os.Getpid() {
		return false
	}
	return procStart(pid) != f[2]
}

// procStart is the start time of process pid in clock ticks since boot
// (field 22 of /proc/PID/stat), or "" when it does not exist.
func procStart(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces: count from after it.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

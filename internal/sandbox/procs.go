//go:build linux

package sandbox

import (
	"os"

	"github.com/pib-dev/pib/internal/procs"
)

// listProcesses lists the live processes of our PID namespace but PID 1
// (us), in PID order. Zombies are dead and not listed.
func listProcesses() []procs.Process {
	self := os.Getpid()
	return procs.List(func(pid int) bool { return pid != 1 && pid != self })
}

//go:build linux

package vmbuild

import (
	"os/exec"
	"strings"
)

// detachLoops detaches the loop devices backed by file (a killed build's).
func detachLoops(file string) {
	out, err := exec.Command("losetup", "--noheadings", "--output", "NAME", "--associated", file).Output()
	if err != nil {
		return
	}
	for _, dev := range strings.Fields(string(out)) {
		exec.Command("losetup", "--detach", dev).Run()
	}
}

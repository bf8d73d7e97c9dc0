//go:build linux

package vmbuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pib-dev/pib/internal/disk"
	"github.com/pib-dev/pib/internal/machine"
)

// Where pib puts itself in the guest (fixed by the agent contract, and
// left out of the layer: BootNoise).
const (
	GuestBinary   = "/usr/local/lib/pib/pib"
	GuestUnit     = "/etc/systemd/system/pib-agent.service"
	guestUnitLink = "/etc/systemd/system/multi-user.target.wants/pib-agent.service"
	guestPort     = "/dev/virtio-ports/" + machine.AgentPort
)

// agentUnit starts the agent once the boot has reached multi-user.target
// (After=, Type=simple: it does not hold the boot up), so the installer
// runs on a settled system, as it would on a launched instance. udev
// makes the port's /dev/virtio-ports link a moment after the device
// appears, and virtio ports have no device unit to order after: the unit
// waits for the link itself. Delegate=yes: the agent makes the
// installer's cgroup below its own. No Restart=: an agent that dies ends the
// session, and the host reports that.
const agentUnit = `[Unit]
Description=pib build agent (virtio-serial ` + machine.AgentPort + `)
After=multi-user.target systemd-udev-trigger.service

[Service]
Type=simple
# The agent runs each installer in a cgroup of its own below the agent's
# (I3: what is left in it at exit is named, then killed).
Delegate=yes
ExecStartPre=/bin/sh -c 'for i in $(seq 600); do [ -e ` + guestPort + ` ] && exit 0; sleep 0.1; done; echo "no ` + guestPort + `" >&2; exit 1'
ExecStart=` + GuestBinary + ` agent --port ` + guestPort + `
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`

// copyDisk makes a throw-away copy of the base disk: a reflink where the
// file system has them (instant), else a sparse copy.
func copyDisk(ctx context.Context, src, dst string) error {
	out, err := exec.CommandContext(ctx, "cp", "--reflink=auto", "--sparse=always", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy the base disk: %w: %s", err, bytes.TrimSpace(out))
	}
	return os.Chmod(dst, 0o600)
}

// inject writes the agent binary and its enabled unit into the root file
// system of a raw disk made by package disk, with debugfs: no mount, so
// nothing of the guest file system is resolved by the host's kernel. It
// also disables cloud-init for this boot (/etc/cloud/cloud-init.disabled):
// cloud-init belongs to the buyer's first boot; run here it would create
// the default user, its authorized_keys and per-instance state, all of
// which would otherwise be the layer's (and S3 findings).
func inject(ctx context.Context, raw, binary string) error {
	dir, err := os.MkdirTemp("", "pib-vm-inject-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	unit := filepath.Join(dir, "pib-agent.service")
	if err := os.WriteFile(unit, []byte(agentUnit), 0o644); err != nil {
		return err
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return err
	}
	// rm first: debugfs's write refuses an existing file. mkdir of an
	// existing directory only complains. Single failed commands do not
	// stop debugfs, so the result is read back below.
	cmds := fmt.Sprintf(`mkdir /usr/local
mkdir /usr/local/lib
mkdir /usr/local/lib/pib
rm %[3]s
write %[1]s %[3]s
sif %[3]s mode 0100755
mkdir /etc/systemd/system/multi-user.target.wants
rm %[4]s
write %[2]s %[4]s
rm %[5]s
symlink %[5]s %[4]s
`, binary, unit, GuestBinary, GuestUnit, guestUnitLink)
	dev := fmt.Sprintf("%s?offset=%d", raw, disk.RootOffset)
	if out, err := exec.CommandContext(ctx, "debugfs", "-R", "stat /etc/cloud", dev).CombinedOutput(); err == nil && !bytes.Contains(out, []byte("not found")) {
		// Only where cloud-init is installed: a new /etc/cloud would be
		// the layer's.
		cmds += fmt.Sprintf("rm /etc/cloud/cloud-init.disabled\nwrite %s /etc/cloud/cloud-init.disabled\n", empty)
	}
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", "-", dev)
	cmd.Stdin = strings.NewReader(cmds)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("debugfs: %w: %s", err, out)
	}
	got, err := exec.CommandContext(ctx, "debugfs", "-R", "cat "+GuestUnit, dev).Output()
	if err != nil || !bytes.Equal(got, []byte(agentUnit)) {
		return fmt.Errorf("the agent unit could not be written into the disk (debugfs: %v); is the base image's root file system full?", err)
	}
	st, err := os.Stat(binary)
	if err != nil {
		return err
	}
	stat, err := exec.CommandContext(ctx, "debugfs", "-R", "stat "+GuestBinary, dev).Output()
	if err != nil || !bytes.Contains(stat, []byte(fmt.Sprintf("Size: %d", st.Size()))) {
		return fmt.Errorf("the agent binary could not be written into the disk whole (debugfs: %v); is the base image's root file system full?", err)
	}
	return nil
}

// InstallAgent writes pib (binary, a linux/amd64 build) and its enabled
// pib-agent.service into the root file system of a raw Linux disk made by
// package disk (images.Store.Disk), as every vm build on a file-system
// image does to its copy: the preparation of a Linux disk image for
// import (pib image import --os linux), done on the host.
func InstallAgent(ctx context.Context, raw, binary string) error {
	return inject(ctx, raw, binary)
}

//go:build linux

// Package vmbuild is pib's second build backend (issue 18): the installer
// runs inside a QEMU virtual machine booted from the base image's disk,
// driven by pib's guest agent (package agent) over a virtio-serial port,
// under the same rules as the sandbox (I1–I8), and the result is the same:
// one new layer, made from what the install changed.
//
// One build, top to bottom (Run):
//
//  1. copy the base image's cached raw disk (images.Store.Disk) to a
//     throw-away disk (reflink or sparse copy);
//  2. write the pib binary (/usr/local/lib/pib/pib) and pib-agent.service,
//     enabled, into its root file system with debugfs (no mount);
//  3. boot it (package machine): no network device (I2: nothing to reach),
//     -no-reboot (I5: a guest reboot ends QEMU, as a power-off does), the
//     agent's virtio-serial port bound to a Unix socket in the build's
//     directory;
//  4. send the packages, run the installer, stream its output to the build
//     log (I8) and take the agent's findings (I1 I2 I3 I4 I5 I6 I7 as seen
//     in the guest);
//  5. ask the guest to power off and wait for QEMU to exit;
//  6. compare the disk's ext4 root file system with the base image's root
//     (Diff) and write the difference as an overlay-style upper directory
//     (whiteouts for deletions) that images.Store.AddLayer stores exactly
//     as it stores a sandbox build's.
//
// Time limits: the guest enforces the request's time limit (I7); the host
// enforces it plus margins for the boot and the shutdown, and on expiry
// kills QEMU and reports I7 itself. A guest that goes away while the
// installer runs (the agent's connection ends, or QEMU exits) tried to
// reboot or power off: an I5 finding naming what the agent saw the
// installer run, else the kernel's last "reboot: …" console line.
//
// Reading the result (T2): the disk is hostile data. It is checked with
// e2fsck -n first (a corrupt file system is refused, never mounted), then
// mounted read-only, with noload (no journal replay: the file is not
// written), nosuid, nodev and noexec, on a 0700 directory no other user can
// reach; the walk never follows a symlink and opens files with O_NOFOLLOW
// beneath the mount; device nodes, FIFOs and sockets the install added are
// a finding (T2) and never created on the host; what is copied is bounded
// by the disk's size. The mount is undone before Run returns.
//
// What the boot itself changes is not the installer's doing and is left
// out of the layer and the changed-files list (BootNoise, tested by a boot
// with no installer giving an empty layer): the journal and logs, systemd's
// and cloud-init's state, the machine ID and SSH host keys generated at
// first boot, and what pib itself put into the disk.
//
// Limits, candidly:
//   - a regular file is taken as unchanged when its size, mode, owner and
//     modification time equal the base's: an installer that rewrites a file
//     with the same size and forges its time is not seen (the sandbox's
//     overlay would see it). Extended attributes (file capabilities, ACLs,
//     user.*) are compared and carried (xattrs.go); overlay ones never.
//   - hard links are not kept: each name of a multiply linked new file
//     becomes its own copy in the layer.
//   - an installer that writes under one of the BootNoise paths (its own
//     log under /var/log, say) loses that file from the layer.
//   - Linux guests with an ext4 root only (the disks package disk makes);
//     the Windows path of issue 18 (an NTFS qcow2 overlay) is not here.
//   - everything the agent reports comes from inside the guest, which the
//     installer controls as root: a hostile installer can silence the
//     agent's findings. The host-side facts (the time limit, the guest
//     going away, the file system difference) do not depend on it.
package vmbuild

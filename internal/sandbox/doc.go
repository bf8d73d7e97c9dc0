//go:build linux

// Package sandbox runs one installer in a hermetic Linux sandbox and checks
// it against the installer rules I1–I8 of SPEC.md.
//
// A build is a tree of three processes:
//
//   - the caller (Run), in the host namespaces: it prepares a per-build
//     directory (0700), a cgroup with the limits and a size-limited tmpfs
//     for the overlay's upper directory, takes an ID range for the build,
//     then re-executes the running binary as
//   - the sandbox init (Main with the init marker set), PID 1 of fresh user,
//     mount, PID, network, UTS and IPC namespaces. Its user namespace maps
//     the build's IDs 0…65535 onto an unprivileged host range, so root in
//     the build is nobody on the host (T1). Run hands it the base image's
//     layers and the upper directory as idmapped mounts over a socket (the
//     init never resolves a host path: it could not search the host's 0700
//     directories anyway); the init mounts the overlay root and a minimal
//     /dev, /proc, /sys, /tmp, /run, sets up the network recorder (DNS
//     responder + nftables redirect, I2), records the network state (I6),
//     pivots into the root and starts
//   - the installer, through one more re-exec (Main with the exec marker)
//     that enters a cgroup namespace rooted at the installer's cgroup,
//     drops capabilities to a Docker-like set, installs a seccomp filter
//     and then execs the installer itself.
//
// What a build can still see of the host, candidly (T1): the kernel
// (uname, /proc/cpuinfo, /proc/meminfo, /proc/stat and the other global
// /proc files, the read-only /sys, including the host's network-free
// device tree and the kernel's command line), the CPU and memory sizes,
// the clock, and its own uid_map (the host ID range it is mapped to). Its
// /proc/self/mountinfo names no host path: the root overlay's layers show
// as the init's private staging directories (/tmp/pib/l/N, /tmp/pib/u),
// which exist only in the build's mount namespace; /proc/self/cgroup shows
// "/" for every hierarchy. Devices: null, zero, full, random, urandom and
// tty (which answers ENXIO: there is no terminal) are bind mounts of the
// host's; /dev is nodev otherwise, the root overlay and every tmpfs are
// nodev, mknod of a device fails in the user namespace and is reported
// (T1) through the seccomp filter, and on cgroup v1 the devices
// controller allows exactly those six devices as a second wall. On a
// cgroup v2-only host that second wall (a BPF device program) is not
// installed yet; the user namespace and nodev still hold.
//
// Why re-exec: Go cannot run code between fork and exec, and the init must be
// ours so that reboot(2) (which kills a PID namespace's init with SIGHUP or
// SIGINT, I5) and every leftover process (I3) are seen. Any binary that uses
// this package must call Main at the very start of main (and test binaries in
// TestMain); Main returns at once when the marker is not set.
//
// Teardown: everything inside the sandbox lives in namespaces owned by the
// init; when the init dies (normally, or SIGKILLed because the caller's
// context ended or the caller died: Pdeathsig) the kernel kills every
// process of the PID namespace and drops every mount of the mount namespace.
// What lives on the host side — the cgroup, the tmpfs of the upper directory
// and the build directory — is removed by Result.Close, or by Run itself on
// failure.
//
// Limits, candidly:
//   - cgroup v2 is used when its memory and pids controllers are available,
//     else cgroup v1 (this development host runs a hybrid hierarchy). Limit
//     hits are "limits" findings (memory: OOM kills; processes: failed forks;
//     disk: the upper directory's tmpfs full).
//   - the disk limit is the size of the tmpfs holding the upper directory: a
//     hard, immediate quota (ENOSPC) that costs nothing to set up, unlike a
//     loop-mounted file system (mkfs, losetup) or periodic accounting (which
//     lets a fast writer overshoot). Its price: the upper directory lives in
//     RAM (tmpfs pages are charged to the build's memory cgroup while the
//     build runs), so the default disk limit is kept below the memory limit.
//   - the network recorder sees every TCP connection — to the loopback
//     addresses its DNS responder hands out and, through default routes via
//     lo, to literal IPv4 and IPv6 addresses — and DNS over UDP/TCP port 53
//     to any server. Other UDP traffic fails without being recorded. AAAA
//     queries get empty answers, so resolvers fall back to IPv4.
//   - the tmpfs file systems (the upper directory, /tmp, /dev/shm, /run)
//     are charged to the build's memory limit while it runs; the init is
//     exempt from the OOM killer and from the process limit (the installer
//     runs in a child cgroup that holds it), so a hog or a fork bomb ends
//     as a finding, not as a crashed sandbox.
//   - iptables rules are seen through nftables (iptables-nft, Debian's
//     default); legacy x_tables are seen only as table names.
//   - the installer keeps Docker's default capabilities without CAP_MKNOD,
//     plus CAP_SYS_BOOT (so reboot(2) reaches only the build's PID
//     namespace, I5) and CAP_NET_ADMIN (so a routing change is observed and
//     reported, I6, rather than refused) — all of them capabilities in the
//     build's user namespace, acting on its own namespaces only.
//     The seccomp filter is a deny list, not moby's allow list: calls that
//     lead out of the sandbox or into the kernel (mount, pivot_root, module
//     loading, kexec, swap, unshare/setns and namespace-creating clone,
//     open_by_handle_at, clock setting, ptrace…) fail with EPERM and are
//     reported as "sandbox" findings through a seccomp user notification
//     answered by the init; a few noisy ones (keyctl, bpf, perf…) fail
//     silently; clone3 fails with ENOSYS so libc falls back to clone.
//     Behind them, the user namespace: an escape lands as an unprivileged
//     host ID. Each concurrent build gets an ID range of its own (IDs).
//   - the build's output is hostile data on the host (T2): the changed-files
//     list and the I6 file checks never follow a link out of the image and
//     read regular files only, with a size cap; device nodes, FIFOs and
//     sockets in the new layer are a T2 finding; a kept upper directory is
//     copied without them into a 0700 directory.
//   - a pib killed with SIGKILL cannot clean up: the kernel still ends the
//     sandbox (the init has a parent-death signal), and Sweep — run by
//     pib build before each build — removes the tmpfs, cgroup and directory.
//   - reboot commands are caught by wrappers placed first in PATH and by a
//     /run/initctl FIFO; reboot(2) itself is caught by the kernel's signal.
package sandbox

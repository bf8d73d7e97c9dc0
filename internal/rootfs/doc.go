//go:build linux

// Package rootfs reads an untrusted root file system — a build's output, an
// imported image — from the host, as rule T2 of SPEC.md demands: every path
// is resolved inside the image root and only regular files are read.
//
// Why a package of its own: the host kernel resolves an image's symbolic
// links against the host's root, so os.ReadFile(root+"/etc/x") follows
// "/var -> /home/operator" straight out of the image, and opening a FIFO or a
// device node the image left behind blocks, or reads /dev/zero forever.
// Here every lookup goes through openat2(2) with RESOLVE_IN_ROOT: absolute
// links and ".." resolve against the image root, as they would under chroot
// (so /etc/os-release -> ../usr/lib/os-release works, and a link to a host
// path simply names a file the image does not have). RESOLVE_NO_MAGICLINKS
// refuses /proc-style links, which could point anywhere.
//
// Reading is two steps: the path is opened with O_PATH (which opens nothing:
// no FIFO rendezvous, no device driver open) and fstat'ed; only a regular
// file is then reopened for reading through that descriptor
// (/proc/self/fd/N), so the file read is the one checked. Every read has a
// caller-given size cap.
//
// Limits, stated plainly:
//   - Linux 5.6 or later is required (openat2); there is no fallback, since
//     a path-walking fallback is exactly what this package exists to avoid.
//   - Walk follows symbolic links in the starting path only (like find -H);
//     below it no link is followed, so a tree reached only through an
//     in-image link is walked only if the caller starts a walk there.
//   - Walk holds one descriptor per directory level and gives up below
//     MaxDepth levels (the callback gets an error for that directory).
//   - A FileInfo's Sys is a *unix.Stat_t.
package rootfs

//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// IDs is the host range of user and group IDs a build's user namespace
// maps its IDs 0…Size-1 onto (T1): root in the build is host ID Base, an
// unprivileged ID that owns nothing on the host.
//
// Each concurrent build gets a range of its own (Base + slot×Size, the
// slot held by a lock file for the build's lifetime) rather than one range
// shared by all: a process that escaped one build then still has no
// ID-based power (signals, /proc, files it created) over another build's
// processes. Ranges cost nothing: no file on the host is owned by them,
// because the build sees its layers through idmapped mounts.
type IDs struct {
	Base  uint32 // first host ID of slot 0; zero means DefaultIDBase
	Size  uint32 // IDs per build; zero means DefaultIDSize
	Slots int    // concurrent builds per host; zero means DefaultIDSlots
}

// Defaults for IDs. The base sits far above the ranges that useradd and
// /etc/subuid hand out (1000…, 100000…), so no real account owns it.
const (
	DefaultIDBase  = 2_000_000_000
	DefaultIDSize  = 65536
	DefaultIDSlots = 64
)

func (ids IDs) withDefaults() IDs {
	if ids.Base == 0 {
		ids.Base = DefaultIDBase
	}
	if ids.Size == 0 {
		ids.Size = DefaultIDSize
	}
	if ids.Slots <= 0 {
		ids.Slots = DefaultIDSlots
	}
	return ids
}

// idSlotDir holds one lock file per slot. It is host-wide (not per data
// directory) so that every pib process on the machine agrees on which
// ranges are taken.
var idSlotDir = "/run/pib/id-slots"

// acquireIDs takes the first free slot and returns the host ID its build's
// root maps to and a release function.
func acquireIDs(ids IDs) (base uint32, release func() error, err error) {
	ids = ids.withDefaults()
	if uint64(ids.Base)+uint64(ids.Slots)*uint64(ids.Size) > 1<<32-2 {
		return 0, nil, fmt.Errorf("user namespace ranges %d + %d×%d pass the largest ID: lower the base or the number of slots", ids.Base, ids.Slots, ids.Size)
	}
	if err := os.MkdirAll(idSlotDir, 0o700); err != nil {
		return 0, nil, fmt.Errorf("create %s for the build ID ranges: %w", idSlotDir, err)
	}
	for slot := range ids.Slots {
		f, err := os.OpenFile(filepath.Join(idSlotDir, strconv.Itoa(slot)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return 0, nil, fmt.Errorf("open ID range lock: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				continue
			}
			return 0, nil, fmt.Errorf("lock ID range %d: %w", slot, err)
		}
		return ids.Base + uint32(slot)*ids.Size, f.Close, nil
	}
	return 0, nil, fmt.Errorf("all %d user namespace ID ranges are taken by running builds: wait for one to end or raise the number of slots", ids.Slots)
}

// idmappedTree returns a detached copy of the mount at path whose owners
// appear, to the user namespace usernsFD, shifted as that namespace maps
// them: files the image owns as 0 show as 0 inside the build, and what the
// build writes as its 0 lands on disk as 0. So the layer cache keeps the
// image's own owners, and nothing on the host is ever owned by the build's
// unprivileged range.
func idmappedTree(path string, usernsFD int, attrs uint64) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open_tree %s: %w", path, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | attrs, Userns_fd: uint64(usernsFD)}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return -1, fmt.Errorf("idmapped mount of %s: %w (the build's user namespace needs idmapped mounts: Linux ≥ 5.19 and a data directory on ext4, xfs, btrfs or tmpfs)", path, err)
		}
		return -1, fmt.Errorf("idmapped mount of %s: %w", path, err)
	}
	return fd, nil
}

// maxFDsPerMessage stays under the kernel's SCM_MAX_FD (253).
const maxFDsPerMessage = 200

// sendMounts hands the init its layers as idmapped mounts over the go
// socket: each lower directory read-only, then the upper directory's file
// system. The socket's first message is also the init's signal that it is
// in its cgroups. The init receives mounts, never host paths: it could not
// search the host's 0700 directories as its unprivileged IDs anyway.
func sendMounts(sock *os.File, pid int, lowers []string, upperFS string) error {
	userns, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the build's user namespace: %w", err)
	}
	defer unix.Close(userns)
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, l := range lowers {
		fd, err := idmappedTree(l, userns, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV)
		if err != nil {
			return fmt.Errorf("lower layer: %w", err)
		}
		fds = append(fds, fd)
	}
	fd, err := idmappedTree(upperFS, userns, unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return fmt.Errorf("upper directory: %w", err)
	}
	fds = append(fds, fd)
	for i := 0; i < len(fds); i += maxFDsPerMessage {
		batch := fds[i:min(i+maxFDsPerMessage, len(fds))]
		if err := unix.Sendmsg(int(sock.Fd()), []byte{1}, unix.UnixRights(batch...), nil, 0); err != nil {
			return fmt.Errorf("hand the build's mounts to the sandbox init: %w", err)
		}
	}
	return nil
}

// receiveMounts reads n mount fds from the go socket.
func receiveMounts(fd, n int) ([]int, error) {
	var fds []int
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4*maxFDsPerMessage))
	for len(fds) < n {
		_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			return nil, fmt.Errorf("receive the build's mounts: %w", err)
		}
		if oobn == 0 {
			return nil, errors.New("cancelled before start")
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, fmt.Errorf("receive the build's mounts: %w", err)
		}
		for _, m := range msgs {
			got, err := unix.ParseUnixRights(&m)
			if err != nil {
				return nil, fmt.Errorf("receive the build's mounts: %w", err)
			}
			fds = append(fds, got...)
		}
	}
	unix.Close(fd)
	return fds, nil
}

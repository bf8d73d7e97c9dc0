//go:build linux

package vmbuild

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Extended attributes carry what a layer must keep of a file besides its
// bytes and mode: file capabilities (security.capability: ping's
// cap_net_raw), POSIX ACLs and user attributes. The build disk's are
// hostile data (T2) like the rest of it: only the namespaces a layer may
// hold are read (package layer's model), never an overlay attribute
// (trusted.overlay.*, user.overlay.*), which would steer the host's
// overlay mount of the layer, and each value is bounded.

// maxXattrs bounds what one entry may carry: the kernel's own limit on a
// value is 64 KiB, and ext4 keeps all of an inode's in one block.
const (
	maxXattrValue = 64 << 10
	maxXattrNames = 64 << 10
)

// keptXattr says whether a layer keeps attribute name.
func keptXattr(name string) bool {
	switch {
	case strings.HasPrefix(name, "trusted.overlay."), strings.HasPrefix(name, "user.overlay."):
		return false
	case name == "system.posix_acl_access", name == "system.posix_acl_default":
		return true
	}
	return strings.HasPrefix(name, "user.") || strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")
}

// xattrsBeneath reads the kept attributes of root/rel (a regular file or
// a directory: symlinks carry none a layer keeps), opened beneath root
// with no symlink on the way, through its /proc/self/fd link: an O_PATH
// descriptor takes no fgetxattr.
func xattrsBeneath(root, rel string) (map[string][]byte, error) {
	f, err := beneath(root, rel, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readXattrs("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
}

func readXattrs(p string) (map[string][]byte, error) {
	names := make([]byte, 4096)
	n, err := unix.Listxattr(p, names)
	if errors.Is(err, unix.ERANGE) {
		names = make([]byte, maxXattrNames)
		n, err = unix.Listxattr(p, names)
	}
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list extended attributes: %w", err)
	}
	var out map[string][]byte
	for _, name := range strings.Split(string(names[:n]), "\x00") {
		if name == "" || !keptXattr(name) {
			continue
		}
		val := make([]byte, maxXattrValue)
		m, err := unix.Getxattr(p, name, val)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read extended attribute %s: %w", name, err)
		}
		if out == nil {
			out = map[string][]byte{}
		}
		out[name] = val[:m]
	}
	return out, nil
}

// sameXattrs compares the kept attributes of root/rel and base/rel.
func sameXattrs(root, base, rel string) (bool, error) {
	a, err := xattrsBeneath(root, rel)
	if err != nil {
		return false, err
	}
	b, err := xattrsBeneath(base, rel)
	if err != nil {
		return false, err
	}
	return maps.EqualFunc(a, b, bytes.Equal), nil
}

// copyXattrs sets root/rel's kept attributes on its copy upper/rel: after
// its chown, which clears security.capability.
func copyXattrs(root, rel, upper string) error {
	xs, err := xattrsBeneath(root, rel)
	if err != nil {
		return err
	}
	dst := filepath.Join(upper, rel)
	for name, val := range xs {
		if err := unix.Lsetxattr(dst, name, val, 0); err != nil {
			return fmt.Errorf("%s: set extended attribute %s: %w", rel, name, err)
		}
	}
	return nil
}

// xattrCarrier says whether fi is an entry whose attributes count.
func xattrCarrier(fi os.FileInfo) bool { return fi.Mode().IsRegular() || fi.IsDir() }

package sandbox

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Changes is the I8 list of what the install changed in the root.
type Changes struct {
	Added    int          `json:"added"`
	Modified int          `json:"modified"`
	Deleted  int          `json:"deleted"`
	Files    []FileChange `json:"files"`
}

// FileChange is one changed path, relative to the root ("etc/hosts").
type FileChange struct {
	Path   string `json:"path"`
	Change string `json:"change"` // added, modified, deleted
	Size   int64  `json:"size"`   // bytes after the change; before it for deleted
	Type   string `json:"type"`   // file, dir, symlink, other
}

// changedFiles walks the overlay upper directory. A whiteout (0:0 char
// device) is a deletion; an entry absent from every lower is an addition;
// anything else is a modification, except directories copied up only
// because something below them changed.
func changedFiles(upper string, lowers []string) (Changes, error) {
	var ch Changes
	inLower := func(rel string) (os.FileInfo, bool) {
		for i := len(lowers) - 1; i >= 0; i-- {
			if fi, err := os.Lstat(filepath.Join(lowers[i], rel)); err == nil {
				return fi, true
			}
		}
		return nil, false
	}
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == upper {
			return nil
		}
		rel, _ := filepath.Rel(upper, p)
		rel = filepath.ToSlash(rel)
		if ExcludePath(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&os.ModeCharDevice != 0 && st != nil && st.Rdev == 0 {
			size := int64(0)
			typ := "file"
			if lf, ok := inLower(rel); ok {
				size, typ = lf.Size(), fileType(lf)
			}
			ch.Files = append(ch.Files, FileChange{Path: rel, Change: "deleted", Size: size, Type: typ})
			ch.Deleted++
			return nil
		}
		lf, exists := inLower(rel)
		switch {
		case !exists:
			ch.Files = append(ch.Files, FileChange{Path: rel, Change: "added", Size: sizeOf(fi), Type: fileType(fi)})
			ch.Added++
		case fi.IsDir() && lf.IsDir():
			if opaque(p) {
				ch.Files = append(ch.Files, FileChange{Path: rel, Change: "modified", Type: "dir"})
				ch.Modified++
			} else if lst, ok := lf.Sys().(*syscall.Stat_t); ok && st != nil && (lf.Mode() != fi.Mode() || lst.Uid != st.Uid || lst.Gid != st.Gid) {
				ch.Files = append(ch.Files, FileChange{Path: rel, Change: "modified", Type: "dir"})
				ch.Modified++
			}
		default:
			ch.Files = append(ch.Files, FileChange{Path: rel, Change: "modified", Size: sizeOf(fi), Type: fileType(fi)})
			ch.Modified++
		}
		return nil
	})
	if ch.Files == nil {
		ch.Files = []FileChange{}
	}
	return ch, err
}

func opaque(dir string) bool {
	b := make([]byte, 4)
	n, err := unix.Lgetxattr(dir, "trusted.overlay.opaque", b)
	return err == nil && n == 1 && b[0] == 'y'
}

func sizeOf(fi os.FileInfo) int64 {
	if fi.Mode().IsRegular() {
		return fi.Size()
	}
	return 0
}

func fileType(fi os.FileInfo) string {
	switch {
	case fi.Mode().IsRegular():
		return "file"
	case fi.IsDir():
		return "dir"
	case fi.Mode()&os.ModeSymlink != 0:
		return "symlink"
	}
	return "other"
}

// networkConfigPaths are the I6 network configuration files and folders.
var networkConfigPaths = []string{
	"etc/network/", "etc/netplan/", "etc/NetworkManager/", "etc/systemd/network/",
	"etc/sysconfig/network-scripts/", "etc/resolv.conf", "etc/nftables.conf", "etc/iptables/",
	"etc/sysconfig/iptables", "etc/sysconfig/ip6tables", "etc/sysconfig/nftables.conf",
}

// networkFileFindings reports changed network configuration files and
// sysctl files that set forwarding or routing (I6).
func networkFileFindings(upper string, ch Changes) []Finding {
	var out []Finding
	for _, f := range ch.Files {
		if f.Type == "dir" && f.Change != "deleted" {
			continue
		}
		hit := false
		for _, p := range networkConfigPaths {
			if f.Path == strings.TrimSuffix(p, "/") || (strings.HasSuffix(p, "/") && strings.HasPrefix(f.Path, p)) {
				hit = true
			}
		}
		if !hit && (f.Path == "etc/sysctl.conf" || strings.HasPrefix(f.Path, "etc/sysctl.d/") ||
			strings.HasPrefix(f.Path, "usr/lib/sysctl.d/") || strings.HasPrefix(f.Path, "lib/sysctl.d/") ||
			strings.HasPrefix(f.Path, "run/sysctl.d/")) && f.Change != "deleted" {
			hit = sysctlSetsRouting(filepath.Join(upper, f.Path))
		}
		if hit {
			out = append(out, Finding{Rule: "I6",
				Message: "the installer " + f.Change + " network configuration file /" + f.Path + "; installers must not change network configuration"})
		}
	}
	return out
}

// sysctlSetsRouting reports whether a sysctl file sets forwarding or
// routing keys.
func sysctlSetsRouting(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		k, _, _ := strings.Cut(l, "=")
		k = strings.ReplaceAll(strings.TrimSpace(strings.TrimPrefix(k, "-")), "/", ".")
		if strings.Contains(k, "forwarding") || strings.Contains(k, "ip_forward") || strings.Contains(k, "rp_filter") ||
			strings.Contains(k, "accept_redirects") || strings.Contains(k, "send_redirects") || strings.Contains(k, "accept_ra") ||
			strings.Contains(k, "accept_source_route") || strings.HasPrefix(k, "net.ipv4.route") || strings.HasPrefix(k, "net.ipv6.route") ||
			strings.Contains(k, "proxy_arp") || strings.Contains(k, "ip_nonlocal_bind") {
			return true
		}
	}
	return false
}

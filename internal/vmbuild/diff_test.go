package vmbuild_test

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/testenv"
	"github.com/pib-dev/pib/internal/vmbuild"
)

// TestDiff compares two trees as Diff compares a build disk with its base:
// additions, modifications (content with size or time, mode, owner, link
// target, a directory that became a file), deletions as whiteouts, boot
// noise skipped, a FIFO listed but never created on the host, and a
// symlink to the host's /etc not followed.
func TestDiff(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	base, root, upper := filepath.Join(dir, "base"), filepath.Join(dir, "root"), filepath.Join(dir, "upper")
	old := time.Unix(1700000000, 0)
	write := func(top, rel, body string, mode os.FileMode) {
		p := filepath.Join(top, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old, old)
	}
	for _, top := range []string{base, root} {
		write(top, "etc/same", "same", 0o644)
		write(top, "etc/content", "aaaa", 0o644)
		write(top, "etc/mode", "m", 0o644)
		write(top, "etc/gone", "bye", 0o644)
		write(top, "opt/tree/a", "a", 0o644)
		write(top, "var/log/syslog", "x", 0o644)
		os.Symlink("/etc/same", filepath.Join(top, "etc/link"))
	}
	write(root, "etc/content", "bbbbb", 0o644)
	os.Chmod(filepath.Join(root, "etc/mode"), 0o600)
	os.Remove(filepath.Join(root, "etc/gone"))
	os.RemoveAll(filepath.Join(root, "opt/tree"))
	write(root, "opt/tree", "now a file", 0o644)
	write(root, "usr/new/bin", "new", 0o755)
	write(root, "var/log/syslog", "boot noise", 0o644)
	os.Remove(filepath.Join(root, "etc/link"))
	os.Symlink("/etc/shadow", filepath.Join(root, "etc/link"))
	if err := unix.Mkfifo(filepath.Join(root, "etc/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	ch, err := vmbuild.Diff(root, base, upper)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range ch.Files {
		got = append(got, f.Change+" "+f.Path+" "+f.Type)
	}
	want := []string{"added etc/fifo fifo", "added usr/new dir", "added usr/new/bin file", "deleted etc/gone file",
		"modified etc/content file", "modified etc/link symlink", "modified etc/mode file", "modified opt/tree file", "added usr dir"}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ch.Added != 4 || ch.Modified != 4 || ch.Deleted != 1 {
		t.Errorf("counts %d/%d/%d, want 4 added, 4 modified, 1 deleted", ch.Added, ch.Modified, ch.Deleted)
	}
	// The upper directory: a whiteout for the deletion, copies, the link
	// as a link, no FIFO, nothing of the boot noise.
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "etc/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/gone is not a whiteout in the upper directory: %v %o", err, st.Mode)
	}
	if b, _ := os.ReadFile(filepath.Join(upper, "etc/content")); string(b) != "bbbbb" {
		t.Errorf("etc/content copied as %q", b)
	}
	if target, err := os.Readlink(filepath.Join(upper, "etc/link")); err != nil || target != "/etc/shadow" {
		t.Errorf("etc/link: %q %v; want the link itself, not what it points to", target, err)
	}
	if fi, err := os.Stat(filepath.Join(upper, "etc/mode")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("etc/mode: %v %v", fi, err)
	}
	for _, rel := range []string{"etc/fifo", "var/log/syslog", "etc/same", "opt/tree/a"} {
		if _, err := os.Lstat(filepath.Join(upper, rel)); !os.IsNotExist(err) && !errors.Is(err, unix.ENOTDIR) {
			t.Errorf("%s is in the upper directory: %v", rel, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(upper, "usr/new/bin")); err != nil || fi.Sys().(*syscall.Stat_t).Mode&0o777 != 0o755 {
		t.Errorf("usr/new/bin: %v %v", fi, err)
	}
}

// TestDiffXattrs: a file capability the install set (ping's cap_net_raw)
// and a changed user attribute make their files modified and are carried
// into the upper directory; an overlay attribute the guest set is neither
// a change nor copied (it would steer the host's overlay mount, T2).
func TestDiffXattrs(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	base, root, upper := filepath.Join(dir, "base"), filepath.Join(dir, "root"), filepath.Join(dir, "upper")
	old := time.Unix(1700000000, 0)
	for _, top := range []string{base, root} {
		for _, rel := range []string{"usr/bin/ping", "etc/noted", "etc/same"} {
			p := filepath.Join(top, rel)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(rel), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.Lsetxattr(filepath.Join(top, "etc/noted"), "user.note", []byte("before"), 0); err != nil {
			t.Skipf("the test directory takes no user xattrs: %v", err)
		}
	}
	// VFS_CAP_REVISION_2, effective; permitted: CAP_NET_RAW (13).
	capNetRaw := []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	set := func(rel, name string, val []byte) {
		t.Helper()
		if err := unix.Lsetxattr(filepath.Join(root, rel), name, val, 0); err != nil {
			t.Fatalf("set %s on %s: %v", name, rel, err)
		}
	}
	set("usr/bin/ping", "security.capability", capNetRaw)
	set("etc/noted", "user.note", []byte("after"))
	set("etc/same", "trusted.overlay.redirect", []byte("/etc/shadow"))
	set("etc", "trusted.overlay.opaque", []byte("y"))
	for _, top := range []string{base, root} {
		filepath.WalkDir(top, func(p string, _ os.DirEntry, _ error) error { return os.Chtimes(p, old, old) })
	}

	ch, err := vmbuild.Diff(root, base, upper)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range ch.Files {
		got = append(got, f.Change+" "+f.Path)
	}
	if want := "modified etc/noted\nmodified usr/bin/ping"; strings.Join(got, "\n") != want {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
	val := make([]byte, 64)
	if n, err := unix.Lgetxattr(filepath.Join(upper, "usr/bin/ping"), "security.capability", val); err != nil || string(val[:n]) != string(capNetRaw) {
		t.Errorf("usr/bin/ping's capability in the upper directory: %x, %v", val[:max(n, 0)], err)
	}
	if n, err := unix.Lgetxattr(filepath.Join(upper, "etc/noted"), "user.note", val); err != nil || string(val[:n]) != "after" {
		t.Errorf("etc/noted's user.note in the upper directory: %q, %v", val[:max(n, 0)], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(upper, "etc"), "trusted.overlay.opaque", val); !errors.Is(err, unix.ENODATA) {
		t.Errorf("the guest's trusted.overlay.opaque on etc was copied: %v", err)
	}
}

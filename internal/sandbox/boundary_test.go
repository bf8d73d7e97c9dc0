package sandbox_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/testenv"
)

// writeInstaller writes a test installer script into a temp dir.
func writeInstaller(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDevicesUnreachable (T1): a build can neither make nor open a host
// device; the attempt is reported.
func TestDevicesUnreachable(t *testing.T) {
	script := writeInstaller(t, "devices.sh", `
mknod /dev/x b 7 0 && echo MADE-BLOCK
[ -b /dev/x ] && exec 3<>/dev/x && echo OPENED-BLOCK
rm -f /dev/x
mknod /tmp/kmsg c 1 11 && echo MADE-KMSG
mknod /var/tmp/console c 5 1 && echo MADE-CONSOLE
for d in kmsg console loop0 loop-control vda sda mem port; do
	[ -e /dev/$d ] && echo "HOST-DEVICE /dev/$d"
done
echo devices: $(ls /dev)
echo hi > /dev/null || echo NULL-BROKEN
head -c 4 /dev/urandom | wc -c
exit 0
`)
	res := build(t, script, buildOpts{})
	log, _ := os.ReadFile(res.LogPath)
	for _, bad := range []string{"MADE-", "OPENED-", "HOST-DEVICE", "NULL-BROKEN"} {
		if strings.Contains(string(log), bad) {
			t.Errorf("log shows %s:\n%s", bad, log)
		}
	}
	if !strings.Contains(string(log), "devices: fd full null random shm stderr stdin stdout tty urandom zero") {
		t.Errorf("want exactly the allowed devices in /dev:\n%s", log)
	}
	if !hasRule(res.Findings, "T1", "device node") {
		t.Errorf("want a T1 finding for the mknod attempts, got %+v", res.Findings)
	}
}

// TestUserNamespace (T1): root in the build is an unprivileged host ID,
// the build sees no host path in its mount table or cgroups, and what it
// writes lands in the layer with the owners the image expects.
func TestUserNamespace(t *testing.T) {
	lowers := lowerDirs(t)
	script := writeInstaller(t, "userns.sh", `
echo "uid_map: $(cat /proc/self/uid_map)"
echo "cgroup: $(cat /proc/self/cgroup | tr '\n' ' ')"
echo "id: $(id -u)"
cat /proc/self/mountinfo | sed 's/^/mountinfo: /'
mkdir -p /opt/t
echo root > /opt/t/root-owned
echo www > /opt/t/www-owned
chown 33:33 /opt/t/www-owned
rm /etc/issue.net
`)
	res := build(t, script, buildOpts{})
	if !res.Passed() {
		t.Fatalf("findings %+v", res.Findings)
	}
	log, _ := os.ReadFile(res.LogPath)
	var uidMap, cgroups string
	for _, l := range strings.Split(string(log), "\n") {
		_, text, _ := strings.Cut(l, "| ")
		switch {
		case strings.HasPrefix(text, "uid_map: "):
			uidMap = strings.Join(strings.Fields(strings.TrimPrefix(text, "uid_map: ")), " ")
		case strings.HasPrefix(text, "cgroup: "):
			cgroups = strings.TrimPrefix(text, "cgroup: ")
		case strings.HasPrefix(text, "mountinfo: "):
			for _, host := range append([]string{filepath.Dir(res.LogPath), testenv.CacheDir(), "sha256"}, lowers...) {
				if strings.Contains(text, host) {
					t.Errorf("the build's mount table shows host path %q: %s", host, text)
				}
			}
		}
	}
	if uidMap == "" || uidMap == "0 0 4294967295" || !strings.HasPrefix(uidMap, "0 ") {
		t.Errorf("want a user namespace mapping 0 to an unprivileged host ID, uid_map is %q", uidMap)
	}
	if f := strings.Fields(uidMap); len(f) != 3 || f[2] != "65536" {
		t.Errorf("uid_map %q, want 65536 IDs", uidMap)
	} else if host, _ := strconv.ParseUint(f[1], 10, 32); host < sandbox.DefaultIDBase {
		t.Errorf("root in the build is host ID %d, want one of pib's unprivileged ranges (from %d)", host, uint32(sandbox.DefaultIDBase))
	}
	if cgroups == "" {
		t.Errorf("no /proc/self/cgroup in the log:\n%s", log)
	}
	for _, line := range strings.Fields(cgroups) {
		if parts := strings.SplitN(line, ":", 3); len(parts) != 3 || parts[2] != "/" {
			t.Errorf("the build's /proc/self/cgroup shows a host cgroup path: %q", line)
		}
	}
	deleted := false
	for _, c := range res.Changes.Files {
		deleted = deleted || (c.Path == "etc/issue.net" && c.Change == "deleted")
	}
	if !deleted {
		t.Errorf("deleting a file of the base image left no whiteout: %+v", res.Changes)
	}
	for file, want := range map[string]uint32{"opt/t/root-owned": 0, "opt/t/www-owned": 33} {
		fi, err := os.Lstat(filepath.Join(res.UpperDir, file))
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != want {
			t.Errorf("%s is owned by %d in the new layer, want %d (the image's own IDs)", file, uid, want)
		}
	}
}

// TestHostileOutput (T2): special files a build leaves are a finding and
// never reach the host; links out of the image are not followed by the
// host-side I6 check; a kept build is root-only.
func TestHostileOutput(t *testing.T) {
	lowers := lowerDirs(t)
	// A host file the build links to: read on the host, it would make I6
	// report forwarding, an oracle on host file contents.
	hostFile := filepath.Join(t.TempDir(), "host-sysctl.conf")
	os.WriteFile(hostFile, []byte("net.ipv4.ip_forward = 1\n"), 0o600)
	script := writeInstaller(t, "leaves.sh", `
mkdir -p /opt/h /etc/sysctl.d
mkfifo /opt/h/fifo
python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.bind("/opt/h/sock")'
printf '#!/bin/sh\n' > /opt/h/suid && chmod 4755 /opt/h/suid
ln -s `+hostFile+` /etc/sysctl.d/50-host.conf
ln -s /opt/h/fifo /etc/sysctl.d/60-fifo.conf
ln -s /dev/zero /etc/sysctl.d/70-zero.conf
exit 0
`)
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := sandbox.Run(ctx, sandbox.Config{LowerDirs: lowers, Installer: script, WorkDir: work,
		LogPath: filepath.Join(work, "build.log"), KeepOnFailure: true, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(res.KeptDir)
	defer res.Close()
	if !hasRule(res.Findings, "T2", "/opt/h/fifo (fifo)") || !hasRule(res.Findings, "T2", "/opt/h/sock (socket)") {
		t.Errorf("want a T2 finding naming the FIFO and the socket, got %+v", res.Findings)
	}
	for _, f := range res.Findings {
		if f.Rule == "I6" {
			t.Errorf("the I6 check read through a link out of the image: %+v", f)
		}
	}
	if res.KeptDir == "" {
		t.Fatal("no kept directory")
	}
	fi, err := os.Stat(res.KeptDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("kept directory mode %v, want 0700", fi.Mode().Perm())
	}
	filepath.WalkDir(res.KeptDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeCharDevice) != 0 {
			t.Errorf("special file created on the host: %s (%v)", p, d.Type())
		}
		return nil
	})
	if fi, err := os.Lstat(filepath.Join(res.KeptDir, "opt/h/suid")); err != nil || fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("the kept copy lost the setuid file (it stays in images; the kept root is 0700): %v %v", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(res.KeptDir, "etc/sysctl.d/50-host.conf")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("want the link kept as a link: %v %v", fi, err)
	}
}

// TestNoResolvConf: a base image without /etc/resolv.conf builds cleanly
// (the recorder's file is pib's, not a change the installer made: I6).
func TestNoResolvConf(t *testing.T) {
	lowers := lowerDirs(t)
	top := t.TempDir()
	os.MkdirAll(filepath.Join(top, "etc"), 0o755)
	// An overlay whiteout removes the lower image's resolv.conf.
	if err := unix.Mknod(filepath.Join(top, "etc/resolv.conf"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	script := writeInstaller(t, "ok.sh", "getent hosts example.com >/dev/null; echo done\n")
	work := t.TempDir()
	res, err := sandbox.Run(context.Background(), sandbox.Config{LowerDirs: append(lowers[:len(lowers):len(lowers)], top),
		Installer: script, WorkDir: work, LogPath: filepath.Join(work, "build.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	for _, f := range res.Findings {
		if f.Rule != "I2" {
			t.Errorf("want only the lookup's I2 finding, got %+v", f)
		}
	}
	if !hasRule(res.Findings, "I2", "example.com") {
		t.Errorf("the lookup was not recorded (I2): %+v", res.Findings)
	}
	for _, c := range res.Changes.Files {
		if strings.HasPrefix(c.Path, "etc/resolv.conf") {
			t.Errorf("the build's layer has %s %s", c.Change, c.Path)
		}
	}
}

// TestOpaqueLowerLayer: a directory a later layer replaced (an OCI opaque
// whiteout, unpacked by the layer cache) hides the lower layer's content
// inside the build too, whose overlay reads user.overlay.* xattrs only.
func TestOpaqueLowerLayer(t *testing.T) {
	lowers := lowerDirs(t)
	mk := func(entries ...tarEntry) string {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o755, Size: int64(len(e.body))})
			tw.Write([]byte(e.body))
		}
		tw.Close()
		dir := t.TempDir()
		if err := layer.Unpack(context.Background(), &buf, dir, layer.UnpackOptions{}); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	first := mk(tarEntry{"opt/", tar.TypeDir, ""}, tarEntry{"opt/d/", tar.TypeDir, ""}, tarEntry{"opt/d/old", tar.TypeReg, "old"})
	second := mk(tarEntry{"opt/", tar.TypeDir, ""}, tarEntry{"opt/d/", tar.TypeDir, ""}, tarEntry{"opt/d/.wh..wh..opq", tar.TypeReg, ""},
		tarEntry{"opt/d/new", tar.TypeReg, "new"})
	script := writeInstaller(t, "ls.sh", "ls /opt/d\n[ ! -e /opt/d/old ]\n")
	work := t.TempDir()
	res, err := sandbox.Run(context.Background(), sandbox.Config{LowerDirs: append(lowers[:len(lowers):len(lowers)], first, second),
		Installer: script, WorkDir: work, LogPath: filepath.Join(work, "build.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if !res.Passed() {
		log, _ := os.ReadFile(res.LogPath)
		t.Errorf("the build sees a file an opaque directory hides: %+v\n%s", res.Findings, log)
	}
}

type tarEntry struct {
	name string
	typ  byte
	body string
}

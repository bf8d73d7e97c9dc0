package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/testenv"
)

// TestDeviceAllowList (T1): the build's devices cgroup is a wall of its
// own: a host root process moved into it opens null but not a device
// outside the allow list, even with every capability.
func TestDeviceAllowList(t *testing.T) {
	testenv.RequireRoot(t)
	if !fileExists(filepath.Join(cgroupRoot, "devices", "devices.deny")) {
		t.Skip("no cgroup v1 devices controller on this host")
	}
	name := "pib-build-devtest-" + filepath.Base(t.TempDir())
	cg, err := newCgroup(name, Limits{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer cg.remove()
	list, err := os.ReadFile(filepath.Join(cg.v1["devices"], "devices.list"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range allowedDevices {
		want = append(want, fmt.Sprintf("c %d:%d rw", d.major, d.minor))
	}
	if got := strings.Split(strings.TrimSpace(string(list)), "\n"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("devices.list = %q, want %q", got, want)
	}
	checkDeviceWall(t, filepath.Join(cg.v1["devices"], "cgroup.procs"))
}

// TestDeviceFilterV2 (T1): the cgroup v2 device program allows exactly
// what the v1 controller does. It runs wherever a v2 hierarchy is mounted
// (on a hybrid host too, at /sys/fs/cgroup/unified).
func TestDeviceFilterV2(t *testing.T) {
	testenv.RequireRoot(t)
	mnt := cgroupRoot
	if !fileExists(filepath.Join(mnt, "cgroup.controllers")) {
		mnt = filepath.Join(cgroupRoot, "unified")
	}
	if !fileExists(filepath.Join(mnt, "cgroup.procs")) {
		t.Skip("no cgroup v2 hierarchy on this host")
	}
	dir := filepath.Join(mnt, "pib-devtest-"+filepath.Base(t.TempDir()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	l, err := attachDeviceFilter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkDeviceWall(t, filepath.Join(dir, "cgroup.procs"))
}

// checkDeviceWall moves a root shell into the cgroup of procs and checks
// that it can use /dev/null but neither open a kmsg node nor make one.
func checkDeviceWall(t *testing.T, procs string) {
	t.Helper()
	dir := t.TempDir()
	kmsg := filepath.Join(dir, "kmsg")
	if err := unix.Mknod(kmsg, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 11))); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", `echo $$ > `+procs+` && echo x > /dev/null && echo null-ok && exec 3<`+kmsg+` && echo kmsg-opened`).CombinedOutput()
	if !strings.Contains(string(out), "null-ok") {
		t.Errorf("/dev/null not usable in the build's cgroup: %s", out)
	}
	if err == nil || strings.Contains(string(out), "kmsg-opened") || !strings.Contains(string(out), "Operation not permitted") {
		t.Errorf("a device outside the allow list opened (err %v): %s", err, out)
	}
	out, err = exec.Command("sh", "-c", `echo $$ > `+procs+` && mknod `+dir+`/null2 c 1 3 && echo made`).CombinedOutput()
	if err == nil || strings.Contains(string(out), "made") {
		t.Errorf("mknod of an allowed device succeeded in the build's cgroup: %s", out)
	}
}

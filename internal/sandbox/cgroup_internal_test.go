package sandbox

import (
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
	if got, want := strings.Fields(string(list)), strings.Fields(strings.Join(deviceAllowList, "\n")); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("devices.list = %q, want %q", got, want)
	}
	dir := t.TempDir()
	kmsg := filepath.Join(dir, "kmsg")
	if err := unix.Mknod(kmsg, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 11))); err != nil {
		t.Fatal(err)
	}
	procs := filepath.Join(cg.v1["devices"], "cgroup.procs")
	out, err := exec.Command("sh", "-c", `echo $$ > `+procs+` && head -c0 /dev/null && echo null-ok && exec 3<`+kmsg+` && echo kmsg-opened`).CombinedOutput()
	if !strings.Contains(string(out), "null-ok") {
		t.Errorf("/dev/null not usable in the build's cgroup: %s", out)
	}
	if err == nil || strings.Contains(string(out), "kmsg-opened") || !strings.Contains(string(out), "Operation not permitted") {
		t.Errorf("a device outside the allow list opened (err %v): %s", err, out)
	}
}

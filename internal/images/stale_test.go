package images

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestUnmountStale: the mounts a killed process left under the cache are
// unmounted and removed; a live process's, and anything not pib's, stay.
func TestUnmountStale(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting needs root")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	s := &Store{cache: cache}
	mounts := map[string]bool{ // mount point → whether it must stay
		filepath.Join(cache, "tmp", fmt.Sprintf("rootfs-%d-1", dead.Process.Pid)):     false,
		filepath.Join(cache, "scan", fmt.Sprintf("scan-view-%d-2", dead.Process.Pid)): false,
		filepath.Join(cache, "tmp", fmt.Sprintf("rootfs-%d-3", os.Getpid())):          true,
		filepath.Join(cache, "tmp", fmt.Sprintf("unpack-%d-4", dead.Process.Pid)):     true,
		filepath.Join(cache, "scan", fmt.Sprintf("scan view-%d-5", dead.Process.Pid)): true,
	}
	for mnt := range mounts {
		if err := os.MkdirAll(mnt, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	}
	if err := s.UnmountStale(); err != nil {
		t.Fatal(err)
	}
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for mnt, stay := range mounts {
		mounted := strings.Contains(string(info), " "+strings.ReplaceAll(mnt, " ", `\040`)+" ")
		if mounted != stay {
			t.Errorf("%s: mounted %v, want %v", mnt, mounted, stay)
		}
		if _, err := os.Stat(mnt); (err == nil) != stay {
			t.Errorf("%s: directory exists %v, want %v", mnt, err == nil, stay)
		}
	}
}

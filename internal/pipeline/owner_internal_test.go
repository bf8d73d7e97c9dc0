package pipeline

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestOwnerDead(t *testing.T) {
	dir := t.TempDir()
	host, _ := os.Hostname()
	self := filepath.Join(dir, "self")
	if err := writeOwner(self); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	gone := cmd.Process.Pid
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	for _, tc := range []struct {
		name string
		path string
		dead bool
	}{
		{"this process", self, false},
		{"an exited process", write("exited", fmt.Sprintf("%s %d 12345\n", host, gone)), true},
		{"a reused PID (other start time)", write("reused", fmt.Sprintf("%s %d 1\n", host, os.Getppid())), true},
		{"a live process", write("live", fmt.Sprintf("%s %d %s\n", host, os.Getppid(), procStart(os.Getppid()))), false},
		{"another machine", write("foreign", fmt.Sprintf("elsewhere %d 12345\n", gone)), false},
		{"no owner file", filepath.Join(dir, "missing"), false},
		{"garbage", write("garbage", "x"), false},
	} {
		if got := ownerDead(tc.path); got != tc.dead {
			t.Errorf("%s: ownerDead = %v, want %v", tc.name, got, tc.dead)
		}
	}
}

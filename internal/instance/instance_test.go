package instance_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/instance"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestLaunchSSH launches the bootable debian-12 image with a generated
// key and runs a command over a real ssh to 127.0.0.1:PORT; another
// account can neither launch the image nor see, stop or remove the
// instance; the per-account limit holds; Close leaves no process or file.
func TestLaunchSSH(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Fatal("needs openssh-client")
	}
	data := t.TempDir()
	is, closeStore, err := testenv.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	base := testenv.ImportDebian12Machine(t, is)
	// A build result: the demo package's file in a layer on the base,
	// owned by the seller that built it.
	upper := t.TempDir()
	if err := os.MkdirAll(filepath.Join(upper, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(upper, "etc", "hello-pib"), []byte("hello from pib\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const owner = "acc-seller"
	im, err := is.AddLayer(context.Background(), base, upper, images.AddLayerOptions{Owner: owner, CreatedBy: "test: hello-pib"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, "instances")
	m, err := instance.New(instance.Config{Images: is, Dir: dir, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			m.Close()
		}
	})
	keyFile := filepath.Join(t.TempDir(), "id")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Launch(ctx, instance.LaunchOptions{Owner: "acc-other", Image: im.ID, SSHKey: string(pub)}); !errors.Is(err, images.ErrNotFound) {
		t.Fatalf("another account launched the image: %v", err)
	}
	if _, err := m.Launch(ctx, instance.LaunchOptions{Owner: owner, Image: im.ID, SSHKey: "not a key\nruncmd: [reboot]"}); err == nil {
		t.Fatal("a malformed SSH key was accepted")
	}
	start := time.Now()
	inst, err := m.Launch(ctx, instance.LaunchOptions{Owner: owner, Image: im.ID, SSHKey: string(pub)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Launch(ctx, instance.LaunchOptions{Owner: owner, Image: im.ID, SSHKey: string(pub)}); !errors.Is(err, instance.ErrLimit) {
		t.Errorf("a second instance over the limit of 1: %v", err)
	}
	if got := m.List("acc-other"); len(got) != 0 {
		t.Errorf("another account sees %d instance(s)", len(got))
	}
	for name, f := range map[string]func() error{
		"get":     func() error { _, err := m.Get("acc-other", inst.ID); return err },
		"console": func() error { _, err := m.Console("acc-other", inst.ID); return err },
		"stop":    func() error { return m.Stop("acc-other", inst.ID) },
		"rm":      func() error { return m.Remove("acc-other", inst.ID) },
	} {
		if err := f(); !errors.Is(err, instance.ErrNotFound) {
			t.Errorf("another account's %s: %v", name, err)
		}
	}

	deadline := time.Now().Add(10 * time.Minute)
	var out []byte
	var stderr strings.Builder
	for {
		stderr.Reset()
		cmd := exec.Command("ssh", "-i", keyFile, "-p", strconv.Itoa(inst.SSHPort),
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
			"-o", "LogLevel=ERROR", "debian@127.0.0.1", "cat /etc/hello-pib; hostname")
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		if err == nil || time.Now().After(deadline) {
			break
		}
		if g, _ := m.Get(owner, inst.ID); g.State != "running" {
			break
		}
		time.Sleep(3 * time.Second)
	}
	if err != nil {
		console, _ := m.Console(owner, inst.ID)
		t.Fatalf("ssh: %v: %s%s\nconsole:\n%s", err, out, stderr.String(), tail(console, 4000))
	}
	if want := "hello from pib\n" + inst.Hostname + "\n"; string(out) != want {
		t.Errorf("ssh ran `cat /etc/hello-pib; hostname`: %q, want %q (the build's file, the seed's hostname)", out, want)
	}
	t.Logf("launch → ssh answered in %v", time.Since(start).Round(time.Second))

	if err := m.Remove(owner, inst.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, inst.ID)); !os.IsNotExist(err) {
		t.Errorf("the instance's files are left: %v", err)
	}
	closed = true
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		t.Errorf("files left after Close: %v", ents)
	}
	if out, _ := exec.Command("pgrep", "-P", strconv.Itoa(os.Getpid()), "qemu").Output(); len(out) > 0 {
		t.Errorf("QEMU left running: %s", out)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

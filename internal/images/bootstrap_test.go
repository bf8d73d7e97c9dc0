package images_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/testenv"
	"github.com/pib-dev/pib/internal/vulndb"
)

// TestBootstrapDebian12 checks the real debian-12 base image that
// testenv bootstraps with Store.Bootstrap once per test run.
func TestBootstrapDebian12(t *testing.T) {
	deb := testenv.Debian12(t)
	s, closeFn, err := testenv.OpenStore(deb.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	ctx := context.Background()
	im, err := s.Get(ctx, "debian-12")
	if err != nil {
		t.Fatal(err)
	}
	if im.ID != deb.ImageID || im.OS != "linux" || im.DistroID != "debian" || im.DistroVersion != "12" || im.Architecture == "" {
		t.Fatalf("debian-12 image: %+v", im)
	}
	root := deb.Rootfs
	exists := func(rel string) bool { _, err := os.Lstat(filepath.Join(root, rel)); return err == nil }

	// The server package set is installed.
	status, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range images.ServerPackages {
		if !bytes.Contains(status, []byte("Package: "+p+"\n")) {
			t.Errorf("package %s is not installed", p)
		}
	}
	// Policy S3: no host keys, root locked, password logins off.
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	if len(keys) != 0 {
		t.Errorf("SSH host keys baked in: %v", keys)
	}
	shadow, _ := os.ReadFile(filepath.Join(root, "etc/shadow"))
	for _, line := range strings.Split(string(shadow), "\n") {
		if f := strings.Split(line, ":"); len(f) > 1 && f[1] != "" && f[1][0] != '!' && f[1][0] != '*' {
			t.Errorf("usable password hash for %s", f[0])
		}
		if strings.HasPrefix(line, "root::") {
			t.Error("root password is blank")
		}
	}
	conf, _ := os.ReadFile(filepath.Join(root, "etc/ssh/sshd_config.d/50-cloud-image.conf"))
	if !bytes.Contains(conf, []byte("PasswordAuthentication no")) {
		t.Errorf("sshd config drop-in: %q", conf)
	}
	if !exists("etc/systemd/system/multi-user.target.wants/ssh-host-keys.service") {
		t.Error("no first-boot host key generation")
	}
	// Cleaned like a cloud image.
	if debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb")); len(debs) != 0 {
		t.Errorf("%d cached .deb files left", len(debs))
	}
	if mid, _ := os.ReadFile(filepath.Join(root, "etc/machine-id")); len(mid) != 0 {
		t.Errorf("machine-id baked in: %q", mid)
	}
}

// TestPackIsDeterministic packs the real Debian tree twice.
func TestPackIsDeterministic(t *testing.T) {
	root := testenv.DebianRootfs(t)
	// A tree bootstrapped before cleanRootfs removed debootstrap's /dev
	// nodes (the shared test cache outlives branches) still has them,
	// which Pack refuses (T2).
	noDev := layer.PackOptions{Exclude: func(rel string) bool { return rel == "dev" }}
	digest := func() [32]byte {
		h := sha256.New()
		if err := layer.Pack(context.Background(), root, h, noDev); err != nil {
			t.Fatal(err)
		}
		var d [32]byte
		copy(d[:], h.Sum(nil))
		return d
	}
	if a, b := digest(), digest(); a != b {
		t.Fatalf("two packs of the same tree differ: %x vs %x", a, b)
	}
}

// BenchmarkDebianImportExport measures export and import of the real
// debian-12 image in each format.
func BenchmarkDebianImportExport(b *testing.B) {
	deb := testenv.Debian12(b)
	src, closeFn, err := testenv.OpenStore(deb.DataDir)
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	ctx := context.Background()
	im, err := src.Get(ctx, "debian-12")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	for _, f := range images.ExportFormats {
		out := filepath.Join(dir, string(f)+".tar")
		if err := src.Export(ctx, im.ID, f, out); err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(out)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("export/"+string(f), func(b *testing.B) {
			b.SetBytes(fi.Size())
			for range b.N {
				if err := src.Export(ctx, im.ID, f, out); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("import/"+string(f), func(b *testing.B) {
			b.SetBytes(fi.Size())
			for range b.N {
				dst, _ := openStore(b)
				if _, err := dst.Import(ctx, out, images.ImportOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("pack", func(b *testing.B) {
		var n countWriter
		for range b.N {
			n = 0
			if err := layer.Pack(ctx, deb.Rootfs, &n, layer.PackOptions{Exclude: func(rel string) bool { return rel == "dev" }}); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(n))
	})
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)

// TestBootstrapDebian12Machine checks the bootable debian-12 image
// (bootstrap's default) that testenv keeps beside the minimal one: a
// kernel and initramfs reachable as /vmlinuz and /initrd.img, root mounted
// by label, a GRUB configuration, DHCP and the NoCloud datasource — and
// still every S3 policy check passing.
func TestBootstrapDebian12Machine(t *testing.T) {
	start := time.Now()
	deb := testenv.Debian12Machine(t)
	t.Logf("bootable debian-12 ready in %v (bootstraps only when not cached)", time.Since(start).Round(time.Second))
	root := deb.Rootfs
	read := func(rel string) string {
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
		}
		return string(data)
	}
	for _, link := range []string{"vmlinuz", "initrd.img"} {
		target, err := os.Readlink(filepath.Join(root, link))
		if err != nil {
			t.Errorf("/%s: %v", link, err)
			continue
		}
		if fi, err := os.Stat(filepath.Join(root, target)); err != nil || !fi.Mode().IsRegular() || fi.Size() < 1<<20 {
			t.Errorf("/%s → %s is not a kernel-sized regular file (%v)", link, target, err)
		}
	}
	status := read("var/lib/dpkg/status")
	for _, p := range append(append([]string{}, images.ServerPackages...), images.MachinePackages...) {
		if !strings.Contains(status, "Package: "+p+"\n") {
			t.Errorf("package %s is not installed", p)
		}
	}
	for rel, want := range map[string]string{
		"etc/fstab":          "LABEL=" + images.RootLabel + "\t/\text4",
		"boot/grub/grub.cfg": "root=LABEL=" + images.RootLabel,
		"etc/cloud/cloud.cfg.d/90-pib-datasource.cfg": "NoCloud",
		"etc/systemd/network/80-pib-dhcp.network":     "DHCP=yes",
	} {
		if got := read(rel); !strings.Contains(got, want) {
			t.Errorf("%s does not contain %q:\n%s", rel, want, got)
		}
	}
	ctx := context.Background()
	sdb, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "vulndb.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	r, err := scan.New(vulndb.New(sdb), scan.Options{}).Scan(ctx, root, scan.Image{ID: deb.ImageID})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Policy {
		if !c.Passed {
			t.Errorf("%s fails on the bootable image: %s %v", c.Rule, c.Message, c.Evidence)
		}
	}
	minimal := testenv.Debian12(t)
	t.Logf("bootable image: %d packages, %s unpacked; minimal: %s", r.Packages, duSize(t, root), duSize(t, minimal.Rootfs))
}

func duSize(t *testing.T, dir string) string {
	out, err := exec.Command("du", "-sh", "--apparent-size", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

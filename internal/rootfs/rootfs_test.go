package rootfs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/rootfs"
)

// hostile builds an image root whose links and special files try to reach
// host files or to hang a reader, next to a host directory holding a
// "secret" no image read may return. Entries: "->target" is a symlink,
// "|fifo" a FIFO, "|zero" a character device 1:5 (/dev/zero's number),
// anything else a regular file with that content.
func hostile(t *testing.T) (*rootfs.FS, string) {
	t.Helper()
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "id_rsa"), []byte("-----BEGIN RSA PRIVATE KEY-----\nhost only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ups := strings.Repeat("../", 20)
	files := map[string]string{
		"usr/lib/os-release":   "ID=debian\n",
		"etc/os-release":       "->../usr/lib/os-release",
		"etc/abs-os-release":   "->/usr/lib/os-release",
		"var":                  "->" + host,                   // absolute host path
		"etc/up":               "->" + ups + host + "/id_rsa", // climbs above the root
		"etc/dotdot":           "->" + ups,                    // a directory link to "the root's parent"
		"etc/self":             "->/proc/self/root" + host,    // magic link route
		"opt/big":              strings.Repeat("x", 100),
		"opt/app/key":          "k",
		"opt/app/fifo":         "|fifo",
		"opt/app/escape":       "->" + host,
		"opt/app/sub/deep":     "d",
		"srv":                  "->/opt/app",
		"etc/ssh/sshd_config":  "->/run/sshd.fifo",
		"run/sshd.fifo":        "|fifo",
		"dev/zero":             "|zero",
		"etc/zero":             "->/dev/zero",
		"etc/ssh/ssh_host_key": "->" + host + "/id_rsa",
	}
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasPrefix(body, "->"):
			err = os.Symlink(body[2:], p)
		case body == "|fifo":
			err = unix.Mkfifo(p, 0o644)
		case body == "|zero":
			if os.Geteuid() != 0 {
				continue // mknod needs root; the FIFO cases still run
			}
			err = unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5)))
		default:
			err = os.WriteFile(p, []byte(body), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := rootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, host
}

// within fails the test if f does not return in time: a reader that opens
// a FIFO blocks forever, one that reads /dev/zero never ends.
func within[T any](t *testing.T, f func() T) T {
	t.Helper()
	c := make(chan T, 1)
	go func() { c <- f() }()
	select {
	case v := <-c:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("hung: a FIFO or device was opened for reading")
		panic("unreachable")
	}
}

func TestReadFile(t *testing.T) {
	r, host := hostile(t)
	for _, tc := range []struct {
		name string
		max  int64
		want string // content, or the error wanted
		err  error
	}{
		{"/usr/lib/os-release", 1 << 10, "ID=debian\n", nil},
		{"/etc/os-release", 1 << 10, "ID=debian\n", nil},     // relative link
		{"/etc/abs-os-release", 1 << 10, "ID=debian\n", nil}, // absolute link: against the image root
		{"/var/id_rsa", 1 << 10, "", fs.ErrNotExist},         // link to a host directory
		{host + "/id_rsa", 1 << 10, "", fs.ErrNotExist},      // the host path itself is an image path
		{"/etc/up", 1 << 10, "", fs.ErrNotExist},             // ../ beyond the root stays at the root
		{"/etc/dotdot" + host + "/id_rsa", 1 << 10, "", fs.ErrNotExist},
		{"/../../.." + host + "/id_rsa", 1 << 10, "", fs.ErrNotExist},
		{"/etc/self/id_rsa", 1 << 10, "", fs.ErrNotExist},
		{"/etc/ssh/ssh_host_key", 1 << 10, "", fs.ErrNotExist},
		{"/opt/app/fifo", 1 << 10, "", rootfs.ErrNotRegular},
		{"/etc/ssh/sshd_config", 1 << 10, "", rootfs.ErrNotRegular}, // link to a FIFO
		{"/etc/zero", 1 << 10, "", rootfs.ErrNotRegular},            // link to /dev/zero's twin
		{"/opt/app", 1 << 10, "", rootfs.ErrNotRegular},
		{"/opt/big", 99, "", rootfs.ErrTooLarge},
		{"/opt/big", 100, strings.Repeat("x", 100), nil},
		{"/opt/missing", 1 << 10, "", fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "/etc/zero" && os.Geteuid() != 0 {
				t.Skip("needs root to make a device node")
			}
			type res struct {
				data []byte
				err  error
			}
			got := within(t, func() res { d, err := r.ReadFile(tc.name, tc.max); return res{d, err} })
			if tc.err != nil {
				if !errors.Is(got.err, tc.err) {
					t.Fatalf("ReadFile(%q) = %q, %v; want error %v", tc.name, got.data, got.err, tc.err)
				}
				return
			}
			if got.err != nil || string(got.data) != tc.want {
				t.Fatalf("ReadFile(%q) = %q, %v; want %q", tc.name, got.data, got.err, tc.want)
			}
		})
	}
}

func TestStat(t *testing.T) {
	r, _ := hostile(t)
	for _, tc := range []struct {
		name  string
		lstat bool
		mode  fs.FileMode // type bits wanted
		err   error
	}{
		{"/etc/os-release", false, 0, nil},
		{"/etc/os-release", true, fs.ModeSymlink, nil},
		{"/var", false, 0, fs.ErrNotExist}, // its target is a host path
		{"/var", true, fs.ModeSymlink, nil},
		{"/etc/ssh/sshd_config", false, fs.ModeNamedPipe, nil},
		{"/srv", false, fs.ModeDir, nil},
		{"/srv/key", false, 0, nil},
	} {
		f := r.Stat
		if tc.lstat {
			f = r.Lstat
		}
		type res struct {
			fi  fs.FileInfo
			err error
		}
		got := within(t, func() res { fi, err := f(tc.name); return res{fi, err} })
		fi, err := got.fi, got.err
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("stat %q (lstat %v): %v, want %v", tc.name, tc.lstat, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("stat %q (lstat %v): %v", tc.name, tc.lstat, err)
			continue
		}
		if got := fi.Mode().Type(); got != tc.mode {
			t.Errorf("stat %q (lstat %v): type %v, want %v", tc.name, tc.lstat, got, tc.mode)
		}
	}
	if got, err := r.ReadLink("/var"); err != nil || !strings.HasPrefix(got, "/") {
		t.Errorf("ReadLink(/var) = %q, %v; want the host path as stored", got, err)
	}
}

// TestWalk: below its start, Walk reports links as links and never enters
// them; the start itself resolves inside the image.
func TestWalk(t *testing.T) {
	r, _ := hostile(t)
	walk := func(start string) (got []string) {
		err := within(t, func() error {
			return r.Walk(start, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					got = append(got, p+" error "+errorKind(err))
					return nil
				}
				got = append(got, p+" "+d.Type().String())
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := []string{
		"/opt d---------",
		"/opt/app d---------",
		"/opt/app/escape L---------",
		"/opt/app/fifo p---------",
		"/opt/app/key ----------",
		"/opt/app/sub d---------",
		"/opt/app/sub/deep ----------",
		"/opt/big ----------",
	}
	if diff := cmp.Diff(want, walk("/opt")); diff != "" {
		t.Errorf("Walk(/opt) (-want +got):\n%s", diff)
	}
	// /srv -> /opt/app: the start follows the link inside the image.
	if diff := cmp.Diff([]string{"/srv d---------", "/srv/escape L---------", "/srv/fifo p---------", "/srv/key ----------", "/srv/sub d---------", "/srv/sub/deep ----------"}, walk("/srv")); diff != "" {
		t.Errorf("Walk(/srv) (-want +got):\n%s", diff)
	}
	// /var -> a host directory: nothing there from the image's view.
	if diff := cmp.Diff([]string{"/var error not-exist"}, walk("/var")); diff != "" {
		t.Errorf("Walk(/var) (-want +got):\n%s", diff)
	}
	var n int
	r.Walk("/opt", func(p string, d fs.DirEntry, err error) error {
		n++
		if p == "/opt/app" {
			return fs.SkipDir
		}
		return nil
	})
	if n != 3 { // /opt, /opt/app (skipped), /opt/big
		t.Errorf("Walk with SkipDir visited %d entries, want 3", n)
	}
}

func errorKind(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "not-exist"
	}
	return err.Error()
}

func TestGlobAndReadDir(t *testing.T) {
	r, _ := hostile(t)
	got, err := r.Glob("/etc/ssh/ssh_host_*")
	if err != nil || !cmp.Equal(got, []string{"/etc/ssh/ssh_host_key"}) {
		t.Errorf("Glob = %v, %v", got, err)
	}
	if got, err := r.Glob("/var/*"); err != nil || len(got) != 0 {
		t.Errorf("Glob(/var/*) through a link to the host = %v, %v; want nothing", got, err)
	}
	if _, err := r.Glob("/etc/["); err == nil {
		t.Error("Glob with a bad pattern: no error")
	}
	ents, err := r.ReadDir("/srv")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"escape", "fifo", "key", "sub"}, names); diff != "" {
		t.Errorf("ReadDir(/srv) (-want +got):\n%s", diff)
	}
	if _, err := r.ReadDir("/var"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadDir(/var) = %v, want not-exist", err)
	}
}

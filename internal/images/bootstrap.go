//go:build linux

package images

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// debianSuites maps the base image names pib can bootstrap to Debian suites.
var debianSuites = map[string]string{
	"debian-11": "bullseye",
	"debian-12": "bookworm",
	"debian-13": "trixie",
}

// BootstrapNames lists the names Bootstrap accepts.
func BootstrapNames() []string {
	var names []string
	for n := range debianSuites {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ServerPackages are installed on top of debootstrap's minbase variant to
// make what a cloud provider ships as a minimal server image: remote login,
// TLS roots, a real init, network tools and privilege escalation.
var ServerPackages = []string{"openssh-server", "ca-certificates", "systemd-sysv", "iproute2", "sudo"}

// cloudInitPackages are added when the archive has cloud-init. debootstrap
// does not resolve virtual packages, so python3-cffi-backend (which
// provides python3-cffi-backend-api-*, needed by python3-cryptography) must
// be named.
var cloudInitPackages = []string{"cloud-init", "python3-cffi-backend"}

// MachinePackages make a server image bootable, as a cloud provider's is:
// Debian's cloud kernel (virtio, no firmware for real hardware) and the
// initramfs tools it needs. debootstrap takes the first alternative of a
// dependency, so initramfs-tools is named rather than left to chance.
// The bootloader itself is not installed in the image: a disk export puts
// the host's GRUB on the disk (internal/disk), so an image carries only
// its configuration (/boot/grub/grub.cfg).
var MachinePackages = []string{"linux-image-cloud-amd64", "initramfs-tools"}

// RootLabel is the file system label of a bootable image's root: its
// fstab, its GRUB configuration and the disks pib makes agree on it, so
// no UUID (which would differ per disk) is baked into the image.
const RootLabel = "pib-root"

// BootstrapOptions configure Bootstrap and Debootstrap.
type BootstrapOptions struct {
	Name   string    // debian-11, debian-12 or debian-13
	Mirror string    // Debian archive URL; empty: the one this machine's apt uses
	Alias  string    // defaults to Name
	Log    io.Writer // debootstrap's progress; nil discards it
	// Minimal leaves out what makes the image a machine (MachinePackages,
	// fstab, GRUB configuration, network and cloud-init datasource
	// settings): a container-style root file system, ~190 MB smaller and
	// faster to bootstrap. The test suite's shared image is minimal.
	Minimal bool
}

// Bootstrap builds a minimal Debian server image with debootstrap, makes it
// pass pib's own image policy (see cleanRootfs) and stores it as a
// one-layer image under its alias.
func (s *Store) Bootstrap(ctx context.Context, opts BootstrapOptions) (*Image, error) {
	if opts.Alias == "" {
		opts.Alias = opts.Name
	}
	if err := ValidAlias(opts.Alias); err != nil {
		return nil, err
	}
	if im, err := s.Get(ctx, opts.Alias); err == nil {
		return nil, ErrAliasTaken.Errorf("image alias is already taken: %q is used by %s; remove it first (pib image rm %s) or pass --alias", opts.Alias, im.ID, opts.Alias)
	}
	work, err := s.tempDir("bootstrap-*")
	if err != nil {
		return nil, err
	}
	defer removeTree(work)
	root := filepath.Join(work, "rootfs")
	if err := Debootstrap(ctx, root, filepath.Join(s.cache, "debootstrap"), opts); err != nil {
		return nil, err
	}
	createdBy := "debootstrap --variant=minbase " + debianSuites[opts.Name] + " + " + strings.Join(ServerPackages, ",")
	if !opts.Minimal {
		createdBy += "," + strings.Join(MachinePackages, ",")
	}
	im, l, err := s.packDir(ctx, root, Image{Alias: opts.Alias}, createdBy)
	if err != nil {
		return nil, fmt.Errorf("store %s image: %w", opts.Name, err)
	}
	// The tree just packed is exactly the layer's unpacked form: keep it as
	// the cache entry instead of unpacking the blob again for the first
	// build.
	if dir := s.layerDir(l.diffID); s.privateDir(filepath.Dir(dir)) == nil {
		os.Rename(root, dir)
	}
	return im, nil
}

// packDir stores a directory tree as a new one-layer image.
func (s *Store) packDir(ctx context.Context, dir string, meta Image, createdBy string) (*Image, *ingested, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(packTree(ctx, dir, pw)) }()
	l, err := s.ingest(ctx, pr, false)
	pr.CloseWithError(errors.New("ingest stopped"))
	if err != nil {
		return nil, nil, err
	}
	im, err := s.recordNew(ctx, []*ingested{l}, meta, createdBy)
	if err != nil {
		s.forget(l.desc.Digest)
		return nil, nil, err
	}
	return im, l, nil
}

// Debootstrap builds the cleaned server root file system for opts.Name
// into dir (which must not exist). debs caches downloaded packages between
// runs ("" for none).
func Debootstrap(ctx context.Context, dir, debs string, opts BootstrapOptions) error {
	suite, ok := debianSuites[opts.Name]
	if !ok {
		return fmt.Errorf("cannot bootstrap %q: pib knows %s", opts.Name, strings.Join(BootstrapNames(), ", "))
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return errors.New("debootstrap is not installed; install it with `apt-get install debootstrap`")
	}
	mirror := opts.Mirror
	if mirror == "" {
		var err error
		if mirror, err = DefaultMirror(); err != nil {
			return err
		}
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	base := slices.Clone(ServerPackages)
	if !opts.Minimal {
		base = append(base, MachinePackages...)
	}
	err := debootstrap(ctx, suite, dir, mirror, debs, append(slices.Clone(base), cloudInitPackages...), log)
	if err != nil && errors.Is(err, errMissingDebs) {
		fmt.Fprintf(log, "pib: the archive has no cloud-init for %s; bootstrapping without it\n", suite)
		os.RemoveAll(dir)
		err = debootstrap(ctx, suite, dir, mirror, debs, base, log)
	}
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	if err := cleanRootfs(dir); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("prepare %s root file system: %w", opts.Name, err)
	}
	if !opts.Minimal {
		if err := machineRootfs(dir); err != nil {
			os.RemoveAll(dir)
			return fmt.Errorf("make the %s root file system bootable: %w", opts.Name, err)
		}
	}
	return nil
}

var errMissingDebs = errors.New("packages missing from the archive")

func debootstrap(ctx context.Context, suite, dir, mirror, debs string, pkgs []string, log io.Writer) error {
	args := []string{"--variant=minbase", "--include=" + strings.Join(pkgs, ",")}
	if debs != "" {
		abs, err := filepath.Abs(filepath.Join(debs, suite))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return err
		}
		args = append(args, "--cache-dir="+abs)
	}
	args = append(args, suite, dir, mirror)
	cmd := exec.CommandContext(ctx, "debootstrap", args...)
	var tail bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
			tail.WriteString(sc.Text() + "\n")
			if tail.Len() > 64<<10 {
				tail.Next(tail.Len() - 32<<10)
			}
		}
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if err == nil {
		return nil
	}
	out := tail.String()
	if strings.Contains(out, "Couldn't find these debs") {
		return fmt.Errorf("debootstrap %s: %w: %s", suite, errMissingDebs, lastLines(out, 3))
	}
	return fmt.Errorf("debootstrap %s from %s failed (%v); its last output:\n%s\ncheck the mirror (--mirror) and the log in %s/debootstrap/debootstrap.log", suite, mirror, err, lastLines(out, 15), dir)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DefaultMirror returns the Debian archive this machine's apt already
// uses: the first deb URI in /etc/apt/sources.list or sources.list.d
// (one-line or deb822 format) that serves a plain suite (not -security or
// -updates).
func DefaultMirror() (string, error) {
	return MirrorFrom("/etc/apt")
}

var oneLineSource = regexp.MustCompile(`^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)`)

// MirrorFrom is DefaultMirror reading the apt configuration in aptDir.
func MirrorFrom(aptDir string) (string, error) {
	files := []string{filepath.Join(aptDir, "sources.list")}
	more, _ := filepath.Glob(filepath.Join(aptDir, "sources.list.d", "*"))
	files = append(files, more...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		switch {
		case strings.HasSuffix(f, ".sources"):
			for _, stanza := range strings.Split(string(data), "\n\n") {
				fields := map[string]string{}
				for _, line := range strings.Split(stanza, "\n") {
					if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(strings.TrimSpace(line), "#") {
						fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
					}
				}
				if !slices.Contains(strings.Fields(fields["types"]), "deb") || strings.EqualFold(fields["enabled"], "no") {
					continue
				}
				uris := strings.Fields(fields["uris"])
				if len(uris) > 0 && slices.ContainsFunc(strings.Fields(fields["suites"]), plainSuite) {
					return uris[0], nil
				}
			}
		case strings.HasSuffix(f, ".list"):
			for _, line := range strings.Split(string(data), "\n") {
				if m := oneLineSource.FindStringSubmatch(strings.TrimSpace(line)); m != nil && plainSuite(m[3]) {
					return m[2], nil
				}
			}
		}
	}
	return "", errors.New("found no Debian mirror in /etc/apt/sources.list or /etc/apt/sources.list.d; pass --mirror http://…/debian")
}

func plainSuite(s string) bool { return s != "" && !strings.ContainsAny(s, "-/") }

// cleanRootfs turns a fresh debootstrap tree into what cloud providers
// ship, and so into an image that passes pib's image policy (SPEC S3).
// Each step says why.
func cleanRootfs(root string) error {
	p := func(rel string) string { return filepath.Join(root, rel) }
	// Downloaded .deb files and package lists: ~110 MB nobody needs at
	// run time, and scanners would unpack every cached .deb.
	for _, pattern := range []string{"var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "var/log/bootstrap.log", "var/log/apt/*", "tmp/*", "var/tmp/*"} {
		matches, _ := filepath.Glob(p(pattern))
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	for _, rel := range []string{"var/log/dpkg.log", "var/log/alternatives.log"} {
		if err := truncateIfExists(p(rel)); err != nil {
			return err
		}
	}
	// S3.6: SSH host private keys must not be baked in — every instance
	// would share them. They are generated at first boot instead.
	keys, _ := filepath.Glob(p("etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	unit := `[Unit]
Description=Generate SSH host keys at first boot
Before=ssh.service
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
`
	if err := os.WriteFile(p("etc/systemd/system/ssh-host-keys.service"), []byte(unit), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(p("etc/systemd/system/multi-user.target.wants"), 0o755); err != nil {
		return err
	}
	if err := os.Symlink("/etc/systemd/system/ssh-host-keys.service", p("etc/systemd/system/multi-user.target.wants/ssh-host-keys.service")); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	// S3.1, S3.2: key-only SSH logins. sshd takes the first value it reads
	// and Debian's sshd_config includes sshd_config.d/*.conf first.
	if err := os.MkdirAll(p("etc/ssh/sshd_config.d"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p("etc/ssh/sshd_config.d/50-cloud-image.conf"), []byte("# Cloud image defaults: log in with keys only.\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"), 0o644); err != nil {
		return err
	}
	// S3.3, S3.5: root locked, no usable password hash for anyone.
	if err := lockPasswords(p("etc/shadow")); err != nil {
		return err
	}
	// Per-instance identity is made at first boot, not baked in.
	if err := os.WriteFile(p("etc/machine-id"), nil, 0o444); err != nil {
		return err
	}
	if fi, err := os.Lstat(p("var/lib/dbus/machine-id")); err == nil && fi.Mode().IsRegular() {
		os.Remove(p("var/lib/dbus/machine-id"))
	}
	if err := os.WriteFile(p("etc/hostname"), []byte("localhost\n"), 0o644); err != nil {
		return err
	}
	// debootstrap copies the build host's resolver; instances get theirs
	// from DHCP or cloud-init.
	if err := os.WriteFile(p("etc/resolv.conf"), nil, 0o644); err != nil {
		return err
	}
	// debootstrap mknods /dev/null, /dev/zero, … A layer carries no device
	// nodes, FIFOs or sockets (T2; layer.Pack refuses them): a machine's
	// /dev is a devtmpfs, a build's the sandbox's own.
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0 {
			return os.Remove(path)
		}
		return nil
	})
}

func truncateIfExists(path string) error {
	if err := os.Truncate(path, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// lockPasswords replaces every usable password hash in a shadow file with
// "*" (locked, as Debian ships root).
func lockPasswords(shadow string) error {
	data, err := os.ReadFile(shadow)
	if err != nil {
		return err
	}
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		f := strings.Split(line, ":")
		if len(f) < 2 {
			continue
		}
		if !strings.HasPrefix(f[1], "!") && !strings.HasPrefix(f[1], "*") {
			f[1] = "*"
			lines[i] = strings.Join(f, ":")
		}
	}
	return os.WriteFile(shadow, []byte(strings.Join(lines, "\n")), 0o640)
}

// machineRootfs adds what a bootable server image needs beyond its
// packages. Each file says why; none of it is a network configuration
// file rule I6 watches for change by a build, it is the base image's own.
func machineRootfs(root string) error {
	p := func(rel string) string { return filepath.Join(root, rel) }
	// A kernel without its initramfs cannot mount a root by label.
	kernels, _ := filepath.Glob(p("boot/vmlinuz-*"))
	initrds, _ := filepath.Glob(p("boot/initrd.img-*"))
	if len(kernels) == 0 || len(initrds) == 0 {
		return fmt.Errorf("no kernel or initramfs in /boot after installing %s; see debootstrap's log", strings.Join(MachinePackages, ", "))
	}
	slices.Sort(kernels)
	slices.Sort(initrds)
	// /vmlinuz and /initrd.img, as Debian's kernel packages make them on
	// a real install, so the GRUB configuration names no kernel version
	// and survives a kernel upgrade inside the image.
	for link, target := range map[string]string{"vmlinuz": kernels[len(kernels)-1], "initrd.img": initrds[len(initrds)-1]} {
		rel, err := filepath.Rel(root, target)
		if err != nil {
			return err
		}
		os.Remove(p(link))
		if err := os.Symlink(rel, p(link)); err != nil {
			return err
		}
	}
	files := []struct {
		rel, text string
	}{
		// Mounted by label: a disk made from the image (internal/disk)
		// labels its root so; no per-disk UUID is baked in.
		{"etc/fstab", "# <file system>\t<mount point>\t<type>\t<options>\t<dump>\t<pass>\nLABEL=" + RootLabel + "\t/\text4\terrors=remount-ro\t0\t1\n"},
		// Read by the GRUB that internal/disk puts on a disk: the serial
		// console is where a hypervisor's log, and pib's boot test, read.
		{"boot/grub/grub.cfg", `# pib: boots /vmlinuz with its initramfs from the root labelled ` + RootLabel + `.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
set default=0
menuentry "Debian GNU/Linux" {
	search --no-floppy --label --set=root ` + RootLabel + `
	linux /vmlinuz root=LABEL=` + RootLabel + ` ro console=tty0 console=ttyS0,115200n8
	initrd /initrd.img
}
`},
		// DHCP on any Ethernet interface with systemd-networkd, which the
		// image already has (no ifupdown or DHCP client package needed).
		// systemd-networkd-wait-online is deliberately not enabled: a
		// machine without a network device (pib's boot test) would wait
		// for it and fail it.
		{"etc/systemd/network/80-pib-dhcp.network", "[Match]\nType=ether\n\n[Network]\nDHCP=yes\n"},
		// NoCloud first: a seed (an ISO labelled cidata, or
		// /var/lib/cloud/seed/nocloud) carries the SSH key and hostname;
		// without one cloud-init falls back to doing nothing.
		// locale: false because minbase has no locales package, so
		// cloud-init's locale module (update-locale) would fail every
		// boot and cloud-init would finish with an error (rule V3).
		{"etc/cloud/cloud.cfg.d/90-pib-datasource.cfg", "# pib: instances are configured by a NoCloud seed.\ndatasource_list: [ NoCloud, None ]\n# minbase has no locales package (update-locale): keep the C.UTF-8 default.\nlocale: false\n"},
	}
	for _, f := range files {
		if strings.HasPrefix(f.rel, "etc/cloud/") && !exists(p("usr/bin/cloud-init")) {
			continue // an archive without cloud-init (see Debootstrap)
		}
		if err := os.MkdirAll(filepath.Dir(p(f.rel)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p(f.rel), []byte(f.text), 0o644); err != nil {
			return err
		}
	}
	for link, target := range map[string]string{
		"etc/systemd/system/multi-user.target.wants/systemd-networkd.service": "/lib/systemd/system/systemd-networkd.service",
		"etc/systemd/system/sockets.target.wants/systemd-networkd.socket":     "/lib/systemd/system/systemd-networkd.socket",
	} {
		if err := os.MkdirAll(filepath.Dir(p(link)), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(target, p(link)); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

//go:build linux

// Package instance launches images as running machines for their owners:
// a QEMU process (package machine) per instance, on a copy-on-write qcow2
// layer over the image's cached disk, with a cloud-init NoCloud seed (a
// small FAT disk labelled CIDATA) carrying the owner's SSH key and a
// hostname, and user-mode networking whose only way in is the guest's SSH
// port forwarded to 127.0.0.1:PORT.
//
// The Manager supervises the processes of the process that owns it: it
// stops them all and removes their files on Close (pib serve's shutdown);
// an instance does not outlive its supervisor.
//
// Limits: instances live in memory, so a restarted supervisor has none
// (their files are removed at start); the forwarded port is picked free
// just before QEMU binds it, and another local process could take it in
// between (the launch then fails and says so).
package instance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/machine"
	"github.com/pib-dev/pib/internal/problem"
)

// Instance is one launched machine as its owner sees it.
type Instance struct {
	ID       string `json:"id"`
	Owner    string `json:"owner"`
	ImageID  string `json:"image_id"`
	Hostname string `json:"hostname"`
	SSHPort  int    `json:"ssh_port"` // on 127.0.0.1
	MemoryMB int    `json:"memory_mb"`
	CPUs     int    `json:"cpus"`
	State    string `json:"state"` // starting, running or stopped
	// SSHReady: the guest's SSH server answered on SSHPort (checked by
	// the supervisor, on its own loopback).
	SSHReady bool      `json:"ssh_ready"`
	Created  time.Time `json:"created"`
}

// Errors callers test with errors.Is.
var (
	ErrNotFound = problem.New(problem.NotFound, "instance not found")
	// ErrLimit: the account runs as many instances as it may.
	ErrLimit = &problem.Error{Code: problem.Conflict, Reason: "InstanceLimitExceeded", Message: "instance limit reached"}
)

// Config configures a Manager.
type Config struct {
	Images *images.Store
	// Dir holds each instance's disk layer, seed and firmware variables;
	// it is emptied at New and Close.
	Dir string
	// Limit is how many instances one account may have (default
	// DefaultLimit).
	Limit int
	// Accel is machine.Config.Accel.
	Accel string
}

// DefaultLimit is how many instances one account may have by default:
// each takes its memory (1 GiB by default) and, under software
// emulation, CPU time while it boots.
const DefaultLimit = 2

// Manager launches and supervises instances.
type Manager struct {
	cfg Config
	mu  sync.Mutex
	all map[string]*entry
}

type entry struct {
	inst Instance
	m    *machine.Machine
	dir  string
}

// New returns a Manager; what an earlier one left in cfg.Dir is removed.
func New(cfg Config) (*Manager, error) {
	if cfg.Limit == 0 {
		cfg.Limit = DefaultLimit
	}
	if err := os.RemoveAll(cfg.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, all: map[string]*entry{}}, nil
}

// LaunchOptions describe one launch.
type LaunchOptions struct {
	Owner    string // the account launching: it must own the image
	Image    string // ID or alias
	SSHKey   string // an OpenSSH public key line, for the image's default user
	MemoryMB int    // default 1024
	CPUs     int    // default 2
}

var sshKey = regexp.MustCompile(`^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]{16,}( [ -~]{0,256})?$`)

// Launch boots a new instance of an image the owner owns (a buyer its
// private images, a seller its build results): another account's image
// answers as a missing one.
func (m *Manager) Launch(ctx context.Context, o LaunchOptions) (*Instance, error) {
	key := strings.TrimSpace(o.SSHKey)
	if len(key) > 16<<10 || !sshKey.MatchString(key) {
		return nil, &problem.Error{Code: problem.Invalid, Field: "ssh_key", Message: "give one OpenSSH public key line (the content of ~/.ssh/id_ed25519.pub, say); without it nobody can log in"}
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 1024
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.MemoryMB < 256 || o.MemoryMB > 16384 || o.CPUs < 1 || o.CPUs > 8 {
		return nil, &problem.Error{Code: problem.Invalid, Field: "memory", Message: "memory must be 256 MiB to 16 GiB and cpus 1 to 8"}
	}
	im, err := m.cfg.Images.GetOwned(ctx, o.Owner, o.Image)
	if err != nil {
		return nil, err
	}
	id := newID()
	e := &entry{inst: Instance{ID: id, Owner: o.Owner, ImageID: im.ID, Hostname: "pib-" + id[2:10],
		MemoryMB: o.MemoryMB, CPUs: o.CPUs, State: "starting", Created: time.Now().UTC()}, dir: filepath.Join(m.cfg.Dir, id)}
	m.mu.Lock()
	n := 0
	for _, x := range m.all {
		if x.inst.Owner == o.Owner {
			n++
		}
	}
	if n >= m.cfg.Limit {
		m.mu.Unlock()
		return nil, ErrLimit.Errorf("this account has %d instance(s), its limit: remove one first (pib instance rm ID)", n)
	}
	m.all[id] = e // reserves the slot while the disk is prepared
	m.mu.Unlock()

	inst, err := m.start(ctx, e, im, key)
	if err != nil {
		m.mu.Lock()
		delete(m.all, id)
		m.mu.Unlock()
		os.RemoveAll(e.dir)
		return nil, err
	}
	return inst, nil
}

func (m *Manager) start(ctx context.Context, e *entry, im *images.Image, key string) (*Instance, error) {
	base, err := m.cfg.Images.Disk(ctx, im, 0, images.DiskRaw)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return nil, err
	}
	layer := filepath.Join(e.dir, "disk.qcow2")
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, layer).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("make the instance's disk: %w: %s", err, out)
	}
	seed := filepath.Join(e.dir, "seed.img")
	if err := writeSeed(ctx, seed, e.inst.ID, e.inst.Hostname, key); err != nil {
		return nil, fmt.Errorf("make the instance's cloud-init seed: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	e.inst.SSHPort = port
	// The machine runs until Stop or Close, not until the request ends.
	mc, err := machine.Start(context.WithoutCancel(ctx), machine.Config{Disk: layer, Format: "qcow2", Firmware: machine.BIOS,
		MemoryMB: e.inst.MemoryMB, CPUs: e.inst.CPUs, Seed: seed, SSHPort: port, WorkDir: e.dir, Accel: m.cfg.Accel})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	e.m, e.inst.State = mc, "running"
	inst := e.inst
	m.mu.Unlock()
	go m.watchSSH(e, mc)
	return &inst, nil
}

// watchSSH marks the instance SSHReady once its forwarded port answers
// with an SSH banner. QEMU's user-mode network accepts a connection on
// the forwarded port before the guest listens (and then closes it), so a
// connection alone proves nothing; the banner comes from the guest.
func (m *Manager) watchSSH(e *entry, mc *machine.Machine) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e.inst.SSHPort))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-mc.Done():
			return
		case <-tick.C:
		}
		if sshBanner(addr) {
			m.mu.Lock()
			e.inst.SSHReady = true
			m.mu.Unlock()
			return
		}
	}
}

// sshBanner reports whether addr answers with an SSH identification
// string (RFC 4253, 4.2) within a few seconds.
func sshBanner(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	return err == nil && string(buf) == "SSH-"
}

// writeSeed makes a NoCloud seed: a FAT disk labelled CIDATA holding
// meta-data and user-data. Values are written as JSON strings (YAML reads
// them as such), so nothing in them can add configuration.
func writeSeed(ctx context.Context, path, id, hostname, key string) error {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	files := map[string]string{
		"meta-data": "instance-id: " + q(id) + "\nlocal-hostname: " + q(hostname) + "\n",
		"user-data": "#cloud-config\nhostname: " + q(hostname) + "\nssh_authorized_keys:\n  - " + q(key) + "\n",
	}
	dir := filepath.Dir(path)
	if out, err := exec.CommandContext(ctx, "mkfs.vfat", "-n", "CIDATA", "-C", path, "2048").CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.vfat: %w: %s (apt-get install dosfstools)", err, out)
	}
	for name, text := range files {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "mcopy", "-i", path, f, "::/"+name)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("mcopy: %w: %s (apt-get install mtools)", err, out)
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port for SSH: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func newID() string {
	b := make([]byte, 9)
	rand.Read(b)
	return "i-" + hex.EncodeToString(b)[:17]
}

// get returns the owner's instance id; another account's answers as a
// missing one.
func (m *Manager) get(owner, id string) (*entry, error) {
	e, ok := m.all[id]
	if !ok || e.inst.Owner != owner {
		return nil, ErrNotFound.Errorf("instance not found: %q", id)
	}
	return e, nil
}

func (e *entry) snapshot() Instance {
	inst := e.inst
	if e.m != nil && inst.State == "running" {
		select {
		case <-e.m.Done():
			inst.State = "stopped"
		default:
		}
	}
	if inst.State != "running" {
		inst.SSHReady = false
	}
	return inst
}

// Get returns one of the owner's instances.
func (m *Manager) Get(owner, id string) (*Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.get(owner, id)
	if err != nil {
		return nil, err
	}
	inst := e.snapshot()
	return &inst, nil
}

// List returns the owner's instances, oldest first.
func (m *Manager) List(owner string) []*Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []*Instance{}
	for _, e := range m.all {
		if e.inst.Owner == owner {
			inst := e.snapshot()
			out = append(out, &inst)
		}
	}
	slices.SortFunc(out, func(a, b *Instance) int { return a.Created.Compare(b.Created) })
	return out
}

// Console returns the last bytes of the instance's serial console: guest
// output, to be shown as untrusted text.
func (m *Manager) Console(owner, id string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.get(owner, id)
	if err != nil {
		return nil, err
	}
	if e.m == nil {
		return nil, nil
	}
	return e.m.Console(), nil
}

// Stop powers the instance off (its disk is kept until Remove).
func (m *Manager) Stop(owner, id string) error {
	m.mu.Lock()
	e, err := m.get(owner, id)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if e.m != nil {
		e.m.Stop()
	}
	m.mu.Lock()
	e.inst.State = "stopped"
	m.mu.Unlock()
	return nil
}

// Remove stops the instance and deletes its files.
func (m *Manager) Remove(owner, id string) error {
	if err := m.Stop(owner, id); err != nil {
		return err
	}
	m.mu.Lock()
	e := m.all[id]
	delete(m.all, id)
	m.mu.Unlock()
	if err := os.RemoveAll(e.dir); err != nil {
		return fmt.Errorf("remove instance %s's files: %w", id, err)
	}
	return nil
}

// Close stops every instance and removes their files.
func (m *Manager) Close() error {
	m.mu.Lock()
	all := m.all
	m.all = map[string]*entry{}
	m.mu.Unlock()
	var errs []error
	for _, e := range all {
		if e.m != nil {
			e.m.Stop()
		}
		errs = append(errs, os.RemoveAll(e.dir))
	}
	return errors.Join(errs...)
}

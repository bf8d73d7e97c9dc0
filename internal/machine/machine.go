//go:build linux

// Package machine runs a disk image as a QEMU virtual machine: the one
// runner behind the boot test (rules V1–V3) and launched instances.
//
// Everything a guest writes is hostile data (SPEC T2): its serial console
// and probe port are read through pipes into bounded buffers (the last
// MaxConsole bytes are kept), never into files the guest can grow without
// limit, and never parsed for paths the host would open.
//
// Acceleration: KVM is used only when asked for (Config.Accel "kvm", or
// PIB_QEMU_ACCEL=kvm). /dev/kvm existing is not proof that it works: on
// nested hosts guests hang during early boot, which no quick check tells
// apart from a slow boot. Software emulation (TCG, multi-threaded) always
// works and boots Debian 12 in ~15 s with 2 vCPUs.
package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pib-dev/pib/internal/disk"
)

// Firmware boots the machine.
type Firmware string

const (
	BIOS Firmware = "bios" // SeaBIOS, QEMU's default
	UEFI Firmware = "uefi" // OVMF (Debian's ovmf package)
)

// OVMF firmware files (Debian's ovmf package, 4 MiB variant).
var (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// MaxConsole is how much of a guest's console (and probe output) is kept.
const MaxConsole = 1 << 20

// Config describes one machine.
type Config struct {
	Disk   string // disk image; written to unless Snapshot
	Format string // raw or qcow2
	// Chain, when set instead of Disk, is a qcow2 chain, bottom first,
	// booted as one disk whose top file takes the writes: each file's
	// backing is the one below it, whatever its header names
	// (disk.ChainSpec).
	Chain    []string
	Snapshot bool // discard the guest's writes to Disk
	Firmware Firmware
	MemoryMB int // default 1024
	CPUs     int // default 2
	// Seed is a NoCloud seed image (a disk labelled cidata), attached as
	// a second drive; "" for none.
	Seed string
	// SSHPort > 0 gives the guest user-mode networking with 127.0.0.1:SSHPort
	// forwarded to its port 22, and nothing else reachable from outside;
	// 0 gives the guest no network device at all.
	SSHPort int
	// Probe adds a second serial port (ttyS1 in the guest) read into
	// Machine.Probe.
	Probe bool
	// AgentSocket, when set, gives the guest a virtio-serial port named
	// AgentPort (/dev/virtio-ports/org.pib.agent.0 in a Linux guest)
	// whose host end is a Unix socket QEMU listens on at this path: the
	// build agent's channel (package vmbuild). The caller connects once
	// QEMU has started (DialAgent).
	AgentSocket string
	// NoReboot makes a guest reboot end QEMU (-no-reboot), as a power-off
	// does: a build machine that reboots is a finding (I5), not a second
	// boot.
	NoReboot bool
	// Accel is "tcg" (default) or "kvm"; empty reads PIB_QEMU_ACCEL.
	Accel string
	// WorkDir holds the machine's own files (the UEFI variable store); it
	// must exist and is the caller's to remove.
	WorkDir string
}

// AgentPort is the name of the agent's virtio-serial port (Config.AgentSocket).
const AgentPort = "org.pib.agent.0"

// Machine is a running QEMU process.
type Machine struct {
	cmd     *exec.Cmd
	console *tail
	probe   *tail
	done    chan struct{}
	err     error
}

// CheckQEMU says what to install when QEMU is missing.
func CheckQEMU(fw Firmware) error {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return errors.New("running machines needs QEMU: apt-get install qemu-system-x86")
	}
	if fw == UEFI {
		if _, err := os.Stat(OVMFCode); err != nil {
			return errors.New("booting with UEFI needs OVMF: apt-get install ovmf")
		}
	}
	return nil
}

// Start starts the machine. It runs until Stop, until the guest powers
// off, or until ctx ends (then it is killed).
func Start(ctx context.Context, c Config) (*Machine, error) {
	if err := CheckQEMU(c.Firmware); err != nil {
		return nil, err
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = 1024
	}
	if c.CPUs == 0 {
		c.CPUs = 2
	}
	accel := c.Accel
	if accel == "" {
		accel = os.Getenv("PIB_QEMU_ACCEL")
	}
	switch accel {
	case "", "tcg":
		accel = "tcg,thread=multi"
	case "kvm":
	default:
		return nil, fmt.Errorf("unknown accelerator %q; use tcg or kvm", accel)
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
		"-accel", accel, "-smp", strconv.Itoa(c.CPUs), "-m", strconv.Itoa(c.MemoryMB),
		"-serial", "stdio",
		// A source of randomness: without one the guest's kernel waits for
		// entropy it gathers from timer jitter, which under TCG on a loaded
		// host stalled systemd-random-seed for minutes (a soft lockup in
		// try_to_generate_entropy, seen in TestLaunchSSH).
		"-device", "virtio-rng-pci",
	}
	if len(c.Chain) > 0 {
		args = append(args, "-blockdev", disk.ChainBlockdev("disk0", false, c.Chain...), "-device", "virtio-blk-pci,drive=disk0,bootindex=0")
	} else {
		args = append(args, "-drive", "file="+c.Disk+",format="+c.Format+",if=virtio,snapshot="+onOff(c.Snapshot))
	}
	var extra []*os.File
	var probeR *os.File
	if c.Probe {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		probeR = r
		extra = append(extra, w)
		// ExtraFiles[0] is fd 3 in QEMU; it opens /dev/fd/3, the pipe.
		args = append(args, "-chardev", "file,id=probe,path=/dev/fd/3", "-serial", "chardev:probe")
	}
	if c.AgentSocket != "" {
		// server=on,wait=off: QEMU creates the socket and boots without
		// waiting for the host side to connect.
		args = append(args, "-device", "virtio-serial-pci",
			"-chardev", "socket,id=agent,server=on,wait=off,path="+c.AgentSocket,
			"-device", "virtserialport,chardev=agent,name="+AgentPort)
	}
	if c.NoReboot {
		args = append(args, "-no-reboot")
	}
	if c.Seed != "" {
		args = append(args, "-drive", "file="+c.Seed+",format=raw,if=virtio,readonly=on")
	}
	if c.SSHPort > 0 {
		// restrict=on: the guest reaches nothing outside; only the
		// forwarded port reaches it, on loopback only.
		args = append(args, "-nic", fmt.Sprintf("user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22", c.SSHPort))
	} else {
		args = append(args, "-nic", "none")
	}
	if c.Firmware == UEFI {
		vars := filepath.Join(c.WorkDir, "OVMF_VARS.fd")
		data, err := os.ReadFile(OVMFVars)
		if err != nil {
			return nil, fmt.Errorf("read OVMF variables: %w (apt-get install ovmf)", err)
		}
		if err := os.WriteFile(vars, data, 0o600); err != nil {
			return nil, err
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &limitWriter{w: &stderr, n: 64 << 10}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start QEMU: %w", err)
	}
	for _, f := range extra {
		f.Close()
	}
	m := &Machine{cmd: cmd, console: newTail(), probe: newTail(), done: make(chan struct{})}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() { defer readers.Done(); io.Copy(m.console, stdout) }()
	if probeR != nil {
		readers.Add(1)
		go func() { defer readers.Done(); io.Copy(m.probe, probeR); probeR.Close() }()
	}
	slog.Debug("machine started", "pid", cmd.Process.Pid, "args", args)
	go func() {
		readers.Wait()
		err := cmd.Wait()
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		m.err = err
		close(m.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			m.Stop()
		case <-m.done:
		}
	}()
	return m, nil
}

// DialAgent connects to the agent port's host end (Config.AgentSocket),
// waiting for QEMU to create the socket.
func (m *Machine) DialAgent(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to the agent port: %w (last: %v)", ctx.Err(), err)
		case <-m.done:
			return nil, fmt.Errorf("QEMU exited before its agent port could be reached: %v", m.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// Pid is the QEMU process's ID.
func (m *Machine) Pid() int { return m.cmd.Process.Pid }

// Done is closed when QEMU has exited.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Err is why QEMU exited (after Done).
func (m *Machine) Err() error { return m.err }

// Console returns the last MaxConsole bytes of the guest's serial console.
func (m *Machine) Console() []byte { return m.console.Bytes() }

// Probe returns what the guest wrote to its second serial port.
func (m *Machine) Probe() []byte { return m.probe.Bytes() }

// Stop kills QEMU and waits for it to exit. A machine's disk is a
// throw-away copy or an instance's own, so no guest shutdown is waited for.
func (m *Machine) Stop() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.done
	return nil
}

// Wait waits until the console matches re, QEMU exits, or ctx ends.
func (m *Machine) Wait(ctx context.Context, re *regexp.Regexp) error {
	return m.waitOn(ctx, m.console, re, "console")
}

// WaitProbe waits until the probe output matches re.
func (m *Machine) WaitProbe(ctx context.Context, re *regexp.Regexp) error {
	return m.waitOn(ctx, m.probe, re, "probe port")
}

func (m *Machine) waitOn(ctx context.Context, t *tail, re *regexp.Regexp, what string) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if re.Match(t.Bytes()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q on the %s: %w", re, what, ctx.Err())
		case <-m.done:
			if re.Match(t.Bytes()) {
				return nil
			}
			return fmt.Errorf("QEMU exited before %q appeared on the %s: %v", re, what, m.err)
		case <-tick.C:
		}
	}
}

// tail keeps the last MaxConsole bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func newTail() *tail { return &tail{} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > MaxConsole {
		t.buf = append(t.buf[:0:0], t.buf[len(t.buf)-MaxConsole:]...)
	}
	return len(p), nil
}

func (t *tail) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf)
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

//go:build linux

package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/netwatch"
	"github.com/pib-dev/pib/internal/power"
)

// watch is what the runner sets up around one installer run in the guest
// and undoes afterwards: the I5 reboot wrappers, and (in a guest's own
// namespaces only) the I2 recorder, the I6 network snapshot and the
// resolv.conf that points at the recorder.
type watch struct {
	ev        Events
	binDir    string
	powerc    chan string
	fifo      *os.File
	rec       *netwatch.Recorder
	before    netwatch.State
	resolv    string // the file bound over /etc/resolv.conf's target
	target    string // that target
	created   bool   // pib created target (the image had no resolv.conf)
	resolvWas []byte
}

const recorderResolv = "# written by pib: every lookup is recorded (I2)\nnameserver 127.0.0.1\noptions attempts:1 timeout:2\n"

// startWatch installs the wrappers in a new directory in base and, when
// net is true, the network watch. An error means a rule could not be watched: the run must not go
// on without it.
func startWatch(ev Events, base string, net bool) (*watch, error) {
	w := &watch{ev: ev, powerc: make(chan string, 4)}
	// Beside the staging directory (/var/tmp/pib in a guest, which no
	// layer takes), not in /tmp: a guest that dies mid-run keeps it on
	// its disk.
	dir, err := os.MkdirTemp(base, ".pib-agent-bin-")
	if err != nil {
		return nil, fmt.Errorf("reboot wrappers (I5): %w", err)
	}
	w.binDir = dir
	fifo := filepath.Join(dir, "power")
	if err := unix.Mkfifo(fifo, 0o622); err != nil {
		w.stop()
		return nil, fmt.Errorf("reboot wrappers (I5): %w", err)
	}
	for name, body := range power.Wrappers(fifo) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			w.stop()
			return nil, fmt.Errorf("reboot wrappers (I5): %w", err)
		}
	}
	// O_RDWR: the open does not wait for a writer, and EOF never comes
	// between two wrappers' writes.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		w.stop()
		return nil, fmt.Errorf("reboot wrappers (I5): %w", err)
	}
	w.fifo = f
	go func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := truncate(strings.TrimSpace(sc.Text()), maxMessage/2)
			if line == "" {
				continue
			}
			// Tell the host at once: if the guest goes down before the
			// result, the host still knows why (I5).
			if ev.Power != nil {
				ev.Power(PowerEvent{Time: time.Now().UTC(), Command: line, Verb: power.Verb(line)})
			}
			select {
			case w.powerc <- power.Ran(line):
			default:
			}
		}
	}()
	if !net {
		return w, nil
	}
	// The recorder first, so its own loopback routes and nftables table
	// are part of the "before" state (as in the sandbox).
	w.rec, err = netwatch.StartRecorder(func(format string, args ...any) { note(ev, format, args...) })
	if err != nil {
		w.stop()
		return nil, fmt.Errorf("network recorder (I2): %w", err)
	}
	w.before, err = netwatch.Snapshot()
	if err != nil {
		w.stop()
		return nil, fmt.Errorf("record the network state (I6): %w", err)
	}
	if err := w.bindResolv(); err != nil {
		w.stop()
		return nil, fmt.Errorf("point resolv.conf at the DNS recorder (I2): %w", err)
	}
	return w, nil
}

// bindResolv bind-mounts a resolv.conf naming the recorder over the
// guest's: the disk's file is not changed, and the installer's writes land
// in ours, where I6 sees them.
func (w *watch) bindResolv() error {
	target := "/etc/resolv.conf"
	if t, err := filepath.EvalSymlinks(target); err == nil {
		target = t
	} else if l, err := os.Readlink(target); err == nil && strings.HasPrefix(l, "/run/") {
		// A dangling link into /run (systemd-resolved not running).
		os.MkdirAll(filepath.Dir(l), 0o755)
		os.WriteFile(l, nil, 0o644)
		target = l
	} else {
		if err := os.WriteFile(target, nil, 0o644); err != nil {
			return err
		}
		w.created = true
	}
	f, err := os.CreateTemp(w.binDir, "resolv.conf-")
	if err != nil {
		return err
	}
	f.WriteString(recorderResolv)
	f.Chmod(0o644)
	f.Close()
	if err := unix.Mount(f.Name(), target, "", unix.MS_BIND, ""); err != nil {
		if w.created {
			os.Remove(target)
		}
		return err
	}
	w.resolv, w.target = f.Name(), target
	w.resolvWas = []byte(recorderResolv)
	return nil
}

// path is the PATH prefix that puts the wrappers first.
func (w *watch) path() string { return w.binDir }

// findings reads the after state and returns the I6 and I2 findings. The
// installer's processes must be gone by then.
func (w *watch) findings() []Finding {
	var out []Finding
	if w.rec == nil {
		return nil
	}
	after, err := netwatch.Snapshot()
	if err != nil {
		note(w.ev, "record the network state after the install: %v", err)
	} else {
		for _, d := range netwatch.Diff(w.before, after) {
			out = append(out, Finding{Rule: "I6", Message: d})
		}
	}
	if w.resolv != "" {
		if now, err := os.ReadFile(w.resolv); err == nil && string(now) != string(w.resolvWas) {
			out = append(out, Finding{Rule: "I6", Message: "the installer changed /etc/resolv.conf; installers must not change network configuration", Detail: string(now)})
		}
	}
	w.rec.Stop()
	for _, f := range w.rec.Findings() {
		out = append(out, Finding{Rule: "I2", Message: f.Message, Detail: f.Detail})
	}
	return out
}

// stop undoes everything startWatch did, resolv.conf and the recorder's
// routes and nftables table included, so the guest's disk and state are
// as before when the agent reports (the layer is the disk's difference).
func (w *watch) stop() error {
	var errs []error
	if w.resolv != "" {
		if err := unix.Unmount(w.target, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", w.target, err))
		} else if w.created {
			if fi, err := os.Lstat(w.target); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
				os.Remove(w.target)
			}
		}
		w.resolv = ""
	}
	if w.rec != nil {
		w.rec.Stop()
		if err := w.rec.Restore(); err != nil {
			errs = append(errs, err)
		}
		w.rec = nil
	}
	if w.fifo != nil {
		w.fifo.Close()
	}
	if w.binDir != "" {
		os.RemoveAll(w.binDir)
	}
	return errors.Join(errs...)
}

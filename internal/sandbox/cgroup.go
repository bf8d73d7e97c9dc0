//go:build linux

package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroup is one build's cgroups. The installer sits in a child cgroup
// ("installer") that holds the process limit, so a fork bomb cannot starve
// the init of the threads its runtime needs; memory and CPU limits hold for
// the build as a whole.
//
//	v2: <base>/<build>            memory.max, cpu.max, pids.max (limit + headroom)
//	    <base>/<build>/init       the init
//	    <base>/<build>/installer  pids.max (limit)
//	v1: memory/…/<build>, cpu/…/<build>, pids/…/<build> (limit + headroom)
//	    pids/…/<build>/installer  pids.max (limit)
type cgroup struct {
	v2        string            // v2 build directory, or ""
	v1        map[string]string // controller → build directory
	installer string            // directory the installer is moved into
	dirs      []string          // every directory, children before parents
	devices   io.Closer         // v2: the device filter program's link
}

const (
	cgroupRoot = "/sys/fs/cgroup"
	// initThreads is room for the init's own threads above the limit.
	initThreads = 256
)

func newCgroup(name string, lim Limits) (cg *cgroup, err error) {
	cg = &cgroup{v1: map[string]string{}}
	defer func() {
		if err != nil {
			cg.remove()
		}
	}()
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	mkdir := func(dir string) error {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("create cgroup: %w", err)
		}
		cg.dirs = append([]string{dir}, cg.dirs...)
		return nil
	}
	set := func(dir, file, val string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0); err != nil {
			return fmt.Errorf("set %s: %w", file, err)
		}
		return nil
	}
	const period = 100000
	quota := fmt.Sprintf("%d", int(lim.CPUs*period))
	if base, ok := cgroupV2Base(); ok {
		dir := filepath.Join(base, name)
		if err := mkdir(dir); err != nil {
			return nil, err
		}
		cg.v2 = dir
		for file, val := range map[string]string{
			"memory.max": strconv.FormatInt(lim.MemoryBytes, 10),
			"pids.max":   strconv.Itoa(lim.Pids + initThreads),
			"cpu.max":    quota + " " + strconv.Itoa(period),
		} {
			if err := set(dir, file, val); err != nil {
				return nil, err
			}
		}
		os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0) // absent without swap accounting
		if err := set(dir, "cgroup.subtree_control", "+pids"); err != nil {
			return nil, err
		}
		for _, sub := range []string{"init", "installer"} {
			if err := mkdir(filepath.Join(dir, sub)); err != nil {
				return nil, err
			}
		}
		cg.installer = filepath.Join(dir, "installer")
		if err := set(cg.installer, "pids.max", strconv.Itoa(lim.Pids)); err != nil {
			return nil, err
		}
		// T1's second wall after the user namespace, as the devices
		// controller is on v1.
		if cg.devices, err = attachDeviceFilter(dir); err != nil {
			return nil, err
		}
		return cg, nil
	}
	for _, ctl := range []string{"memory", "pids", "cpu"} {
		mnt := filepath.Join(cgroupRoot, ctl)
		if _, err := os.Stat(filepath.Join(mnt, "cgroup.procs")); err != nil {
			return nil, fmt.Errorf("no cgroup v2 with memory and pids controllers and no cgroup v1 %s hierarchy: the sandbox cannot enforce its limits", ctl)
		}
		dir := filepath.Join(mnt, own[ctl], name)
		if err := mkdir(dir); err != nil {
			return nil, err
		}
		cg.v1[ctl] = dir
	}
	for file, val := range map[string]string{
		"memory/memory.limit_in_bytes": strconv.FormatInt(lim.MemoryBytes, 10),
		"pids/pids.max":                strconv.Itoa(lim.Pids + initThreads),
		"cpu/cpu.cfs_period_us":        strconv.Itoa(period),
		"cpu/cpu.cfs_quota_us":         quota,
	} {
		ctl, f, _ := strings.Cut(file, "/")
		if err := set(cg.v1[ctl], f, val); err != nil {
			return nil, err
		}
	}
	// T1's second wall after the user namespace: the devices controller
	// lets the build open only the devices it is given (mounts.go).
	if mnt := filepath.Join(cgroupRoot, "devices"); fileExists(filepath.Join(mnt, "devices.deny")) {
		dir := filepath.Join(mnt, own["devices"], name)
		if err := mkdir(dir); err != nil {
			return nil, err
		}
		cg.v1["devices"] = dir
		if err := set(dir, "devices.deny", "a"); err != nil {
			return nil, err
		}
		for _, d := range allowedDevices {
			if err := set(dir, "devices.allow", fmt.Sprintf("c %d:%d rw", d.major, d.minor)); err != nil {
				return nil, err
			}
		}
	}
	// Without swap accounting the memsw file is absent; that is fine.
	os.WriteFile(filepath.Join(cg.v1["memory"], "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(lim.MemoryBytes, 10)), 0)
	cg.installer = filepath.Join(cg.v1["pids"], "installer")
	if err := mkdir(cg.installer); err != nil {
		return nil, err
	}
	return cg, set(cg.installer, "pids.max", strconv.Itoa(lim.Pids))
}

// ownCgroups maps controller ("" for v2) to this process's cgroup path.
func ownCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, sc.Err()
}

// cgroupV2Base finds where to create v2 build cgroups: a pib-builds
// directory at the top of the v2 hierarchy, when memory and pids can be
// delegated to it.
func cgroupV2Base() (string, bool) {
	mnt := cgroupRoot
	if _, err := os.Stat(filepath.Join(mnt, "cgroup.controllers")); err != nil {
		mnt = filepath.Join(cgroupRoot, "unified")
		if _, err := os.Stat(filepath.Join(mnt, "cgroup.controllers")); err != nil {
			return "", false
		}
	}
	ctrl, err := os.ReadFile(filepath.Join(mnt, "cgroup.controllers"))
	if err != nil || !strings.Contains(string(ctrl), "memory") || !strings.Contains(string(ctrl), "pids") {
		return "", false
	}
	base := filepath.Join(mnt, "pib-builds")
	os.WriteFile(filepath.Join(mnt, "cgroup.subtree_control"), []byte("+memory +pids +cpu"), 0)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", false
	}
	os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), []byte("+memory +pids +cpu"), 0)
	sub, _ := os.ReadFile(filepath.Join(base, "cgroup.subtree_control"))
	if !strings.Contains(string(sub), "memory") || !strings.Contains(string(sub), "pids") {
		return "", false
	}
	return base, true
}

// add puts the init into the build's cgroups.
func (cg *cgroup) add(pid int) error {
	targets := []string{filepath.Join(cg.v2, "init")}
	if cg.v2 == "" {
		targets = []string{cg.v1["memory"], cg.v1["pids"], cg.v1["cpu"]}
		if d, ok := cg.v1["devices"]; ok {
			targets = append(targets, d)
		}
	}
	for _, d := range targets {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("move the sandbox into its cgroup: %w", err)
		}
	}
	return nil
}

// openInstallerProcs opens the file the init writes the installer's PID
// into: the init cannot reach the cgroup file system itself.
func (cg *cgroup) openInstallerProcs() (*os.File, error) {
	return os.OpenFile(filepath.Join(cg.installer, "cgroup.procs"), os.O_WRONLY, 0)
}

// kill SIGKILLs whatever is left in the cgroups (normally nothing: the
// PID namespace died with its init).
func (cg *cgroup) kill() {
	if cg.v2 != "" {
		os.WriteFile(filepath.Join(cg.v2, "cgroup.kill"), []byte("1"), 0)
	}
	for _, d := range cg.dirs {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
		}
	}
}

func (cg *cgroup) remove() error {
	cg.kill()
	var errs []error
	if cg.devices != nil {
		errs = append(errs, cg.devices.Close())
		cg.devices = nil
	}
	for _, d := range cg.dirs {
		var err error
		for range 100 {
			if err = os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
				err = nil
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// findings reports the limits the build hit.
func (cg *cgroup) findings(lim Limits) []Finding {
	var out []Finding
	var oom int
	if cg.v2 != "" {
		oom = keyed(filepath.Join(cg.v2, "memory.events"), "oom_kill")
	} else {
		oom = keyed(filepath.Join(cg.v1["memory"], "memory.oom_control"), "oom_kill")
	}
	pidsMax := keyed(filepath.Join(cg.installer, "pids.events"), "max")
	if oom > 0 {
		out = append(out, Finding{Rule: "limits", Message: fmt.Sprintf("the build hit its memory limit (%d MiB); the kernel killed %d process(es)", lim.MemoryBytes>>20, oom)})
	}
	if pidsMax > 0 {
		out = append(out, Finding{Rule: "limits", Message: fmt.Sprintf("the build hit its process limit (%d); %d fork(s) failed", lim.Pids, pidsMax)})
	}
	return out
}

// keyed reads "key value" lines and returns the value of key.
func keyed(file, key string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok && k == key {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// removeCgroups removes a stale build's cgroups by name, killing what is
// left in them.
func removeCgroups(name string) error {
	cg := &cgroup{v1: map[string]string{}}
	own, err := ownCgroups()
	if err != nil {
		return err
	}
	var dirs []string
	for _, mnt := range []string{cgroupRoot, filepath.Join(cgroupRoot, "unified")} {
		d := filepath.Join(mnt, "pib-builds", name)
		if _, err := os.Stat(d); err == nil {
			cg.v2 = d
			dirs = append(dirs, filepath.Join(d, "init"), filepath.Join(d, "installer"), d)
		}
	}
	for _, ctl := range []string{"memory", "pids", "cpu", "devices"} {
		d := filepath.Join(cgroupRoot, ctl, own[ctl], name)
		if _, err := os.Stat(d); err == nil {
			dirs = append(dirs, filepath.Join(d, "installer"), d)
		}
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			cg.dirs = append(cg.dirs, d)
		}
	}
	return cg.remove()
}

// allowedDevices is what the build's cgroup lets it open: the character
// devices of buildDevices (null, zero, full, random, urandom, tty) for
// reading and writing; nothing else, and no mknod.
var allowedDevices = []struct{ major, minor uint32 }{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

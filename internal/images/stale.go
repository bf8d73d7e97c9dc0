//go:build linux

package images

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// staleMount names the read-only overlay mounts pib makes under the cache
// for reading an image (Rootfs: rootfs-PID-…) or for an incremental scan
// (scan.ScanOn: scan-view-PID-…), with the PID of the process that made
// them.
var staleMount = regexp.MustCompile(`^(rootfs|scan-view)-([0-9]+)-[^/]*$`)

// UnmountStale unmounts and removes the overlay mounts under the cache
// that a process killed while it read an image left behind (a kill -9
// runs no cleanup, and these mounts live in the host's mount namespace).
// A mount whose process is alive — this one, or another pib on the same
// data directory — is left alone; so is one whose PID a new process
// reuses, until that one is gone too. pib serve and pib worker call it
// when they start.
func (s *Store) UnmountStale() error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	cache, err := filepath.Abs(s.cache)
	if err != nil {
		return err
	}
	var errs []error
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mnt := unescapeMountinfo(fields[4])
		if !strings.HasPrefix(mnt, cache+"/") {
			continue
		}
		m := staleMount.FindStringSubmatch(filepath.Base(mnt))
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[2])
		if err != nil || pid == os.Getpid() || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s, left by process %d: %w", mnt, pid, err))
			continue
		}
		os.Remove(mnt)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

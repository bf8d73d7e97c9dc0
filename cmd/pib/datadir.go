//go:build linux

package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// secureDataDir creates the data directory readable by its owner only, or
// takes group and other access away from an existing one and from the
// files pib keeps directly in it, logging each change. The directory holds
// every seller's packages, logs and reports, the webhook secrets and the
// operator's token; unpacked images in it may hold setuid files.
func secureDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory %s: %w; choose another with --data", dir, err)
	}
	if err := tighten(dir); err != nil {
		return err
	}
	// pib's own files at the top (pib.db*, *.token, serve.log, …). Deeper
	// files are the owner's only since pib made them so, and unreachable
	// through the directory anyway.
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read data directory %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() || e.IsDir() {
			if err := tighten(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// tighten takes group and other permissions off path, logging the change.
func tighten(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("check permissions of %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, fi.Mode().Perm()&^0o077); err != nil {
		return fmt.Errorf("make %s accessible to its owner only: %w; fix it with chmod go-rwx %s", path, err, path)
	}
	slog.Warn("took group and other access away from the data directory's contents", "path", path, "was", fi.Mode().Perm(), "now", fi.Mode().Perm()&^0o077)
	return nil
}

// Package osversions is the operator's registry of supported OS versions:
// each name (e.g. debian-12) points at the base image builds for it start
// from. Rule P4: package groups may only target registered OS versions.
package osversions

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
)

// OSVersion is one registered OS version.
type OSVersion struct {
	Name     string    `json:"name"`
	Platform string    `json:"platform"` // linux or windows
	ImageID  string    `json:"image_id"`
	Created  time.Time `json:"created"`
	// BootTest: builds for this OS version boot their image and check
	// rules V1–V3 before the scan. Off by default (see SetBootTest).
	BootTest bool `json:"boot_test,omitempty"`
	// Backend is where its builds run: Sandbox (the default for Linux) or
	// VM (always for Windows). See SetBackend.
	Backend string `json:"backend"`
	// DiskImage: its image is a disk image (images.Image.Disk), which
	// only a machine can build on, so Backend is always VM.
	DiskImage bool `json:"disk_image,omitempty"`
}

// Build backends (OSVersion.Backend).
const (
	// Sandbox runs the installer in pib's Linux sandbox: namespaces over
	// the base image's layers, about a second of overhead, but no running
	// systemd, no kernel of its own and no Windows.
	Sandbox = "sandbox"
	// VM boots the base image under QEMU and runs the installer through
	// the guest agent (package vmbuild): a real booted system, tens of
	// seconds per build under software emulation.
	VM = "vm"
)

// ErrNotFound is returned for an unregistered name.
var ErrNotFound = problem.New(problem.NotFound, "OS version not registered")

// Store keeps the registry.
type Store struct{ db *store.DB }

// NewStore returns the registry.
func NewStore(db *store.DB) *Store { return &Store{db: db} }

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Add registers name → image, or points an existing name at a new image.
func (s *Store) Add(ctx context.Context, name, platform, imageID string) (*OSVersion, error) {
	if !namePattern.MatchString(name) {
		return nil, &problem.Error{Code: problem.Invalid, Field: "name", Message: fmt.Sprintf("OS version name %q: use lower-case letters, digits, '.', '_' or '-' (e.g. debian-12)", name)}
	}
	if platform != "linux" && platform != "windows" {
		// Field "name", as the API always answered, although the image is
		// at fault.
		return nil, &problem.Error{Code: problem.Invalid, Field: "name", Message: fmt.Sprintf("image %s has OS %q; an OS version must be linux or windows", imageID, platform)}
	}
	v := &OSVersion{Name: name, Platform: platform, ImageID: imageID, Created: time.Now().UTC()}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE os_versions SET platform = $2, image_id = $3 WHERE name = $1`, name, platform, imageID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			_, err = tx.ExecContext(ctx, `INSERT INTO os_versions (name, platform, image_id, created_at) VALUES ($1, $2, $3, $4)`, name, platform, imageID, v.Created)
			if err != nil {
				return err
			}
		}
		// A Windows installer cannot run in the Linux sandbox, nor can any
		// installer on a disk image (the sandbox needs a file-system
		// image's layers): their builds always boot a machine, whatever
		// was set before.
		_, err = tx.ExecContext(ctx, `UPDATE os_versions SET build_backend = $2
			WHERE name = $1 AND (platform = 'windows' OR EXISTS (SELECT 1 FROM images WHERE images.id = os_versions.image_id AND images.disk <> ''))`, name, VM)
		return err
	})
	if err != nil {
		return nil, store.Classify(err)
	}
	return s.Get(ctx, name)
}

// Get returns one registered OS version.
func (s *Store) Get(ctx context.Context, name string) (*OSVersion, error) {
	var v OSVersion
	err := s.db.QueryRowContext(ctx, `SELECT name, platform, image_id, created_at, boot_test, build_backend,
		EXISTS (SELECT 1 FROM images WHERE images.id = os_versions.image_id AND images.disk <> '') FROM os_versions WHERE name = $1`, name).
		Scan(&v.Name, &v.Platform, &v.ImageID, &v.Created, &v.BootTest, &v.Backend, &v.DiskImage)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("OS version not registered: %q", name)
	}
	return &v, err
}

// List returns every registered OS version by name.
func (s *Store) List(ctx context.Context) ([]*OSVersion, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, platform, image_id, created_at, boot_test, build_backend,
		EXISTS (SELECT 1 FROM images WHERE images.id = os_versions.image_id AND images.disk <> '') FROM os_versions ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*OSVersion{}
	for rows.Next() {
		var v OSVersion
		if err := rows.Scan(&v.Name, &v.Platform, &v.ImageID, &v.Created, &v.BootTest, &v.Backend, &v.DiskImage); err != nil {
			return nil, err
		}
		out = append(out, &v)
	}
	return out, rows.Err()
}

// SetBootTest turns the boot test (V1–V3) of an OS version's builds on or
// off. It is off by default because, where only software emulation is
// available (no working KVM), booting an image adds tens of seconds to a
// build that otherwise takes about one.
//
// A disk image's builds cannot be boot-tested: V1–V3 read a Linux guest's
// boot through cloud-init and SSH, which pib cannot add to a disk it does
// not write.
func (s *Store) SetBootTest(ctx context.Context, name string, on bool) (*OSVersion, error) {
	if on {
		if v, err := s.Get(ctx, name); err == nil && v.DiskImage {
			return nil, &problem.Error{Code: problem.Invalid, Field: "boot_test", Message: fmt.Sprintf("OS version %s is on a disk image, whose builds cannot be boot-tested (V1–V3 need a Linux file-system image pib can prepare for the boot)", name)}
		}
	}
	res, err := s.db.ExecContext(ctx, `UPDATE os_versions SET boot_test = $2 WHERE name = $1`, name, on)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrNotFound.Errorf("OS version not registered: %q", name)
	}
	return s.Get(ctx, name)
}

// BootTestOn says whether builds for OS version name are boot-tested
// (testbuild.BootTests).
func (s *Store) BootTestOn(ctx context.Context, name string) (bool, error) {
	v, err := s.Get(ctx, name)
	if err != nil {
		return false, err
	}
	return v.BootTest, nil
}

// SetBackend chooses where an OS version's builds run: Sandbox or VM. A
// Windows OS version builds only in a machine, so Sandbox is refused for
// it.
func (s *Store) SetBackend(ctx context.Context, name, backend string) (*OSVersion, error) {
	if err := CheckBackend("", false, backend); err != nil {
		return nil, err
	}
	v, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := CheckBackend(v.Platform, v.DiskImage, backend); err != nil {
		return nil, err
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE os_versions SET build_backend = $2 WHERE name = $1`, name, backend); err != nil {
		return nil, err
	}
	return s.Get(ctx, name)
}

// BackendOf says where builds for OS version name run (testbuild.Backends).
func (s *Store) BackendOf(ctx context.Context, name string) (string, error) {
	v, err := s.Get(ctx, name)
	if err != nil {
		return "", err
	}
	return v.Backend, nil
}

// CheckBackend refuses a backend that is not Sandbox or VM, and Sandbox
// for a Windows platform ("" when the platform is not known yet) or a
// disk image.
func CheckBackend(platform string, diskImage bool, backend string) error {
	if backend != Sandbox && backend != VM {
		return &problem.Error{Code: problem.Invalid, Field: "backend", Message: fmt.Sprintf("build backend %q: use %s or %s", backend, Sandbox, VM)}
	}
	if platform == "windows" && backend != VM {
		return &problem.Error{Code: problem.Invalid, Field: "backend", Message: fmt.Sprintf("a Windows OS version builds only in a machine (backend %s): the sandbox runs Linux installers only", VM)}
	}
	if diskImage && backend != VM {
		return &problem.Error{Code: problem.Invalid, Field: "backend", Message: fmt.Sprintf("an OS version on a disk image builds only in a machine (backend %s): the sandbox runs on a file-system image's layers", VM)}
	}
	return nil
}

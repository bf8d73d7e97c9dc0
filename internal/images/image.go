//go:build linux

// Package images is pib's image store: OCI image manifests, configs and
// layers kept as content-addressed blobs, with the metadata pib needs to
// find them (ID, alias, OS, owner, parent) in the metadata store.
//
// An image never changes once written: a build that installs software on
// an image stores a new image with one more layer (AddLayer), whose parent
// is the image it started from. Layers are unpacked once into a cache and
// shared read-only by every build that needs them, as overlayfs lower
// directories.
//
// Limits: blob garbage collection runs when an image is removed and only
// looks at that image's blobs; an import of the same layer running in
// another process at that very moment can lose the race and fail (it says
// so and can be retried).
package images

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
)

// Image is one stored image's metadata.
type Image struct {
	ID            string    `json:"id"`
	Alias         string    `json:"alias,omitempty"`
	Owner         string    `json:"owner"`
	OS            string    `json:"os"`             // OS family: linux or windows
	DistroID      string    `json:"distro_id"`      // ID= from /etc/os-release, e.g. debian
	DistroVersion string    `json:"distro_version"` // VERSION_ID=, e.g. 12
	Architecture  string    `json:"architecture"`   // OCI name: amd64, arm64, …
	ParentID      string    `json:"parent_id,omitempty"`
	Manifest      v1.Hash   `json:"manifest_digest"`
	Config        v1.Hash   `json:"config_digest"`
	Size          int64     `json:"size"` // compressed bytes of all layers
	Created       time.Time `json:"created"`
	// Tags are the image's key/value tags (a private image's fulfillment,
	// product, version and source image, C5, and its buyer's own), set when
	// the image is made and never changed; filled by Get and GetOwned.
	Tags map[string]string `json:"tags,omitempty"`
	// Disk, for a disk image, is the path in the image of its top disk
	// file (disk/N.qcow2, see DiskChain); "" for a file-system image.
	// A disk image is a bootable disk kept whole, as a chain of qcow2
	// files one per layer: a Windows base (pib reads no NTFS), and every
	// build on it. Its builds run in a machine (backend vm), which keeps
	// what the installer changed as one more qcow2 overlay.
	Disk string `json:"disk,omitempty"`
}

// Operator is the account that owns base images until accounts exist.
const Operator = "operator"

// Store keeps images in a blob folder and a metadata database.
type Store struct {
	db    *store.DB
	blobs blobs.Store
	cache string // layer cache and scratch space
	now   func() time.Time
}

// NewStore returns an image store. cacheDir holds unpacked layers and
// temporary files; it must be on a file system that supports overlayfs
// lower directories (not overlayfs itself).
func NewStore(db *store.DB, bs blobs.Store, cacheDir string) *Store {
	return &Store{db: db, blobs: bs, cache: cacheDir, now: func() time.Time { return time.Now().UTC() }}
}

// Blobs exposes the blob store (for callers that export or copy blobs).
func (s *Store) Blobs() blobs.Store { return s.blobs }

var (
	idPattern    = regexp.MustCompile(`^img-[0-9a-f]{17}$`)
	aliasPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
)

// Errors callers test with errors.Is. They carry no Field: which request
// input named the image (an ID in a path, an alias in a query) is the
// caller's to say.
var (
	ErrNotFound   = problem.New(problem.NotFound, "image not found")
	ErrAliasTaken = problem.New(problem.Conflict, "image alias is already taken")
	// ErrInUse: the image is an OS version's base image or another
	// image's parent, so removing it would break builds or images.
	ErrInUse = problem.New(problem.Conflict, "image is in use")
)

func newID() string {
	b := make([]byte, 9)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "img-" + hex.EncodeToString(b)[:17]
}

// ValidAlias reports whether name can be an alias: lower-case letters,
// digits, '.', '_' and '-', at most 63 characters, and not shaped like an ID.
func ValidAlias(name string) error {
	if !aliasPattern.MatchString(name) || idPattern.MatchString(name) {
		return problem.New(problem.Invalid, "alias %q: use 1–63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, not shaped like an image ID", name)
	}
	return nil
}

const imageColumns = `id, COALESCE(alias, ''), owner, os, distro_id, distro_version, architecture, COALESCE(parent_id, ''), manifest_digest, config_digest, size, created_at, disk`

func scanImage(row interface{ Scan(...any) error }) (*Image, error) {
	var im Image
	var manifest, config string
	if err := row.Scan(&im.ID, &im.Alias, &im.Owner, &im.OS, &im.DistroID, &im.DistroVersion, &im.Architecture, &im.ParentID, &manifest, &config, &im.Size, &im.Created, &im.Disk); err != nil {
		return nil, err
	}
	var err error
	if im.Manifest, err = v1.NewHash(manifest); err != nil {
		return nil, fmt.Errorf("image %s: bad manifest digest: %w", im.ID, err)
	}
	if im.Config, err = v1.NewHash(config); err != nil {
		return nil, fmt.Errorf("image %s: bad config digest: %w", im.ID, err)
	}
	im.Created = im.Created.UTC()
	return &im, nil
}

// Get returns the image named by ref: any account's image by ID (img-…),
// or the operator's image by alias. An alias never resolves to another
// account's image: a seller who imports an image aliased "debian-13" must
// not become the base image of every build on an OS version registered
// by that name (use GetOwned for an account's own aliases).
func (s *Store) Get(ctx context.Context, ref string) (*Image, error) {
	if idPattern.MatchString(ref) {
		im, err := scanImage(s.db.QueryRowContext(ctx, `SELECT `+imageColumns+` FROM images WHERE id = $1`, ref))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound.Errorf("image not found: %q (list images with `pib image ls`)", ref)
		}
		if err != nil {
			return nil, err
		}
		return im, s.fillTags(ctx, im)
	}
	im, err := s.GetOwned(ctx, Operator, ref)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound.Errorf("image not found: no operator image has ID or alias %q (another account's image is named by its ID; list images with `pib image ls`)", ref)
	}
	return im, err
}

// GetOwned is Get within one owner's images: another owner's image (even
// one with the same alias) is ErrNotFound.
func (s *Store) GetOwned(ctx context.Context, owner, ref string) (*Image, error) {
	im, err := scanImage(s.db.QueryRowContext(ctx, `SELECT `+imageColumns+` FROM images WHERE owner = $1 AND (id = $2 OR alias = $2)`, owner, ref))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("image not found: %q", ref)
	}
	if err != nil {
		return nil, err
	}
	return im, s.fillTags(ctx, im)
}

// fillTags reads im's tags.
func (s *Store) fillTags(ctx context.Context, im *Image) error {
	rows, err := s.db.QueryContext(ctx, `SELECT key, value FROM image_tags WHERE image_id = $1 ORDER BY key`, im.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		if im.Tags == nil {
			im.Tags = map[string]string{}
		}
		im.Tags[k] = v
	}
	return rows.Err()
}

// Carries reports whether image id, or an image it was built from (its
// parent, the parent's parent, …), has tag key set to value: an image
// built on a private image still carries what that image was given (C5).
func (s *Store) Carries(ctx context.Context, id, key, value string) (bool, error) {
	for seen := 0; id != "" && seen < 1000; seen++ {
		var n int
		var parent sql.NullString
		err := s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM image_tags WHERE image_id = $1 AND key = $2 AND value = $3), parent_id
			FROM images WHERE id = $1`, id, key, value).Scan(&n, &parent)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if n > 0 {
			return true, nil
		}
		id = parent.String
	}
	return false, nil
}

// List returns all images, oldest first.
func (s *Store) List(ctx context.Context) ([]*Image, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+imageColumns+` FROM images ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Image
	for rows.Next() {
		im, err := scanImage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	return out, rows.Err()
}

// Distro is a distribution as /etc/os-release names it.
type Distro struct {
	ID      string // ID=, e.g. debian
	Version string // VERSION_ID=, e.g. 12; empty for rolling releases
}

// Distros returns the distributions of the stored images, each once,
// sorted by ID and version.
func (s *Store) Distros(ctx context.Context) ([]Distro, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT distro_id, distro_version FROM images ORDER BY distro_id, distro_version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Distro
	for rows.Next() {
		var d Distro
		if err := rows.Scan(&d.ID, &d.Version); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// insert records a new image and every blob it references in one
// transaction. The blobs must already be stored.
func (s *Store) insert(ctx context.Context, im *Image, refs []v1.Hash) error {
	var alias any
	if im.Alias != "" {
		alias = im.Alias
	}
	var parent any
	if im.ParentID != "" {
		parent = im.ParentID
	}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockParent(ctx, tx, im.ParentID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO images (id, alias, owner, os, distro_id, distro_version, architecture, parent_id, manifest_digest, config_digest, size, created_at, disk)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			im.ID, alias, im.Owner, im.OS, im.DistroID, im.DistroVersion, im.Architecture, parent, im.Manifest.String(), im.Config.String(), im.Size, im.Created, im.Disk); err != nil {
			return err
		}
		for k, v := range im.Tags {
			if _, err := tx.ExecContext(ctx, `INSERT INTO image_tags (image_id, key, value) VALUES ($1, $2, $3)`, im.ID, k, v); err != nil {
				return err
			}
		}
		seen := map[v1.Hash]bool{}
		for _, h := range refs {
			if seen[h] {
				continue
			}
			seen[h] = true
			if _, err := tx.ExecContext(ctx, `INSERT INTO image_blobs (image_id, digest) VALUES ($1, $2)`, im.ID, h.String()); err != nil {
				return err
			}
		}
		return nil
	})
	if err = store.Classify(err); errors.Is(err, store.ErrConflict) && im.Alias != "" {
		return ErrAliasTaken.Errorf("image alias is already taken: %q; choose another --alias or remove that image first (pib image rm %s)", im.Alias, im.Alias)
	}
	return err
}

// lockParent makes sure the parent of a new image still exists and, on
// PostgreSQL, holds it until the new image is committed, so Remove cannot
// take it away in between (see checkUnused).
func (s *Store) lockParent(ctx context.Context, tx *sql.Tx, parent string) error {
	if parent == "" {
		return nil
	}
	q := `SELECT id FROM images WHERE id = $1`
	if s.db.Dialect == store.Postgres {
		q += ` FOR SHARE`
	}
	err := tx.QueryRowContext(ctx, q, parent).Scan(&parent)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound.Errorf("image not found: parent image %s was removed; start again from an existing image", parent)
	}
	return err
}

// Remove deletes an image's metadata, then every blob of it that no other
// image references, with the unpacked copies of those layers. An image an
// OS version or another image is built on is refused with ErrInUse, whose
// message names what refers to it.
func (s *Store) Remove(ctx context.Context, ref string) (*Image, error) {
	im, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	// The layers' DiffIDs name their cache directories; read them before
	// the metadata goes.
	cacheDirs := map[v1.Hash]string{}
	if m, err := s.manifest(im); err == nil {
		if cfg, err := s.config(im); err == nil && len(cfg.RootFS.DiffIDs) == len(m.Layers) {
			for i, l := range m.Layers {
				cacheDirs[l.Digest] = s.layerDir(cfg.RootFS.DiffIDs[i])
			}
		}
	}
	var garbage []v1.Hash
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkUnused(ctx, tx, im.ID); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT digest FROM image_blobs WHERE image_id = $1`, im.ID)
		if err != nil {
			return err
		}
		var digests []string
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return err
			}
			digests = append(digests, d)
		}
		rows.Close()
		if _, err := tx.ExecContext(ctx, `DELETE FROM images WHERE id = $1`, im.ID); err != nil {
			return err
		}
		for _, d := range digests {
			var n int
			if err := tx.QueryRowContext(ctx, blobRefs, d).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				h, err := v1.NewHash(d)
				if err != nil {
					return err
				}
				garbage = append(garbage, h)
			}
		}
		return nil
	})
	if errors.Is(err, ErrInUse) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("remove image %s: %w", im.ID, err)
	}
	for _, h := range garbage {
		if err := s.blobs.Delete(h); err != nil {
			slog.Warn("blob left behind; it is unreferenced and safe to delete", "digest", h, "err", err)
		}
		if dir, ok := cacheDirs[h]; ok {
			if err := removeTree(dir); err != nil {
				slog.Warn("layer cache directory left behind", "dir", dir, "err", err)
			}
		}
		if h == im.Manifest {
			s.removeDisks(im)
		}
	}
	return im, nil
}

// checkUnused refuses, inside the removing transaction, an image that an
// OS version builds on or that another image is built on. The image's row
// is locked first (PostgreSQL; SQLite transactions already hold the write
// lock), so an OS version or a child image added concurrently waits for
// this transaction and then finds the image gone.
func (s *Store) checkUnused(ctx context.Context, tx *sql.Tx, id string) error {
	if s.db.Dialect == store.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT id FROM images WHERE id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
	}
	var osName string
	err := tx.QueryRowContext(ctx, `SELECT name FROM os_versions WHERE image_id = $1 ORDER BY name LIMIT 1`, id).Scan(&osName)
	if err == nil {
		return ErrInUse.Errorf("image %s is the base image of OS version %s; point %s at another image first (pib os add %s --image ID)", id, osName, osName, osName)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	var child string
	err = tx.QueryRowContext(ctx, `SELECT id FROM images WHERE parent_id = $1 ORDER BY created_at, id LIMIT 1`, id).Scan(&child)
	if err == nil {
		return ErrInUse.Errorf("image %s is the parent of image %s; remove %s first (pib image rm %s)", id, child, child, child)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return nil
}

// blobRefs counts what still needs a blob. The blob folder is shared with
// uploaded packages, so a layer that happens to equal an upload stays.
const blobRefs = `SELECT (SELECT COUNT(*) FROM image_blobs WHERE digest = $1) + (SELECT COUNT(*) FROM packages WHERE digest = $1)`

// forget deletes blobs written by a failed operation unless some image
// references them (they may have existed before it started).
func (s *Store) forget(hs ...v1.Hash) {
	for _, h := range hs {
		var n int
		err := s.db.QueryRowContext(context.Background(), blobRefs, h.String()).Scan(&n)
		if err == nil && n == 0 {
			s.blobs.Delete(h)
		}
	}
}

// tempDir makes a scratch directory under the cache, on the same file
// system as the blobs and layers so renames are atomic.
func (s *Store) tempDir(pattern string) (string, error) {
	base := filepath.Join(s.cache, "tmp")
	if err := s.privateDir(base); err != nil {
		return "", err
	}
	return os.MkdirTemp(base, pattern)
}

// privateDir makes dir, a directory under the cache, and every directory
// from the cache down to it, root's alone (0700), fixing the mode of ones
// that exist. Unpacked layers and scratch trees hold what builds made —
// setuid-root files, anything an image carries — which no other local user
// may reach (T2); a closed directory above them is what keeps them out,
// since each layer's own root must keep the mode the image's "/" has.
func (s *Store) privateDir(dir string) error {
	rel, err := filepath.Rel(s.cache, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s is not under the image cache %s", dir, s.cache)
	}
	p := s.cache
	parts := []string{"."}
	if rel != "." {
		parts = append(parts, strings.Split(rel, string(filepath.Separator))...)
	}
	for _, part := range parts {
		p = filepath.Join(p, part)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("create the image cache directory: %w", err)
		}
		if err := os.Chmod(p, 0o700); err != nil {
			return fmt.Errorf("make %s private to root: %w", p, err)
		}
	}
	return nil
}

// removeTree removes a directory tree, clearing immutable-looking modes
// (read-only directories) that would stop os.RemoveAll.
func removeTree(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// Package blobs keeps content-addressed blobs (image layers, manifests,
// configs, uploaded packages): each is stored once, under its sha256
// digest, and never changes after it is written.
//
// Dir is the local-folder store. A blob is first written to a temporary
// file in the same file system, synced, checked and only then renamed into
// place, so a crash or a full disk never leaves a partial blob under a
// digest name.
package blobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/problem"
)

// ErrNotFound is returned for a digest the store does not hold.
var ErrNotFound = problem.New(problem.NotFound, "blob not found")

// Dir stores blobs as files <root>/sha256/<hex>.
type Dir struct{ root string }

// NewDir opens (creating if needed) a blob folder.
func NewDir(root string) (*Dir, error) {
	for _, sub := range []string{"sha256", "tmp"} {
		// Owner only: blobs include every seller's uploaded packages.
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			return nil, fmt.Errorf("create blob folder: %w", err)
		}
	}
	return &Dir{root: root}, nil
}

// Path is the file holding blob h. Local consumers (the layer cache) read
// it directly rather than through a stream copy.
func (d *Dir) Path(h v1.Hash) string { return filepath.Join(d.root, h.Algorithm, h.Hex) }

// Put stores what r yields and returns its digest and size. If want is not
// the zero Hash, the content must hash to it or nothing is stored.
func (d *Dir) Put(ctx context.Context, r io.Reader, want v1.Hash) (v1.Hash, int64, error) {
	f, err := os.CreateTemp(filepath.Join(d.root, "tmp"), "put-*")
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("store blob: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	hash := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, hash), ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("store blob: %w", err)
	}
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(hash.Sum(nil))}
	if want != (v1.Hash{}) && want != h {
		return v1.Hash{}, 0, fmt.Errorf("store blob: content has digest %s, expected %s (corrupt or truncated input)", h, want)
	}
	// Read-only (a blob never changes) and the owner's only.
	if err := os.Chmod(tmp, 0o400); err != nil {
		return v1.Hash{}, 0, err
	}
	if err := os.Rename(tmp, d.Path(h)); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("store blob %s: %w", h, err)
	}
	return h, n, nil
}

// Open returns a reader for blob h.
func (d *Dir) Open(h v1.Hash) (io.ReadCloser, error) {
	f, err := os.Open(d.Path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound.Errorf("blob not found: %s", h)
	}
	return f, err
}

// Size returns the size of blob h.
func (d *Dir) Size(h v1.Hash) (int64, error) {
	fi, err := os.Stat(d.Path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, ErrNotFound.Errorf("blob not found: %s", h)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Delete removes blob h; deleting a missing blob is not an error.
func (d *Dir) Delete(h v1.Hash) error {
	if err := os.Remove(d.Path(h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// List returns every stored digest.
func (d *Dir) List() ([]v1.Hash, error) {
	ents, err := os.ReadDir(filepath.Join(d.root, "sha256"))
	if err != nil {
		return nil, err
	}
	out := make([]v1.Hash, 0, len(ents))
	for _, e := range ents {
		if len(e.Name()) == 64 && !strings.ContainsAny(e.Name(), "./") {
			out = append(out, v1.Hash{Algorithm: "sha256", Hex: e.Name()})
		}
	}
	return out, nil
}

// CleanTemp removes temporary files older than age: what a killed writer
// left behind.
func (d *Dir) CleanTemp(age time.Duration) error {
	dir := filepath.Join(d.root, "tmp")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > age {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

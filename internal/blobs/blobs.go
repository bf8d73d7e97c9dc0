// Package blobs keeps content-addressed blobs (image layers, manifests,
// configs, uploaded packages, SBOMs, inventories): each is stored once,
// under its sha256 digest, and never changes after it is written.
//
// Store is what the rest of pib uses; two back ends implement it. Dir is
// the local-folder store: a blob is first written to a temporary file in
// the same file system, synced, checked and only then renamed into place,
// so a crash or a full disk never leaves a partial blob under a digest
// name. S3 keeps blobs in an S3-compatible bucket, shared by every node,
// with a Dir on the node's own disk as its cache (see s3.go for why).
//
// Limits: the S3 back end's local cache is never trimmed except when a
// blob is deleted; a worker's cache grows with the images it has built on.
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

// DigestError is content that does not hash to the digest it was stored
// or asked for under.
type DigestError struct{ Want, Got v1.Hash }

func (e *DigestError) Error() string {
	return fmt.Sprintf("content has digest %s, expected %s (corrupt or truncated input)", e.Got, e.Want)
}

// Store is a content-addressed blob store.
type Store interface {
	// Put stores what r yields and returns its digest and size. If want
	// is not the zero Hash, the content must hash to it or nothing is
	// stored.
	Put(ctx context.Context, r io.Reader, want v1.Hash) (v1.Hash, int64, error)
	// Open returns blob h, whose content is known to hash to h; a missing
	// blob is ErrNotFound.
	Open(h v1.Hash) (Reader, error)
	// Size returns the size of blob h; a missing blob is ErrNotFound.
	Size(h v1.Hash) (int64, error)
	// Delete removes blob h; deleting a missing blob is not an error. A
	// shared store may keep a blob another node is writing at that very
	// moment (see Leases).
	Delete(h v1.Hash) error
}

// Reader is an open blob: streamed, or read at offsets (zip archives).
type Reader interface {
	io.ReadCloser
	io.ReaderAt
}

// Info describes a stored blob for garbage collection.
type Info struct {
	Digest   v1.Hash
	Size     int64
	Modified time.Time
}

var _ Store = (*Dir)(nil)

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
		return v1.Hash{}, 0, fmt.Errorf("store blob: %w", &DigestError{Want: want, Got: h})
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
func (d *Dir) Open(h v1.Hash) (Reader, error) {
	f, err := os.Open(d.Path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound.Errorf("blob not found: %s", h)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
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

// List returns every stored blob.
func (d *Dir) List(ctx context.Context) ([]Info, error) {
	ents, err := os.ReadDir(filepath.Join(d.root, "sha256"))
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(ents))
	for _, e := range ents {
		if len(e.Name()) != 64 || strings.ContainsAny(e.Name(), "./") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, Info{Digest: v1.Hash{Algorithm: "sha256", Hex: e.Name()}, Size: fi.Size(), Modified: fi.ModTime()})
	}
	return out, ctx.Err()
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

//go:build linux

// Package packages stores the files sellers upload: installers and the
// other files of a package group. Uploads stream straight into the blob
// store (never whole in memory), are hashed on the way, limited in size,
// and de-duplicated per account. Rule P5: a bad upload gets a clear error
// and changes nothing. Archives are told by content, not by name
// (CheckArchive); nested archives, .deb/.rpm payloads and other archive
// formats (7z, rar, cpio, ar) are not opened.
package packages

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
)

// DefaultMaxSize is the upload limit unless configured: 10 GiB.
const DefaultMaxSize int64 = 10 << 30

// Package is one uploaded file.
type Package struct {
	ID       string    `json:"id"`
	Owner    string    `json:"owner"`
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Digest   string    `json:"digest"` // sha256:…
	Uploaded time.Time `json:"uploaded"`
}

// rejected is an upload refused by rule P5; field is the input at fault.
func rejected(field, format string, args ...any) *problem.Error {
	return &problem.Error{Code: problem.Invalid, Rule: "P5", Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned for an unknown package or one of another account.
var ErrNotFound = problem.New(problem.NotFound, "package not found")

// Store keeps packages: content in the blob store, metadata in the database.
type Store struct {
	db      *store.DB
	blobs   blobs.Store
	MaxSize int64
	// Limits bound the archive checks of one upload (P5).
	Limits Limits
	now    func() time.Time
}

// NewStore returns a package store with the default size limit.
func NewStore(db *store.DB, bs blobs.Store) *Store {
	return &Store{db: db, blobs: bs, MaxSize: DefaultMaxSize, Limits: DefaultLimits, now: func() time.Time { return time.Now().UTC() }}
}

// ValidName checks an uploaded file name (P5): a plain file name of at
// most 255 bytes of UTF-8, with no path separators, no control characters,
// and nothing that changes how the name displays without being seen:
// bidirectional controls (a name that reads "setup.txt" but ends in
// ".exe") and invisible characters (format characters, category Cf, and
// the Hangul fillers that render blank).
func ValidName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return rejected("name", "a package needs a file name")
	case len(name) > 255:
		return rejected("name", "file name is longer than 255 bytes")
	case !utf8.ValidString(name):
		return rejected("name", "file name %+q is not valid UTF-8; rename the file", name)
	case strings.ContainsAny(name, `/\`):
		return rejected("name", "file name %+q contains a path separator; upload a plain file name", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return rejected("name", "file name %+q contains control characters; rename the file", name)
	}
	for _, r := range name {
		if what := hiddenRune(r); what != "" {
			return rejected("name", "file name %+q contains %s (U+%04X), which changes how the name displays; rename the file without it", name, what, r)
		}
	}
	return nil
}

// hiddenRune names what r is when it has no business in a file name.
func hiddenRune(r rune) string {
	switch {
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return "a bidirectional control character"
	case r >= 0x200b && r <= 0x200d, r == 0x2060, r == 0xfeff, r == 0x115f, r == 0x1160, r == 0x3164, r == 0xffa0:
		return "an invisible character"
	case unicode.Is(unicode.Cf, r):
		return "an invisible format character"
	}
	return ""
}

// Upload stores what r yields as the package name for owner. An identical
// upload (same name and content) returns the existing package.
func (s *Store) Upload(ctx context.Context, owner, name string, r io.Reader) (*Package, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	lr := &limitReader{r: r, left: s.MaxSize}
	h, size, err := s.blobs.Put(ctx, lr, v1.Hash{})
	if lr.over {
		e := rejected("file", "%s is larger than the upload limit of %d bytes", name, s.MaxSize)
		e.Code = problem.TooLarge
		return nil, e
	}
	if err != nil {
		return nil, fmt.Errorf("store upload %s: %w", name, err)
	}
	if size == 0 {
		s.forget(h)
		return nil, rejected("file", "%s is empty", name)
	}
	if err := s.checkArchive(ctx, name, h, size); err != nil {
		s.forget(h)
		return nil, err
	}
	p := &Package{ID: newID(), Owner: owner, Name: name, Size: size, Digest: h.String(), Uploaded: s.now()}
	_, err = s.db.ExecContext(ctx, `INSERT INTO packages (id, owner, name, size, digest, uploaded_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		p.ID, p.Owner, p.Name, p.Size, p.Digest, p.Uploaded)
	if errors.Is(store.Classify(err), store.ErrConflict) {
		return s.find(ctx, owner, name, p.Digest)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// checkArchive runs CheckArchive on the stored blob (P5), and refuses a
// file whose name says archive when its content is none: the installer
// that unpacks it would fail on it later, less clearly.
func (s *Store) checkArchive(ctx context.Context, name string, h v1.Hash, size int64) error {
	f, err := s.blobs.Open(h)
	if err != nil {
		return fmt.Errorf("open the stored upload: %w", err)
	}
	defer f.Close()
	if err := CheckArchive(ctx, f, size, s.Limits); err != nil {
		return err
	}
	head := make([]byte, 512)
	n, _ := f.ReadAt(head, 0)
	if claimsArchive(name) && sniff(head[:n]) == "" {
		return rejected("file", "%+q is named like an archive but is not a tar, compressed tar or zip archive; upload the archive itself or rename the file", name)
	}
	return nil
}

func claimsArchive(name string) bool {
	lower := strings.ToLower(name)
	for _, ext := range []string{".tar", ".tgz", ".tar.gz", ".txz", ".tar.xz", ".tbz", ".tbz2", ".tar.bz2", ".tzst", ".tar.zst", ".zip"} {
		if strings.HasSuffix(lower, ext) {
			return true
		}
	}
	return false
}

// forget deletes a blob just written unless a package or an image (the
// blob folder is shared) already uses it.
func (s *Store) forget(h v1.Hash) {
	var n int
	if s.db.QueryRowContext(context.Background(), `SELECT (SELECT COUNT(*) FROM packages WHERE digest = $1) + (SELECT COUNT(*) FROM image_blobs WHERE digest = $1)`, h.String()).Scan(&n) == nil && n == 0 {
		s.blobs.Delete(h)
	}
}

const columns = `id, owner, name, size, digest, uploaded_at`

func scan(row interface{ Scan(...any) error }) (*Package, error) {
	var p Package
	if err := row.Scan(&p.ID, &p.Owner, &p.Name, &p.Size, &p.Digest, &p.Uploaded); err != nil {
		return nil, err
	}
	p.Uploaded = p.Uploaded.UTC()
	return &p, nil
}

func (s *Store) find(ctx context.Context, owner, name, digest string) (*Package, error) {
	return scan(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM packages WHERE owner = $1 AND name = $2 AND digest = $3`, owner, name, digest))
}

// Get returns owner's package id; another account's package is ErrNotFound.
func (s *Store) Get(ctx context.Context, owner, id string) (*Package, error) {
	p, err := scan(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM packages WHERE id = $1 AND owner = $2`, id, owner))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("package not found: %s", id)
	}
	return p, err
}

// List returns owner's packages, newest first.
func (s *Store) List(ctx context.Context, owner string) ([]*Package, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM packages WHERE owner = $1 ORDER BY uploaded_at DESC, id`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Package{}
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Open returns the content of a package.
func (s *Store) Open(p *Package) (io.ReadCloser, error) {
	h, err := v1.NewHash(p.Digest)
	if err != nil {
		return nil, err
	}
	return s.blobs.Open(h)
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "pkg-" + hex.EncodeToString(b)
}

// limitReader fails once more than left bytes have been read.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

var errTooLarge = errors.New("upload exceeds the size limit")

func (l *limitReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.over = true
		return n, errTooLarge
	}
	return n, err
}

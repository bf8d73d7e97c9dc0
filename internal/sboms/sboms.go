//go:build linux

// Package sboms keeps the SBOMs of scans (rule S1) in the formats users
// download.
//
// A scan keeps one SBOM, in syft's own JSON: it is lossless (syft's other
// encoders read nothing it does not hold) and the cheapest of syft's
// formats to write — about half of CycloneDX's time and a tenth of SPDX's
// on a Debian image, whose SPDX file list made encoding both standards
// the slowest step of a build's scan. The CycloneDX and SPDX documents are
// made from it on first download and kept, so that one scan's SBOM in one
// format is always the same document: each encoding draws a new serial
// number (CycloneDX) or namespace (SPDX), and a consumer that tracks
// documents by those must not see a new one on every download.
package sboms

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
)

// Store opens kept SBOMs in any format, making and keeping the standard
// ones from the syft JSON a scan kept.
type Store struct {
	db    *store.DB
	blobs blobs.Store
	now   func() time.Time
}

// New returns the SBOMs of db, with blobs in bs.
func New(db *store.DB, bs blobs.Store) *Store {
	return &Store{db: db, blobs: bs, now: func() time.Time { return time.Now().UTC() }}
}

// Open returns the SBOM made from the syft JSON SBOM source in format
// (scan.SBOMFormats): source itself for syft JSON, else the document made
// from it the first time it was asked for.
func (s *Store) Open(ctx context.Context, source v1.Hash, format string) (io.ReadCloser, error) {
	if format == scan.SyftJSON {
		return s.blobs.Open(source)
	}
	d, err := s.made(ctx, source, format)
	if errors.Is(err, sql.ErrNoRows) {
		d, err = s.make(ctx, source, format)
	}
	if err != nil {
		return nil, fmt.Errorf("the %s SBOM: %w", format, err)
	}
	return s.blobs.Open(d)
}

// made returns the digest of the document kept for source in format, or
// sql.ErrNoRows.
func (s *Store) made(ctx context.Context, source v1.Hash, format string) (v1.Hash, error) {
	var d string
	err := s.db.QueryRowContext(ctx, `SELECT digest FROM sbom_formats WHERE source_digest = $1 AND format = $2`, source.String(), format).Scan(&d)
	if err != nil {
		return v1.Hash{}, err
	}
	return v1.NewHash(d)
}

// make converts source to format and keeps the result. Two first
// downloads at once both convert; the first to record its document wins
// and both return that one.
func (s *Store) make(ctx context.Context, source v1.Hash, format string) (v1.Hash, error) {
	rc, err := s.blobs.Open(source)
	if err != nil {
		return v1.Hash{}, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if err := scan.ConvertSBOM(&buf, rc, format); err != nil {
		return v1.Hash{}, err
	}
	d, _, err := s.blobs.Put(ctx, &buf, v1.Hash{})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("keep it: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO sbom_formats (source_digest, format, digest, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		source.String(), format, d.String(), s.now())
	if err != nil {
		return v1.Hash{}, fmt.Errorf("record it: %w", err)
	}
	kept, err := s.made(ctx, source, format)
	if err == nil && kept != d {
		s.blobs.Delete(d) // lost the race: the winner's document is the one
	}
	return kept, err
}

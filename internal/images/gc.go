//go:build linux

package images

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BlobReferenced reports whether any row still needs blob h: an image's
// (its layers, config, manifest and kept inventory: image_blobs), an
// uploaded package's, a build's kept SBOM (named only inside the
// build's scan report, so matched as text there: a mention keeps the
// blob, which errs on the side of keeping), or a standard SBOM made from
// a kept one (sbom_formats, package sboms). It is what blob garbage
// collection (blobs.Collect) asks before deleting.
func (s *Store) BlobReferenced(ctx context.Context, h v1.Hash) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, blobRefs+` + (SELECT COUNT(*) FROM builds WHERE scan_report LIKE $2) + (SELECT COUNT(*) FROM sbom_formats WHERE digest = $1)`, h.String(), "%"+h.String()+"%").Scan(&n)
	return n > 0, err
}

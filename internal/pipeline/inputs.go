//go:build linux

package pipeline

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sort"
	"strconv"
	"time"

	"github.com/pib-dev/pib/internal/groups"
)

// PreviousBuild is the latest earlier build of the same owner and the
// same inputs (InputsDigest) that produced an image: what a builder
// compares its new layer with.
type PreviousBuild struct {
	BuildID string
	ImageID string
}

// InputsDigest is the digest of everything pib controls that decides a
// build's layer: the base image (by ID: an image never changes), the
// platform, the installer's name, every package of the group by name and
// content digest, and the clamp of file times (epoch; nil means the base
// image's creation time, itself fixed by the base image). Two builds with
// the same digest ran the same installer on the same files: if their
// layers differ, the installer made them differ (it wrote a time, a random
// value, a log). Not in it: the group's name or ID (the same packages in
// another group are the same install), the build's kind, time limit and
// resource limits (which change a successful result only by making it
// fail), and pib's own version (an upgrade of the sandbox could change a
// layer; such a difference is reported like any other).
func InputsDigest(baseImageID, platform string, g *groups.Group, epoch *time.Time) string {
	h := sha256.New()
	field := func(h hash.Hash, name, value string) {
		// Length-prefixed: no value can imitate the next field.
		fmt.Fprintf(h, "%s %d:%s\n", name, len(value), value)
	}
	field(h, "pib-build-inputs", "1")
	field(h, "base-image", baseImageID)
	field(h, "platform", platform)
	if inst := g.Installer(); inst != nil {
		field(h, "installer", inst.Name)
	}
	pkgs := append(g.Packages[:0:0], g.Packages...)
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	for _, p := range pkgs {
		field(h, "package", p.Name)
		field(h, "digest", p.Digest)
	}
	if epoch == nil {
		field(h, "source-date-epoch", "base-image-created")
	} else {
		field(h, "source-date-epoch", strconv.FormatInt(epoch.Unix(), 10))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// recordInputs stores build b's inputs digest and returns the previous
// build of b's owner with the same inputs that produced an image, if any.
// Only the owner's own builds count: another account's build ID must not
// appear in a report.
func (p *Pipeline) recordInputs(ctx context.Context, b *Build, digest string) (*PreviousBuild, error) {
	if _, err := p.db.ExecContext(ctx, `UPDATE builds SET inputs_digest = $2 WHERE id = $1`, b.ID, digest); err != nil {
		return nil, fmt.Errorf("record the build's inputs: %w", err)
	}
	var prev PreviousBuild
	err := p.db.QueryRowContext(ctx, `SELECT id, image_id FROM builds
		WHERE owner = $1 AND inputs_digest = $2 AND id <> $3 AND image_id <> '' AND submitted_at <= $4
		ORDER BY submitted_at DESC, id DESC LIMIT 1`, b.Owner, digest, b.ID, b.Submitted).Scan(&prev.BuildID, &prev.ImageID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find the previous build of the same inputs: %w", err)
	}
	return &prev, nil
}

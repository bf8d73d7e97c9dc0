//go:build linux

package testbuild

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/pipeline"
)

// Reproducibility is the "reproducible" part of a build report: the layer
// the build added, compared with the layer of the previous build of the
// same inputs (pipeline.InputsDigest). pib clamps the times of the files a
// build writes (SourceDateEpoch) and controls every other input, so an
// installer whose output is deterministic gives the same layer every
// time; when the layers differ, Differences lists what the installer
// itself made different (a log, a time or random value in a file).
type Reproducibility struct {
	// InputsDigest identifies the build's inputs.
	InputsDigest string `json:"inputs_digest"`
	// SourceDateEpoch is the latest file time in the layer, in Unix
	// seconds: later times were clamped to it.
	SourceDateEpoch int64 `json:"source_date_epoch"`
	// Layer is the DiffID of the layer the build added.
	Layer string `json:"layer"`
	// PreviousBuild is the owner's latest earlier build of the same
	// inputs that made an image; empty when there is none.
	PreviousBuild string `json:"previous_build,omitempty"`
	PreviousLayer string `json:"previous_layer,omitempty"`
	// SameLayer: the two layers are the same, byte for byte.
	SameLayer bool `json:"same_layer"`
	// Differences are the paths whose entries differ (at most
	// MaxReportedDifferences; MoreDifferences counts the rest).
	Differences     []layer.Difference `json:"differences,omitempty"`
	MoreDifferences int                `json:"more_differences,omitempty"`
	// Note says it in a sentence.
	Note string `json:"note"`
}

// MaxReportedDifferences bounds Reproducibility.Differences: the report
// is stored with the build and read by people.
const MaxReportedDifferences = 100

// notedPaths is how many paths the note names.
const notedPaths = 10

// reproducibility compares the layer of im, just built, with that of
// req.Previous. A comparison that cannot be made is said in the note
// (the build itself is fine); only a failure to read the new image is an
// error.
func (b *Builder) reproducibility(ctx context.Context, req pipeline.BuildRequest, base, im *images.Image) (*Reproducibility, error) {
	epoch, err := b.images.Epoch(base, req.SourceDateEpoch)
	if err != nil {
		return nil, err
	}
	top, err := b.images.TopLayer(im)
	if err != nil {
		return nil, err
	}
	r := &Reproducibility{InputsDigest: req.InputsDigest, SourceDateEpoch: epoch.Unix(), Layer: top.String()}
	if req.Previous == nil {
		r.Note = "first build of these inputs: there is no earlier layer to compare with"
		return r, nil
	}
	r.PreviousBuild = req.Previous.BuildID
	prev, err := b.images.Get(ctx, req.Previous.ImageID)
	if errors.Is(err, images.ErrNotFound) {
		r.Note = fmt.Sprintf("build %s had the same inputs, but its image has been removed: there is no layer to compare with", r.PreviousBuild)
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the image of build %s: %w", r.PreviousBuild, err)
	}
	prevTop, err := b.images.TopLayer(prev)
	if err != nil {
		return nil, fmt.Errorf("the image of build %s: %w", r.PreviousBuild, err)
	}
	r.PreviousLayer = prevTop.String()
	if prevTop == top {
		r.SameLayer = true
		r.Note = fmt.Sprintf("the layer is the same as that of build %s of the same inputs", r.PreviousBuild)
		return r, nil
	}
	diffs, err := b.images.DiffTopLayers(ctx, prev, im)
	if err != nil {
		// Both layers were checked when stored; the error names blob
		// paths, which a seller's report must not show.
		slog.Warn("compare a build's layer with the previous build's", "build", req.BuildID, "previous", r.PreviousBuild, "err", err)
		r.Note = fmt.Sprintf("the layer differs from that of build %s of the same inputs; pib could not compare them file by file", r.PreviousBuild)
		return r, nil
	}
	r.Note = differenceNote(r.PreviousBuild, diffs)
	if len(diffs) > MaxReportedDifferences {
		r.MoreDifferences = len(diffs) - MaxReportedDifferences
		diffs = diffs[:MaxReportedDifferences]
	}
	r.Differences = diffs
	return r, nil
}

// differenceNote says, in plain words, how a layer differs from build
// prev's of the same inputs.
func differenceNote(prev string, diffs []layer.Difference) string {
	if len(diffs) == 0 {
		return fmt.Sprintf("the layer's bytes differ from those of build %s of the same inputs, but no file does (the entries are ordered or encoded differently)", prev)
	}
	onlyContent := true
	paths := make([]string, 0, notedPaths)
	for i, d := range diffs {
		for _, w := range d.What {
			onlyContent = onlyContent && (w == layer.ChangeContent || w == layer.ChangeSize)
		}
		if i < notedPaths {
			paths = append(paths, d.Path)
		}
	}
	list := strings.Join(paths, ", ")
	if len(diffs) > notedPaths {
		list += fmt.Sprintf(" and %d more", len(diffs)-notedPaths)
	}
	what := "content"
	if !onlyContent {
		what = "files"
	}
	return fmt.Sprintf("the layer differs from build %s of the same inputs only by %s the installer itself made different: %s", prev, what, list)
}

package testbuild

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/scan"
)

// Scanner scans stored images and keeps their SBOMs (pipeline.Scanner).
type Scanner struct {
	images  *images.Store
	scanner *scan.Scanner
}

// NewScanner returns a Scanner of the images in is.
func NewScanner(is *images.Store, sc *scan.Scanner) *Scanner {
	return &Scanner{images: is, scanner: sc}
}

// Scan scans imageID; the outcome's report is a ScanReport.
func (s *Scanner) Scan(ctx context.Context, imageID string) (*pipeline.ScanOutcome, error) {
	im, err := s.images.Get(ctx, imageID)
	if err != nil {
		return nil, err
	}
	root, release, err := s.images.Rootfs(ctx, im)
	if err != nil {
		return nil, err
	}
	defer release()
	rep, err := s.scanner.Scan(ctx, root, scan.Image{ID: im.ID})
	if err != nil {
		return nil, err
	}
	out := &pipeline.ScanOutcome{Passed: rep.Status == scan.Successful}
	for _, v := range rep.Violations {
		msg := v.Reason
		if v.Package != "" {
			msg = v.Package + ": " + msg
		}
		out.Violations = append(out.Violations, pipeline.Finding{Rule: v.Rule, Message: msg, Detail: v.ID})
	}
	if !out.Passed {
		out.Summary = fmt.Sprintf("%d policy violation(s) among %d packages scanned: %s", len(rep.Violations), rep.Packages, strings.Join(violationIDs(rep), ", "))
	}
	stored, err := s.keepSBOMs(ctx, rep)
	if err != nil {
		return nil, err
	}
	if out.Report, err = json.Marshal(stored); err != nil {
		return nil, err
	}
	return out, nil
}

// keepSBOMs encodes rep's SBOM in every format and stores each as a blob
// the returned report names (S1: the SBOM is kept with the scan).
func (s *Scanner) keepSBOMs(ctx context.Context, rep *scan.Report) (*ScanReport, error) {
	stored := &ScanReport{Report: rep, SBOMs: map[string]string{}}
	for _, format := range []string{scan.CycloneDXJSON, scan.SPDXJSON} {
		var buf bytes.Buffer
		if err := rep.EncodeSBOM(&buf, format); err != nil {
			return nil, fmt.Errorf("encode the %s SBOM: %w", format, err)
		}
		h, _, err := s.images.Blobs().Put(ctx, &buf, v1.Hash{})
		if err != nil {
			return nil, fmt.Errorf("store the %s SBOM: %w", format, err)
		}
		stored.SBOMs[format] = h.String()
	}
	return stored, nil
}

// violationIDs names the first ten violations for the summary.
func violationIDs(rep *scan.Report) []string {
	var ids []string
	for i, v := range rep.Violations {
		if i == 10 {
			ids = append(ids, fmt.Sprintf("… %d more", len(rep.Violations)-10))
			break
		}
		ids = append(ids, v.ID)
	}
	return ids
}

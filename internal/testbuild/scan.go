//go:build linux

package testbuild

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/inventories"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/scan"
)

// Scanner scans stored images and keeps their SBOMs (pipeline.Scanner)
// and their inventories (inventories.Store: the matching view S5 matches
// again, and the state a scan of an image built on this one starts from).
//
// An image made of a parent image plus one layer, as every test build
// makes, is scanned incrementally (scan.Scanner.ScanOn): from the parent's
// kept state, reading only what the layer changed. A parent without a
// kept state is scanned in full first, once however many builds on it
// are scanned at the same time; any other image is scanned in full.
type Scanner struct {
	images      *images.Store
	scanner     *scan.Scanner
	inventories *inventories.Store
	workDir     string
	bases       sync.Map // parent image ID → *sync.Mutex: one full scan of a parent at a time
}

// NewScanner returns a Scanner of the images in is, keeping inventories
// in inv. workDir holds the views incremental scans catalog: it must be on
// the file system of is's layer cache (views hard-link its files), and is
// made private (0700).
func NewScanner(is *images.Store, sc *scan.Scanner, inv *inventories.Store, workDir string) *Scanner {
	return &Scanner{images: is, scanner: sc, inventories: inv, workDir: workDir}
}

// Scan scans imageID; the outcome's report is a ScanReport.
func (s *Scanner) Scan(ctx context.Context, imageID string) (*pipeline.ScanOutcome, error) {
	im, err := s.images.Get(ctx, imageID)
	if err != nil {
		return nil, err
	}
	rep, err := s.scan(ctx, im)
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

// scan scans im, incrementally when it can, and keeps its inventory.
func (s *Scanner) scan(ctx context.Context, im *images.Image) (*scan.Report, error) {
	if im.Disk != "" {
		return s.scanDisk(ctx, im)
	}
	base, ok, err := s.base(ctx, im)
	root, release, rerr := s.images.Rootfs(ctx, im)
	if rerr != nil {
		return nil, rerr
	}
	defer release()
	var rep *scan.Report
	if ok {
		rep, err = s.scanner.ScanOn(ctx, root, scan.Image{ID: im.ID}, base)
		if err != nil && ctx.Err() == nil {
			err = fmt.Errorf("the incremental scan on %s failed: %w", base.ID, err)
			ok = false
		}
	}
	if !ok {
		why := err
		rep, err = s.scanner.Scan(ctx, root, scan.Image{ID: im.ID})
		if err == nil && why != nil {
			// The full scan's result is the same; only slower.
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("scanned in full: %v", why))
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.keep(ctx, im.ID, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// scanDisk "scans" a disk image: pib boots its qcow2 chain but reads none
// of its file systems (NTFS above all), so there is nothing to catalog or
// check (scan.Scanner.ScanUnread), and the report says so first.
func (s *Scanner) scanDisk(ctx context.Context, im *images.Image) (*scan.Report, error) {
	rep, err := s.scanner.ScanUnread(ctx, scan.Image{ID: im.ID}, diskNotScanned(im))
	if err != nil {
		return nil, err
	}
	if err := s.keep(ctx, im.ID, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// diskNotScanned is the scan report's warning for a disk image.
func diskNotScanned(im *images.Image) string {
	return fmt.Sprintf("not inventoried: image %s is a %s disk image (%s), which pib boots to build on but does not read: "+
		"no package was listed, no vulnerability matched and no image policy check (S3) ran. syft and osv-scalibr catalog files (for Windows, the registry's installed programs) "+
		"and pib takes no file out of a disk image's file systems (NTFS, or a Linux disk kept whole). Check the image's software inside the guest with your own tools, "+
		"or build Linux software on a file-system image (pib image bootstrap) to have it scanned", im.ID, im.OS, im.Disk)
}

// keep stores the inventory and state of a scan of image id.
func (s *Scanner) keep(ctx context.Context, id string, rep *scan.Report) error {
	state, err := rep.State()
	if err != nil {
		return err
	}
	return s.inventories.Put(ctx, id, rep.Inventory(), state)
}

// base returns what an incremental scan of im starts from: ok is false
// when im is not its parent plus one layer; err says why a parent could
// not be used (im is then scanned in full).
func (s *Scanner) base(ctx context.Context, im *images.Image) (scan.Base, bool, error) {
	if im.ParentID == "" {
		return scan.Base{}, false, nil
	}
	parent, err := s.images.Get(ctx, im.ParentID)
	if err != nil {
		return scan.Base{}, false, err
	}
	layers, err := s.images.LayerDirs(ctx, im)
	if err != nil {
		return scan.Base{}, false, err
	}
	below, err := s.images.LayerDirs(ctx, parent)
	if err != nil {
		return scan.Base{}, false, err
	}
	if len(layers) != len(below)+1 || !slices.Equal(layers[:len(below)], below) {
		return scan.Base{}, false, nil
	}
	state, err := s.stateOf(ctx, parent)
	if err != nil {
		return scan.Base{}, false, err
	}
	if err := os.MkdirAll(s.workDir, 0o700); err != nil {
		return scan.Base{}, false, err
	}
	return scan.Base{ID: parent.ID, State: state, Layers: layers, WorkDir: s.workDir}, true, nil
}

// PrepareBase keeps the inventory of image id, scanning it in full,
// unless it is kept already: what the scans of builds on it start from
// (BaseScans).
func (s *Scanner) PrepareBase(ctx context.Context, id string) error {
	im, err := s.images.Get(ctx, id)
	if err != nil {
		return err
	}
	_, err = s.stateOf(ctx, im)
	return err
}

// stateOf returns the kept scan state of im, scanning it in full and
// keeping its inventory first when it has none. Concurrent scans of builds
// on one base wait for one full scan of it, which a cancelled build does
// not stop.
func (s *Scanner) stateOf(ctx context.Context, im *images.Image) ([]byte, error) {
	state, err := s.inventories.State(ctx, im.ID)
	if !errors.Is(err, inventories.ErrNotFound) {
		return state, err
	}
	mu, _ := s.bases.LoadOrStore(im.ID, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	state, err = s.inventories.State(ctx, im.ID)
	if !errors.Is(err, inventories.ErrNotFound) {
		return state, err
	}
	ctx = context.WithoutCancel(ctx)
	if im.Disk != "" {
		rep, err := s.scanDisk(ctx, im)
		if err != nil {
			return nil, err
		}
		return rep.State()
	}
	root, release, err := s.images.Rootfs(ctx, im)
	if err != nil {
		return nil, err
	}
	defer release()
	rep, err := s.scanner.Scan(ctx, root, scan.Image{ID: im.ID})
	if err != nil {
		return nil, fmt.Errorf("scan the base image %s: %w", im.ID, err)
	}
	if err := s.keep(ctx, im.ID, rep); err != nil {
		return nil, err
	}
	return rep.State()
}

// keepSBOMs stores rep's SBOM as a blob the returned report names (S1:
// the SBOM is kept with the scan): in syft's JSON only, the cheapest to
// write; the standard formats are made from it when first downloaded
// (package sboms).
func (s *Scanner) keepSBOMs(ctx context.Context, rep *scan.Report) (*ScanReport, error) {
	var buf bytes.Buffer
	if err := rep.EncodeSBOM(&buf, scan.SyftJSON); err != nil {
		return nil, fmt.Errorf("encode the SBOM: %w", err)
	}
	h, _, err := s.images.Blobs().Put(ctx, &buf, v1.Hash{})
	if err != nil {
		return nil, fmt.Errorf("store the SBOM: %w", err)
	}
	return &ScanReport{Report: rep, SBOMs: map[string]string{scan.SyftJSON: h.String()}}, nil
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

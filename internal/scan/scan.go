//go:build linux

package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/sbom"

	"github.com/pib-dev/pib/internal/rootfs"
	"github.com/pib-dev/pib/internal/vulndb"
)

// Status is the verdict of a scan (rule S4).
type Status string

const (
	Successful  Status = "successful"
	IssuesFound Status = "issues_found"
)

// Report is the result of one scan. Its JSON form is the report pib
// stores and shows; the SBOM travels with it (EncodeSBOM).
type Report struct {
	Status          Status    `json:"status"`
	ImageID         string    `json:"image_id"`
	OS              OS        `json:"os"`
	Packages        int       `json:"packages"`
	Vulnerabilities []Finding `json:"vulnerabilities"`
	// Groups are the vulnerabilities counted once: the findings of one
	// package that are the same vulnerability (Group), worst first.
	Groups []Group `json:"groups"`
	// Upgrades say, for each package with several vulnerabilities, the
	// version that fixes them all.
	Upgrades   []Upgrade      `json:"upgrades,omitempty"`
	Counts     Counts         `json:"counts"`
	Policy     []CheckResult  `json:"policy"`
	Violations []Violation    `json:"violations"`
	Allowed    []Allowed      `json:"allowed,omitempty"`
	VulnDB     vulndb.Summary `json:"vulndb"`
	// Warnings are problems that did not stop the scan (a version that
	// could not be compared, an OS OSV has no data for).
	Warnings  []string  `json:"warnings,omitempty"`
	ScannedAt time.Time `json:"scanned_at"`
	// Inventory says whether the whole image was read or only what its
	// layer changed on a base image scanned before.
	Scope InventorySource `json:"inventory"`

	sbom      *sbom.SBOM
	inventory *Inventory
	state     *state
}

// SBOM formats EncodeSBOM writes: the two standards, and syft's own JSON,
// the lossless form pib keeps (ConvertSBOM makes the others from it).
const (
	CycloneDXJSON = "cyclonedx-json"
	SPDXJSON      = "spdx-json"
	SyftJSON      = "syft-json"
)

// EncodeSBOM writes the image's inventory as CycloneDX JSON, SPDX JSON
// (rule S1) or syft JSON, with syft's encoders.
func (r *Report) EncodeSBOM(w io.Writer, format string) error {
	if r.sbom == nil {
		return fmt.Errorf("this report has no SBOM")
	}
	enc, err := sbomEncoder(format)
	if err != nil {
		return err
	}
	return enc.Encode(w, *r.sbom)
}

// Options configure a Scanner.
type Options struct {
	Policy      Policy           // zero value: DefaultPolicy()
	ToolVersion string           // pib's version, recorded in SBOMs
	Now         func() time.Time // clock for reports, EOL and allow-list expiry; default time.Now
}

// Image names what is scanned, for the report.
type Image struct {
	ID string
}

// Scanner scans image root filesystems. One Scanner keeps syft's license
// scanner (about 2 s of CPU to build) for all its scans, so a long-running
// process should make one and reuse it; it is safe for concurrent use.
type Scanner struct {
	db      *vulndb.DB
	policy  Policy
	now     func() time.Time
	sbomCfg *syft.CreateSBOMConfig

	licOnce sync.Once
	licCtx  context.Context
	licErr  error
}

// New returns a Scanner matching against db.
func New(db *vulndb.DB, opts Options) *Scanner {
	s := &Scanner{db: db, policy: opts.Policy, now: opts.Now}
	if s.policy.MinSeverity == "" {
		s.policy = DefaultPolicy()
	}
	if s.now == nil {
		s.now = time.Now
	}
	v := opts.ToolVersion
	if v == "" {
		v = "dev"
	}
	s.sbomCfg = sbomConfig(v)
	return s
}

// syftContext carries the shared license scanner into ctx, built on first
// use.
func (s *Scanner) syftContext(ctx context.Context) context.Context {
	s.licOnce.Do(func() {
		s.licCtx, s.licErr = syft.SetContextLicenseScanner(context.Background(), s.sbomCfg.Licenses)
	})
	if s.licErr != nil {
		// syft then builds its own per scan: slower, not wrong.
		return ctx
	}
	return valuesFrom{Context: ctx, values: s.licCtx}
}

// valuesFrom is ctx with extra values (the license scanner) looked up in
// a second context; cancellation and deadline stay ctx's.
type valuesFrom struct {
	context.Context
	values context.Context
}

func (c valuesFrom) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}

// Scan inventories the root filesystem at dir (S1), matches it against
// the vulnerability database (S2), runs the image policy checks (S3) and
// decides the verdict (S4). An error means the scan itself failed (the
// platform's problem), never that the image has issues.
//
// The image is hostile data (T2): every read goes through package rootfs,
// inside the image root, regular files only.
func (s *Scanner) Scan(ctx context.Context, dir string, img Image) (*Report, error) {
	return s.scan(ctx, dir, img, nil)
}

// Base is what ScanOn builds on: an image scanned before, and the one
// layer the scanned image adds on top of it.
type Base struct {
	ID string // the base image
	// State is Report.State of the base image's scan.
	State []byte
	// Layers are the scanned image's layers, unpacked in overlay form
	// (package layer), bottom first: the base's layers, then the new one.
	Layers []string
	// WorkDir is where the scan makes its sparse view of the image: on
	// the file system of Layers, so that files are hard-linked, not
	// copied. It must be private to pib (0700).
	WorkDir string
}

// ScanOn scans the image at dir as Scan does, reading only what its top
// layer changed: the result is the one Scan gives (the identity tests
// hold it to that), in a fraction of the time.
//
// The base's kept state says which files its packages came from. syft
// catalogs a sparse view of the image holding those files (as they are
// in the new image) and every file the new layer adds; packages whose
// evidence is unchanged are found again from the same files, new and
// changed ones from the new files, and syft computes the relationships
// across all of them as in a full scan. The S3.6 search reads only the
// new layer's files. A state this pib cannot use (another version) makes
// a full scan, with a warning.
func (s *Scanner) ScanOn(ctx context.Context, dir string, img Image, b Base) (*Report, error) {
	return s.scan(ctx, dir, img, &b)
}

// InventorySource says how a report's inventory was made.
type InventorySource struct {
	// Scan is "full" (the whole root file system), "incremental", or
	// "none" (an image whose files pib does not read: ScanUnread).
	Scan string `json:"scan"`
	// From is the base image an incremental scan started from;
	// ChangedPaths the number of paths its new layer changed.
	From         string `json:"from,omitempty"`
	ChangedPaths int    `json:"changed_paths,omitempty"`
}

func (s *Scanner) scan(ctx context.Context, dir string, img Image, b *Base) (*Report, error) {
	now := s.now().UTC()
	root, err := rootfs.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	defer root.Close()
	osInfo, err := detectOS(root)
	r := &Report{Status: Successful, ImageID: img.ID, ScannedAt: now, Vulnerabilities: []Finding{}, Violations: []Violation{}, Scope: InventorySource{Scan: "full"}}
	if err != nil {
		r.Warnings = append(r.Warnings, err.Error())
	}
	r.OS = osInfo
	if osInfo.ID != "" && osInfo.Ecosystem == "" {
		r.Warnings = append(r.Warnings, fmt.Sprintf("OSV has no vulnerability data for %s %s: only language packages are matched", osInfo.ID, osInfo.Version))
	}
	var base *state
	var c *change
	if b != nil {
		if base, err = decodeState(b.State); err == nil {
			c, err = readChange(b.Layers[len(b.Layers)-1])
		}
		if err != nil {
			// A full scan gives the same result, slower.
			r.Warnings = append(r.Warnings, fmt.Sprintf("scanned in full: %v", err))
			base = nil
		}
	}
	name := img.ID
	if name == "" {
		name = "rootfs"
	}

	// Inventory and the policy checks read the image independently.
	var checkResults []CheckResult
	var hits []secretHit
	done := make(chan struct{})
	var secrets func() []secretHit
	if base != nil {
		secrets = func() []secretHit { return secretsAfter(root, base.Secrets, c) }
	}
	go func() {
		defer close(done)
		checkResults, hits = runChecks(root, osInfo, now, secrets)
	}()
	var doc *sbom.SBOM
	var roots []linkRoot
	var resolved map[string]resolution
	if base != nil {
		doc, roots, resolved, err = s.catalogOn(ctx, root, name, *b, base, c)
		r.Scope = InventorySource{Scan: "incremental", From: b.ID, ChangedPaths: c.count()}
	} else if doc, roots, err = s.catalog(ctx, root, name); err == nil {
		// What a scan of an image built on this one reuses.
		resolved, err = ownedResolutions(doc, root, roots, nil, nil, nil, nil)
	}
	<-done
	if err != nil {
		return nil, err
	}
	r.sbom = doc
	r.state = newState(doc, hits, roots, resolved)
	pkgs := packagesOf(doc, osInfo.Ecosystem)
	r.inventory = &Inventory{OS: osInfo, Packages: pkgs}
	r.Packages = len(pkgs)

	if r.VulnDB, err = s.db.Summary(ctx); err != nil {
		return nil, err
	}
	if r.VulnDB.Records == 0 {
		r.Warnings = append(r.Warnings, "the vulnerability database is empty: no vulnerabilities can be found; run `pib vulndb import FILE` or `pib vulndb update`")
	}
	m, err := matchAll(ctx, s.db, pkgs)
	if err != nil {
		return nil, err
	}
	findings := m.findings
	r.Vulnerabilities = append(r.Vulnerabilities, findings...)
	r.Groups = append([]Group{}, group(findings)...)
	r.Upgrades = upgrades(findings, r.Groups, m.fixAll)
	r.Counts = countGroups(len(findings), r.Groups)
	r.Warnings = append(r.Warnings, m.warnings...)
	r.Policy = checkResults
	viol, allowed, ignored := s.policy.evaluate(findings, checkResults, now)
	r.Counts.UnknownIgnored = ignored
	r.Violations = append(r.Violations, viol...)
	r.Allowed = allowed
	if len(viol) > 0 {
		r.Status = IssuesFound
	}
	return r, nil
}

// Inventory is the image's matching view, as the scan matched it: what
// is kept per image and matched again when the vulnerability data
// changes (S5).
func (r *Report) Inventory() *Inventory { return r.inventory }

// State is what ScanOn needs of this image to scan an image built on it
// (Base.State); opaque to callers, kept with the inventory.
func (r *Report) State() ([]byte, error) {
	if r.state == nil {
		return nil, fmt.Errorf("this report has no scan state")
	}
	return json.Marshal(r.state)
}

// ScanUnread is the report for an image whose files pib does not read (a
// disk image: a Windows NTFS disk kept whole). There is nothing to
// inventory, so nothing is listed or matched, and no S3 check can look,
// so none is run: Policy is empty rather than full of checks that
// "passed" on nothing. The verdict is that of an empty inventory
// (Successful), and why comes first among the warnings, so that the
// report never passes for a clean scan. Its SBOM and state are those of
// an empty image: a scan of an image built on this one starts from them.
func (s *Scanner) ScanUnread(ctx context.Context, img Image, why string) (*Report, error) {
	empty, err := os.MkdirTemp("", "pib-scan-unread-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(empty)
	r, err := s.scan(ctx, empty, img, nil)
	if err != nil {
		return nil, err
	}
	r.Status = Successful
	r.Policy, r.Violations, r.Allowed = []CheckResult{}, []Violation{}, nil
	r.Scope = InventorySource{Scan: "none"}
	warnings := []string{why}
	if r.VulnDB.Records == 0 {
		warnings = append(warnings, "the vulnerability database is empty: run `pib vulndb import FILE` or `pib vulndb update`")
	}
	r.Warnings = warnings
	return r, nil
}

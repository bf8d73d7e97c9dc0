package scan

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/format/cyclonedxjson"
	"github.com/anchore/syft/syft/format/spdxjson"
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
	Status          Status         `json:"status"`
	ImageID         string         `json:"image_id"`
	OS              OS             `json:"os"`
	Packages        int            `json:"packages"`
	Vulnerabilities []Finding      `json:"vulnerabilities"`
	Policy          []CheckResult  `json:"policy"`
	Violations      []Violation    `json:"violations"`
	Allowed         []Allowed      `json:"allowed,omitempty"`
	VulnDB          vulndb.Summary `json:"vulndb"`
	// Warnings are problems that did not stop the scan (a version that
	// could not be compared, an OS OSV has no data for).
	Warnings  []string  `json:"warnings,omitempty"`
	ScannedAt time.Time `json:"scanned_at"`

	sbom *sbom.SBOM
}

// SBOM formats EncodeSBOM writes.
const (
	CycloneDXJSON = "cyclonedx-json"
	SPDXJSON      = "spdx-json"
)

// EncodeSBOM writes the image's inventory as CycloneDX JSON or SPDX JSON
// (rule S1), with syft's encoders.
func (r *Report) EncodeSBOM(w io.Writer, format string) error {
	if r.sbom == nil {
		return fmt.Errorf("this report has no SBOM")
	}
	var enc sbom.FormatEncoder
	var err error
	switch format {
	case CycloneDXJSON:
		enc, err = cyclonedxjson.NewFormatEncoderWithConfig(cyclonedxjson.DefaultEncoderConfig())
	case SPDXJSON:
		enc, err = spdxjson.NewFormatEncoderWithConfig(spdxjson.DefaultEncoderConfig())
	default:
		return fmt.Errorf("SBOM format %q: want %s or %s", format, CycloneDXJSON, SPDXJSON)
	}
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
	now := s.now().UTC()
	root, err := rootfs.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	defer root.Close()
	osInfo, err := detectOS(root)
	r := &Report{Status: Successful, ImageID: img.ID, ScannedAt: now, Vulnerabilities: []Finding{}, Violations: []Violation{}}
	if err != nil {
		r.Warnings = append(r.Warnings, err.Error())
	}
	r.OS = osInfo
	if osInfo.ID != "" && osInfo.Ecosystem == "" {
		r.Warnings = append(r.Warnings, fmt.Sprintf("OSV has no vulnerability data for %s %s: only language packages are matched", osInfo.ID, osInfo.Version))
	}

	// Inventory and the policy checks read the image independently.
	var checkResults []CheckResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		checkResults = runChecks(root, osInfo, now)
	}()
	name := img.ID
	if name == "" {
		name = "rootfs"
	}
	doc, err := s.catalog(ctx, root, name)
	<-done
	if err != nil {
		return nil, err
	}
	r.sbom = doc
	pkgs := packagesOf(doc, osInfo.Ecosystem)
	r.Packages = len(pkgs)

	if r.VulnDB, err = s.db.Summary(ctx); err != nil {
		return nil, err
	}
	if r.VulnDB.Records == 0 {
		r.Warnings = append(r.Warnings, "the vulnerability database is empty: no vulnerabilities can be found; run `pib vulndb import FILE` or `pib vulndb update`")
	}
	findings, warnings, err := match(ctx, s.db, pkgs)
	if err != nil {
		return nil, err
	}
	r.Vulnerabilities = append(r.Vulnerabilities, findings...)
	r.Warnings = append(r.Warnings, warnings...)
	r.Policy = checkResults
	viol, allowed := s.policy.evaluate(findings, checkResults, now)
	r.Violations = append(r.Violations, viol...)
	r.Allowed = allowed
	if len(viol) > 0 {
		r.Status = IssuesFound
	}
	return r, nil
}

//go:build linux

package web

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/monitor"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/scan"
)

// severities in the order the page shows them, worst first.
var severities = []scan.Severity{scan.Critical, scan.High, scan.Medium, scan.Low, scan.Unknown}

// vulnSorts are the columns the vulnerability table sorts by.
var vulnSorts = map[string]func(a, b scan.Finding) int{
	"severity": func(a, b scan.Finding) int {
		return cmp.Or(cmp.Compare(slices.Index(severities, a.Severity), slices.Index(severities, b.Severity)), strings.Compare(a.ID, b.ID))
	},
	"id": func(a, b scan.Finding) int {
		return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.Package, b.Package))
	},
	"package": func(a, b scan.Finding) int {
		return cmp.Or(strings.Compare(a.Package, b.Package), strings.Compare(a.ID, b.ID))
	},
}

// buildFinding is a finding with what to change.
type buildFinding struct {
	pipeline.Finding
	Advice string
}

// severityBar is one bar of the chart: a severity, its count and the
// bar's geometry in the SVG's user units.
type severityBar struct {
	Severity        scan.Severity
	Class           string
	Count           int
	Y, TextY, Width int
	CountX          int
	FilterURL       string
	Selected        bool
}

// sortLink is a sortable column header.
type sortLink struct {
	Key, Label, URL string
	// Sorted is the aria-sort value: "ascending" (or, for severity,
	// "descending": worst first) on the column sorted by, else "".
	Sorted string
}

// buildData is what the Build page shows.
type buildData struct {
	Build    *pipeline.Build
	Findings []buildFinding
	Changed  []string
	Log      string
	// Scan is the scan report; nil when the build was not scanned.
	Scan *scan.Report
	// SBOM is set when the scan kept SBOMs to download.
	SBOM bool
	// Monitoring is the image's monitoring verdict (S5): whether newer
	// vulnerability data changes the scan's; nil when not monitored.
	Monitoring *monitor.Verdict
	// Vulns are the vulnerabilities shown: filtered and sorted.
	Vulns      []scan.Finding
	Total      int
	Severity   string
	Sort       string
	Sorts      []sortLink
	Bars       []severityBar
	Severities []scan.Severity
	ChartTitle string
}

// buildPage is the seller's Build page: findings with what to change,
// the log and changed files (I8), the vulnerability table (S2) sorted and
// filtered by GET parameters (?sort=severity&severity=High, no
// JavaScript), the policy checks (S3) with a chart by severity, and SBOM
// downloads (S1). It reads through the pipeline's Reader with the
// signed-in account as owner, as GET /v1/builds/{id}, …/log and …/report
// do, so another account's build is not found, as a missing one.
func (s *Server) buildPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	ctx, owner, id := r.Context(), sess.account.ID, r.PathValue("id")
	b, err := s.d.Builds.Build(ctx, owner, id)
	if err != nil {
		return err
	}
	rep, err := s.d.Builds.Report(ctx, owner, id)
	if err != nil {
		return err
	}
	log, err := s.d.Builds.Log(ctx, owner, id)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	data := buildData{Build: b, Changed: rep.ChangedFiles, Log: string(log), Sort: cmp.Or(q.Get("sort"), "severity"), Severities: severities}
	sortBy, ok := vulnSorts[data.Sort]
	if !ok {
		return &problem.Error{Code: problem.Invalid, Field: "sort", Message: "sort the vulnerabilities by severity, id or package"}
	}
	if sev := q.Get("severity"); sev != "" {
		v, err := scan.ParseSeverity(sev)
		if err != nil {
			return &problem.Error{Code: problem.Invalid, Field: "severity", Message: "filter by severity Critical, High, Medium, Low or Unknown"}
		}
		data.Severity = string(v)
	}
	for _, f := range rep.Findings {
		data.Findings = append(data.Findings, buildFinding{Finding: f, Advice: pipeline.Advice(f.Rule)})
	}
	if scanned := api.ScanReportOf(rep); scanned.Report != nil {
		data.Scan, data.SBOM = scanned.Report, len(scanned.SBOMs) > 0
		data.Total = len(scanned.Vulnerabilities)
		for _, v := range scanned.Vulnerabilities {
			if data.Severity == "" || string(v.Severity) == data.Severity {
				data.Vulns = append(data.Vulns, v)
			}
		}
		slices.SortStableFunc(data.Vulns, sortBy)
		data.Bars, data.ChartTitle = chart(b.ID, scanned.Vulnerabilities, data)
	}
	if s.d.Monitor != nil && b.ImageID != "" {
		vs, err := s.d.Monitor.Verdicts(ctx, []string{b.ImageID})
		if err != nil {
			return err
		}
		data.Monitoring = vs[b.ImageID]
	}
	for _, c := range []struct{ key, label string }{{"id", "Vulnerability"}, {"package", "Package"}, {"severity", "Severity"}} {
		l := sortLink{Key: c.key, Label: c.label, URL: buildURL(b.ID, c.key, data.Severity)}
		if c.key == data.Sort {
			l.Sorted = "ascending"
			if c.key == "severity" {
				l.Sorted = "descending"
			}
		}
		data.Sorts = append(data.Sorts, l)
	}
	s.render(w, r, sess, http.StatusOK, "build.html", "Build "+b.ID, data)
	return nil
}

// buildURL is the Build page sorted by sort and filtered by severity.
func buildURL(id, sort, severity string) string {
	q := url.Values{}
	if sort != "" && sort != "severity" {
		q.Set("sort", sort)
	}
	if severity != "" {
		q.Set("severity", severity)
	}
	u := "/builds/" + url.PathEscape(id)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u + "#vulnerabilities"
}

// chart lays out the bars of the vulnerabilities-by-severity chart: one
// row of 24 units per severity, bars up to 180 units long.
func chart(id string, vulns []scan.Finding, data buildData) ([]severityBar, string) {
	counts := map[scan.Severity]int{}
	most := 1
	for _, v := range vulns {
		counts[v.Severity]++
		most = max(most, counts[v.Severity])
	}
	var bars []severityBar
	var parts []string
	for i, sev := range severities {
		n := counts[sev]
		width := n * 180 / most
		bars = append(bars, severityBar{
			Severity: sev, Class: "sev-" + string(sev), Count: n,
			Y: i*24 + 4, TextY: i*24 + 19, Width: width, CountX: 80 + width + 6,
			FilterURL: buildURL(id, data.Sort, string(sev)), Selected: data.Severity == string(sev),
		})
		parts = append(parts, fmt.Sprintf("%s %d", sev, n))
	}
	return bars, "Vulnerabilities by severity: " + strings.Join(parts, ", ")
}

// buildSBOM streams the build's SBOM, the same one GET
// /v1/builds/{id}/sbom serves (api.Deps.BuildSBOM), as a download.
func (s *Server) buildSBOM(w http.ResponseWriter, r *http.Request, sess *session) error {
	format := r.PathValue("format")
	id := r.PathValue("id")
	rc, ctype, err := s.d.BuildSBOM(r.Context(), sess.account.ID, id, format)
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename=%q`, id+"."+format+".json"))
	_, err = io.Copy(w, rc)
	return err
}

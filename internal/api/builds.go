//go:build linux

package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/monitor"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/testbuild"
)

// buildRoutes are the routes of the build pipeline: submitting, the scan
// status view, build logs and reports, investigations and webhooks.
func (s *Server) buildRoutes() []route {
	if s.Pipeline == nil {
		return nil
	}
	return []route{
		{method: "POST", pattern: "/v1/package-groups/{ref}/submit", roles: sellerOnly, handle: s.submitGroup},
		{method: "GET", pattern: "/v1/package-groups/{ref}/builds", roles: sellerOnly, handle: s.groupBuilds},
		{method: "GET", pattern: "/v1/package-groups/{ref}/history", roles: sellerOnly, handle: s.groupHistory},
		{method: "GET", pattern: "/v1/status", roles: sellerOnly, handle: s.status},
		{method: "GET", pattern: "/v1/builds/{id}", roles: sellerOrOperator, othersData: true, handle: s.getBuild},
		{method: "GET", pattern: "/v1/builds/{id}/log", roles: sellerOrOperator, othersData: true, handle: s.buildLog},
		{method: "GET", pattern: "/v1/builds/{id}/report", roles: sellerOrOperator, othersData: true, handle: s.buildReport},
		{method: "GET", pattern: "/v1/builds/{id}/sbom", roles: sellerOrOperator, othersData: true, handle: s.buildSBOM},
		{method: "GET", pattern: "/v1/investigations", roles: operatorOnly, othersData: true, handle: s.listInvestigations},
		{method: "POST", pattern: "/v1/investigations/{build}/retry", roles: operatorOnly, handle: s.retryBuild},
		{method: "POST", pattern: "/v1/investigations/{build}/resolve", roles: operatorOnly, handle: s.resolveBuild},
		{method: "PUT", pattern: "/v1/webhook", handle: s.setWebhook},
		{method: "GET", pattern: "/v1/webhook", handle: s.getWebhook},
		{method: "DELETE", pattern: "/v1/webhook", handle: s.deleteWebhook},
		{method: "GET", pattern: "/v1/webhook/deliveries", handle: s.webhookDeliveries},
	}
}

// sellerOrOperator: a seller reads its own builds; an operator any (to
// work an investigation), each such read audited.
var sellerOrOperator = []accounts.Role{accounts.Seller, accounts.Operator}

// buildOwner is the account whose build {id} the caller reads: a seller
// its own, an operator the build's owner (named to the audit log).
func (s *Server) buildOwner(r *http.Request, a *accounts.Account) (string, error) {
	if a.Role != accounts.Operator {
		return a.ID, nil
	}
	owner, err := s.Builds.BuildOwner(r.Context(), r.PathValue("id"))
	if err != nil {
		return "", err
	}
	noteObject(r, "", owner)
	return owner, nil
}

// GroupStatus is a group in the scan status view (SPEC: states).
type GroupStatus struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Submitted *time.Time        `json:"submitted,omitempty"`
	State     pipeline.State    `json:"state"`
	Builds    []*pipeline.Build `json:"builds"`
	// Monitoring is, by build ID, the monitoring verdict of each build
	// whose image is monitored (S5): the date of the data its verdict was
	// made with, and whether newer data would change it.
	Monitoring map[string]*monitor.Verdict `json:"monitoring,omitempty"`
}

func (s *Server) submitGroup(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	builds, err := s.Pipeline.Submit(r.Context(), a.ID, r.PathValue("ref"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, builds)
	return nil
}

// GroupStatus returns owner's group ref (ID or name) in the scan status
// view: its state and the builds of its latest submission. Another
// account's group is not found, as a missing one. The API and the portal
// (internal/web) both read the view through here.
func (d Deps) GroupStatus(ctx context.Context, owner, ref string) (*GroupStatus, error) {
	g, err := d.Groups.Get(ctx, owner, ref)
	if err != nil {
		return nil, err
	}
	builds, err := d.Builds.Builds(ctx, owner, g.ID)
	if err != nil {
		return nil, err
	}
	mon, err := d.monitoring(ctx, builds)
	if err != nil {
		return nil, err
	}
	return &GroupStatus{ID: g.ID, Name: g.Name, Submitted: g.Submitted, State: pipeline.GroupState(builds), Builds: nonNil(builds), Monitoring: mon}, nil
}

// ScanStatus returns a page of owner's groups in the scan status view,
// newest first, each with its state and its latest builds.
func (d Deps) ScanStatus(ctx context.Context, owner, cursor string, limit int) (Page[*GroupStatus], error) {
	list, next, err := d.Groups.ListPage(ctx, owner, cursor, limit)
	if err != nil {
		return Page[*GroupStatus]{}, err
	}
	ids := make([]string, len(list))
	for i, g := range list {
		ids[i] = g.ID
	}
	latest, err := d.Builds.LatestBuilds(ctx, owner, ids)
	if err != nil {
		return Page[*GroupStatus]{}, err
	}
	var all []*pipeline.Build
	for _, bs := range latest {
		all = append(all, bs...)
	}
	mon, err := d.monitoring(ctx, all)
	if err != nil {
		return Page[*GroupStatus]{}, err
	}
	out := Page[*GroupStatus]{Items: []*GroupStatus{}, NextCursor: next}
	for _, g := range list {
		b := latest[g.ID]
		gs := &GroupStatus{ID: g.ID, Name: g.Name, Submitted: g.Submitted, State: pipeline.GroupState(b), Builds: nonNil(b)}
		for _, x := range b {
			if v := mon[x.ID]; v != nil {
				if gs.Monitoring == nil {
					gs.Monitoring = map[string]*monitor.Verdict{}
				}
				gs.Monitoring[x.ID] = v
			}
		}
		out.Items = append(out.Items, gs)
	}
	return out, nil
}

// monitoring returns the monitoring verdicts of builds whose image is
// monitored, by build ID (nil when none is, or without a Monitor).
func (d Deps) monitoring(ctx context.Context, builds []*pipeline.Build) (map[string]*monitor.Verdict, error) {
	if d.Monitor == nil {
		return nil, nil
	}
	var ids []string
	for _, b := range builds {
		if b.ImageID != "" {
			ids = append(ids, b.ImageID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	byImage, err := d.Monitor.Verdicts(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out map[string]*monitor.Verdict
	for _, b := range builds {
		if v := byImage[b.ImageID]; v != nil && b.ImageID != "" {
			if out == nil {
				out = map[string]*monitor.Verdict{}
			}
			out[b.ID] = v
		}
	}
	return out, nil
}

// BuildStatus is a build as GET /v1/builds/{id} shows it: with, once its
// image is monitored, the monitoring verdict (S5).
type BuildStatus struct {
	*pipeline.Build
	Monitoring *monitor.Verdict `json:"monitoring,omitempty"`
}

func (s *Server) groupBuilds(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	st, err := s.GroupStatus(r.Context(), a.ID, r.PathValue("ref"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) groupHistory(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	ev, err := s.Builds.History(r.Context(), a.ID, r.PathValue("ref"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ev))
	return nil
}

// status is the scan status view: a page of groups, newest first, each
// with its state and its latest builds.
func (s *Server) status(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	if ref := r.URL.Query().Get("group"); ref != "" {
		st, err := s.GroupStatus(r.Context(), a.ID, ref)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, Page[*GroupStatus]{Items: []*GroupStatus{st}})
		return nil
	}
	cursor, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	out, err := s.ScanStatus(r.Context(), a.ID, cursor, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getBuild(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	owner, err := s.buildOwner(r, a)
	if err != nil {
		return err
	}
	b, err := s.Builds.Build(r.Context(), owner, r.PathValue("id"))
	if err != nil {
		return err
	}
	mon, err := s.monitoring(r.Context(), []*pipeline.Build{b})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, BuildStatus{Build: b, Monitoring: mon[b.ID]})
	return nil
}

func (s *Server) buildLog(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	owner, err := s.buildOwner(r, a)
	if err != nil {
		return err
	}
	log, err := s.Builds.Log(r.Context(), owner, r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(log)
	return nil
}

func (s *Server) buildReport(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	owner, err := s.buildOwner(r, a)
	if err != nil {
		return err
	}
	rep, err := s.Builds.Report(r.Context(), owner, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// sbomTypes are the SBOM formats a build's SBOM downloads in, with their
// media types.
var sbomTypes = map[string]string{
	scan.CycloneDXJSON: "application/vnd.cyclonedx+json",
	scan.SPDXJSON:      "application/spdx+json",
	scan.SyftJSON:      "application/json",
}

// buildSBOM streams the SBOM of a build's scan (rule S1).
func (s *Server) buildSBOM(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	owner, err := s.buildOwner(r, a)
	if err != nil {
		return err
	}
	rc, ctype, err := s.BuildSBOM(r.Context(), owner, r.PathValue("id"), r.URL.Query().Get("format"))
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", ctype)
	_, err = io.Copy(w, rc)
	return err
}

// BuildSBOM opens the SBOM of owner's build id in format (cyclonedx-json,
// the default when empty, spdx-json or syft-json) and returns its media
// type (rule S1). The API's GET /v1/builds/{id}/sbom and the portal's
// downloads both read it through here; another account's build is not
// found. A scan keeps syft's JSON, and the standard formats are made from
// it on first download (package sboms); builds scanned before that kept
// the standard formats themselves.
func (d Deps) BuildSBOM(ctx context.Context, owner, id, format string) (io.ReadCloser, string, error) {
	if format == "" {
		format = scan.CycloneDXJSON
	}
	ctype, ok := sbomTypes[format]
	if !ok {
		return nil, "", &problem.Error{Code: problem.Invalid, Field: "format", Message: "format must be cyclonedx-json, spdx-json or syft-json"}
	}
	rep, err := d.Builds.Report(ctx, owner, id)
	if err != nil {
		return nil, "", err
	}
	kept := ScanReportOf(rep).SBOMs
	if len(kept) == 0 {
		return nil, "", &problem.Error{Code: problem.NotFound, Message: fmt.Sprintf("build %s has no SBOM: it was not scanned (state %s)", rep.BuildID, rep.State)}
	}
	// The format as kept, else made from the kept syft JSON.
	open := func(h v1.Hash) (io.ReadCloser, error) { return d.Images.Blobs().Open(h) }
	digest, ok := kept[format]
	if !ok && d.SBOMs != nil {
		digest, ok = kept[scan.SyftJSON]
		open = func(h v1.Hash) (io.ReadCloser, error) { return d.SBOMs.Open(ctx, h, format) }
	}
	if !ok {
		have := slices.Sorted(maps.Keys(kept))
		return nil, "", &problem.Error{Code: problem.NotFound, Message: fmt.Sprintf("build %s kept no %s SBOM (it was scanned before pib kept that format); ask for %s", rep.BuildID, format, strings.Join(have, " or "))}
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, "", err
	}
	rc, err := open(h)
	if err != nil {
		return nil, "", err
	}
	return rc, ctype, nil
}

// ScanReportOf is the scan report a build keeps (testbuild.ScanReport);
// a build not scanned has an empty one (no Report, no SBOMs).
func ScanReportOf(rep *pipeline.Report) *testbuild.ScanReport {
	var scanned testbuild.ScanReport
	if len(rep.Scan) > 0 {
		json.Unmarshal(rep.Scan, &scanned)
	}
	return &scanned
}

func (s *Server) listInvestigations(w http.ResponseWriter, r *http.Request, _ *accounts.Account) error {
	list, err := s.Builds.Investigations(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(list))
	return nil
}

func (s *Server) retryBuild(w http.ResponseWriter, r *http.Request, _ *accounts.Account) error {
	b, err := s.Pipeline.Retry(r.Context(), r.PathValue("build"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, b)
	return nil
}

// ResolveRequest is the body of POST /v1/investigations/{build}/resolve.
type ResolveRequest struct {
	Note string `json:"note"`
}

func (s *Server) resolveBuild(w http.ResponseWriter, r *http.Request, _ *accounts.Account) error {
	var req ResolveRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	b, err := s.Pipeline.Resolve(r.Context(), r.PathValue("build"), req.Note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// WebhookRequest is the body of PUT /v1/webhook.
type WebhookRequest struct {
	URL string `json:"url"`
}

// Webhook answers PUT and GET /v1/webhook; the secret only the PUT that
// set it.
type Webhook struct {
	URL    string `json:"url"`
	Secret string `json:"secret,omitempty"`
}

func (s *Server) setWebhook(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	var req WebhookRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	secret, err := s.Webhooks.Set(r.Context(), a.ID, req.URL)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Webhook{URL: req.URL, Secret: secret})
	return nil
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	u, err := s.Webhooks.URL(r.Context(), a.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Webhook{URL: u})
	return nil
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	if err := s.Webhooks.Delete(r.Context(), a.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	list, err := s.Webhooks.Deliveries(r.Context(), a.ID, 100)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(list))
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

//go:build linux

package api

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
)

// XLSXType is the media type of the load form, both ways.
const XLSXType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

// catalogRoutes are the catalog's (SPEC catalog visibility) and its
// publishing routes: the load form (L1), change requests and their review
// (L2, F1–F3).
func (s *Server) catalogRoutes() []route {
	if s.Catalog == nil {
		return nil
	}
	return []route{
		{method: "GET", pattern: "/v1/products", othersData: true, handle: s.listProducts},
		{method: "GET", pattern: "/v1/products/{id}", othersData: true, handle: s.getProduct},
		{method: "POST", pattern: "/v1/products/{id}/versions/{version}/publish", roles: sellerOnly, handle: s.publishVersion},
		{method: "GET", pattern: "/v1/load-form", roles: sellerOnly, handle: s.loadFormTemplate},
		{method: "POST", pattern: "/v1/load-forms", roles: sellerOnly, handle: s.submitLoadForm},
		{method: "GET", pattern: "/v1/changes", roles: sellerOrOperator, othersData: true, handle: s.listChanges},
		{method: "GET", pattern: "/v1/changes/{id}", roles: sellerOrOperator, othersData: true, handle: s.getChange},
		{method: "POST", pattern: "/v1/changes/{id}/approve", roles: operatorOnly, handle: s.approveChange},
		{method: "POST", pattern: "/v1/changes/{id}/reject", roles: operatorOnly, handle: s.rejectChange},
	}
}

// ChangeRequest is a change request as the API shows it: with, while it
// is pending, the readable diff of what approving it would do to the
// catalog as it is now, and, for a load form just submitted, what the form
// parser ignored (an extra sheet).
type ChangeRequest struct {
	*catalog.Change
	Diff     []string `json:"diff,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// RejectRequest is the body of POST /v1/changes/{id}/reject.
type RejectRequest struct {
	// Reason tells the seller what to change before submitting again.
	Reason string `json:"reason"`
}

// ChangeEvent is the JSON body of a change.approved or change.rejected
// webhook delivery to the seller.
type ChangeEvent struct {
	DeliveryID string          `json:"delivery_id"`
	Event      string          `json:"event"`
	At         time.Time       `json:"at"`
	Change     *catalog.Change `json:"change"`
	Applied    []string        `json:"applied,omitempty"`
	Products   []string        `json:"products,omitempty"`
}

// Notifier queues a webhook event in a transaction (*pipeline.Pipeline).
type Notifier interface {
	Notify(ctx context.Context, tx *sql.Tx, account, event string, body func(id string, at time.Time) ([]byte, error)) error
}

// DecisionWebhook returns a catalog.Config.Decided that queues the
// seller's webhook event of each decision (L2) inside the deciding
// transaction: a delivery exists exactly when the decision committed.
func DecisionWebhook(n Notifier) func(context.Context, *sql.Tx, *catalog.Decision) error {
	return func(ctx context.Context, tx *sql.Tx, d *catalog.Decision) error {
		return n.Notify(ctx, tx, d.Change.Seller, d.Event, func(id string, at time.Time) ([]byte, error) {
			return json.Marshal(ChangeEvent{DeliveryID: id, Event: d.Event, At: at, Change: d.Change, Applied: d.Applied, Products: d.Products})
		})
	}
}

// public reports whether everything of p a viewer was shown is public.
func public(p *catalog.Product) bool {
	if p.Visibility != catalog.Public {
		return false
	}
	for _, v := range p.Versions {
		if v.Visibility != catalog.Public {
			return false
		}
	}
	return true
}

// listProducts answers every role with what it may see. An operator's
// listing is audited when it shows another account's draft or limited
// data, naming the seller when there is one.
func (s *Server) listProducts(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	list, err := s.Catalog.List(r.Context(), a)
	if err != nil {
		return err
	}
	owners := map[string]bool{}
	for _, p := range list {
		if !public(p) {
			owners[p.Seller] = true
		}
	}
	switch len(owners) {
	case 0:
		notePublic(r)
	case 1:
		for o := range owners {
			noteObject(r, "", o)
		}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) getProduct(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	p, err := s.Catalog.Get(r.Context(), a, r.PathValue("id"))
	if err != nil {
		return err
	}
	if public(p) {
		notePublic(r)
	}
	noteObject(r, p.ID, p.Seller)
	writeJSON(w, http.StatusOK, p)
	return nil
}

// publishVersion asks for a version to become public: a pending change
// request, reviewed like any other.
func (s *Server) publishVersion(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	ch, err := s.Catalog.Publish(r.Context(), a, r.PathValue("id"), r.PathValue("version"))
	if err != nil {
		return err
	}
	return s.writeChange(w, r, http.StatusCreated, ch, nil)
}

// writeChange answers with ch, its diff while it is pending, and names ch
// and its seller to the audit log.
func (s *Server) writeChange(w http.ResponseWriter, r *http.Request, status int, ch *catalog.Change, warnings []string) error {
	noteObject(r, ch.ID, ch.Seller)
	out, err := s.ChangeRequest(r.Context(), ch)
	if err != nil {
		return err
	}
	out.Warnings = warnings
	writeJSON(w, status, out)
	return nil
}

// ChangeRequest is ch as the API and the portal show it: with its diff
// while it is pending.
func (d Deps) ChangeRequest(ctx context.Context, ch *catalog.Change) (*ChangeRequest, error) {
	out := &ChangeRequest{Change: ch}
	if ch.State == catalog.Pending {
		diff, err := d.Catalog.Diff(ctx, ch)
		if err != nil {
			return nil, err
		}
		out.Diff = diff
	}
	return out, nil
}

// loadFormTemplate sends the empty load form, its Package groups sheet
// listing the seller's Successful groups (as the pipeline reads them).
func (s *Server) loadFormTemplate(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	var buf bytes.Buffer
	if err := s.LoadFormTemplate(r.Context(), a.ID, &buf); err != nil {
		return err
	}
	w.Header().Set("Content-Type", XLSXType)
	w.Header().Set("Content-Disposition", `attachment; filename="pib-load-form.xlsx"`)
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(buf.Bytes())
	return err
}

// LoadFormTemplate writes owner's empty load form (L1), its Package
// groups sheet listing owner's Successful groups. GET /v1/load-form and
// the portal's download both write it through here.
func (d Deps) LoadFormTemplate(ctx context.Context, owner string, w io.Writer) error {
	list, err := d.Groups.List(ctx, owner)
	if err != nil {
		return err
	}
	ids := make([]string, len(list))
	for i, g := range list {
		ids[i] = g.ID
	}
	latest, err := d.Builds.LatestBuilds(ctx, owner, ids)
	if err != nil {
		return err
	}
	refs := []loadform.GroupRef{}
	for _, g := range list {
		if bs := latest[g.ID]; len(bs) == 0 || pipeline.GroupState(bs) != pipeline.Successful {
			continue
		}
		// List leaves out the OS versions; Successful groups are few.
		full, err := d.Groups.Get(ctx, owner, g.ID)
		if err != nil {
			return err
		}
		refs = append(refs, loadform.GroupRef{Name: full.Name, Platform: full.Platform, OSVersions: full.OSVersions, SoftwareVersion: full.SoftwareVersion})
	}
	slices.SortFunc(refs, func(x, y loadform.GroupRef) int { return strings.Compare(x.Name, y.Name) })
	return loadform.Template(w, refs, nil)
}

// MaxLoadForm is the largest load form upload read: loadform's own
// limit, so a body over it is refused before it is read, whatever
// Content-Length says.
func (d Deps) MaxLoadForm() int64 {
	if d.LoadForm.MaxBytes > 0 {
		return d.LoadForm.MaxBytes
	}
	return loadform.DefaultLimits.MaxBytes
}

// loadFormTooLarge refuses a load form over MaxLoadForm.
func (d Deps) loadFormTooLarge() error {
	return loadform.ErrTooLarge.Errorf("the load form is larger than %d bytes: keep the form to its Products rows (at most %d) and remove images or other sheets", d.MaxLoadForm(), catalog.MaxRows)
}

// submitLoadForm reads a filled load form (the body), checks it cell by
// cell (loadform) and against the catalog (catalog.Submit), and stores it
// as one pending change request. Every problem is in the error's details.
func (s *Server) submitLoadForm(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != XLSXType && mt != "application/octet-stream" {
		return &problem.Error{Code: problem.UnsupportedMediaType, Rule: "L1", Message: "send the filled load form as the request body with Content-Type: " + XLSXType}
	}
	if r.ContentLength > s.MaxLoadForm() {
		return s.loadFormTooLarge()
	}
	ch, warnings, err := s.SubmitLoadForm(r.Context(), a, http.MaxBytesReader(w, r.Body, s.MaxLoadForm()))
	if err != nil {
		return err
	}
	return s.writeChange(w, r, http.StatusCreated, ch, warnings)
}

// SubmitLoadForm reads a filled load form of at most MaxLoadForm bytes,
// checks it cell by cell (loadform) and against the catalog
// (catalog.Submit) and stores it as seller's pending change request (L1,
// L2); it returns what the parser ignored as warnings. A refusal lists
// every problem, with its cell, in the error's Details. POST
// /v1/load-forms and the portal's upload both submit through here.
func (d Deps) SubmitLoadForm(ctx context.Context, seller *accounts.Account, body io.Reader) (*catalog.Change, []string, error) {
	max := d.MaxLoadForm()
	data, err := io.ReadAll(io.LimitReader(body, max+1))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || int64(len(data)) > max {
		return nil, nil, d.loadFormTooLarge()
	}
	if err != nil {
		return nil, nil, err
	}
	form, err := loadform.Parse(bytes.NewReader(data), int64(len(data)), d.LoadForm)
	if err != nil {
		return nil, nil, err
	}
	in := make([]catalog.RowInput, len(form.Rows))
	for i, row := range form.Rows {
		in[i] = rowInput(form, row)
	}
	ch, err := d.Catalog.Submit(ctx, seller, in)
	if err != nil {
		return nil, nil, err
	}
	return ch, form.Warnings, nil
}

// formColumn is the load form column of each catalog column, so that the
// catalog's errors name the seller's cell.
var formColumn = map[string]loadform.Column{
	catalog.ColRequest:           loadform.ColRequest,
	catalog.ColProductID:         loadform.ColProductID,
	catalog.ColProductTitle:      loadform.ColProductTitle,
	catalog.ColVersionTitle:      loadform.ColVersionTitle,
	catalog.ColReleaseNotes:      loadform.ColReleaseNotes,
	catalog.ColUsageInstructions: loadform.ColUsage,
	catalog.ColPackageGroup:      loadform.ColPackageGroup,
	catalog.ColPlatform:          loadform.ColPlatform,
	catalog.ColShortDescription:  loadform.ColShortDescription,
	catalog.ColLongDescription:   loadform.ColLongDescription,
	catalog.ColHighlights:        loadform.ColHighlights,
	catalog.ColCategory:          loadform.ColCategory,
	catalog.ColSupportContact:    loadform.ColSupportContact,
	catalog.ColEULAURL:           loadform.ColEULAURL,
	catalog.ColLogoURL:           loadform.ColLogoURL,
	catalog.ColTestAccounts:      loadform.ColTestAccounts,
}

// rowInput is a load form row as the catalog takes it.
func rowInput(f *loadform.Form, r loadform.Row) catalog.RowInput {
	return catalog.RowInput{
		Row: catalog.Row{
			Line: r.Line, Request: catalog.Request(r.Request),
			ProductID: r.ProductID, ProductTitle: r.ProductTitle,
			VersionTitle: r.VersionTitle, ReleaseNotes: r.ReleaseNotes, UsageInstructions: r.UsageInstructions,
			PackageGroup: r.PackageGroup, Platform: r.Platform,
			ShortDescription: r.ShortDescription, LongDescription: r.LongDescription, Highlights: r.Highlights,
			Category: r.Category, SupportContact: r.SupportContact, EULAURL: r.EULAURL, LogoURL: r.LogoURL,
			TestAccounts: r.TestAccounts,
		},
		Cell: func(column string) string {
			if c, ok := formColumn[column]; ok {
				return f.Cell(r.Line, c)
			}
			return ""
		},
	}
}

// listChanges lists change requests, newest first: a seller its own, an
// operator everyone's (audited).
func (s *Server) listChanges(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	list, err := s.Catalog.Changes(r.Context(), a)
	if err != nil {
		return err
	}
	out := make([]*ChangeRequest, len(list))
	for i, ch := range list {
		if out[i], err = s.ChangeRequest(r.Context(), ch); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getChange(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	ch, err := s.Catalog.Change(r.Context(), a, r.PathValue("id"))
	if err != nil {
		return err
	}
	return s.writeChange(w, r, http.StatusOK, ch, nil)
}

// noteChangeOwner names the seller of change request {id} to the audit
// log of a decision, whatever the decision's outcome.
func (s *Server) noteChangeOwner(r *http.Request, a *accounts.Account) {
	if ch, err := s.Catalog.Change(r.Context(), a, r.PathValue("id")); err == nil {
		noteObject(r, ch.ID, ch.Seller)
	}
}

func (s *Server) approveChange(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	s.noteChangeOwner(r, a)
	d, err := s.Catalog.Approve(r.Context(), a, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) rejectChange(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	var req RejectRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	s.noteChangeOwner(r, a)
	d, err := s.Catalog.Reject(r.Context(), a, r.PathValue("id"), req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

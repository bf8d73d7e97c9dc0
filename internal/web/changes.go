//go:build linux

package web

import (
	"net/http"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/problem"
)

var errNoCatalog = problem.New(problem.NotFound, "this pib serve has no catalog, so no change requests")

// changesData is what the change requests pages show.
type changesData struct {
	Changes []*api.ChangeRequest
	// Single is set on one change request's page; Done says what the
	// last decision was.
	Single bool
	Done   string
}

// changes lists every change request, newest first, each pending one with
// its diff (catalog.Changes and api.Deps.ChangeRequest, as GET
// /v1/changes, audited as it is).
func (s *Server) changes(w http.ResponseWriter, r *http.Request, sess *session) error {
	if s.d.Catalog == nil {
		return errNoCatalog
	}
	list, err := s.d.Catalog.Changes(r.Context(), sess.account)
	if err != nil {
		return err
	}
	data := changesData{}
	for _, ch := range list {
		cr, err := s.d.ChangeRequest(r.Context(), ch)
		if err != nil {
			return err
		}
		data.Changes = append(data.Changes, cr)
	}
	s.render(w, r, sess, http.StatusOK, "changes.html", "Change requests", data)
	return nil
}

// change is one change request's page: its rows, its diff while pending,
// and the approve and reject forms.
func (s *Server) change(w http.ResponseWriter, r *http.Request, sess *session) error {
	if s.d.Catalog == nil {
		return errNoCatalog
	}
	ch, err := s.d.Catalog.Change(r.Context(), sess.account, r.PathValue("id"))
	if err != nil {
		return err
	}
	noteObject(r, ch.ID, ch.Seller)
	cr, err := s.d.ChangeRequest(r.Context(), ch)
	if err != nil {
		return err
	}
	s.render(w, r, sess, http.StatusOK, "changes.html", "Change request "+ch.ID, changesData{Changes: []*api.ChangeRequest{cr}, Single: true, Done: r.URL.Query().Get("done")})
	return nil
}

// noteChangeOwner names the seller of change request {id} to the audit
// row of a decision, whatever its outcome (as the API does).
func (s *Server) noteChangeOwner(r *http.Request, sess *session) {
	if ch, err := s.d.Catalog.Change(r.Context(), sess.account, r.PathValue("id")); err == nil {
		noteObject(r, ch.ID, ch.Seller)
	}
}

// approveChange applies a change request (catalog.Approve; the seller's
// webhook is queued in its transaction by catalog.Config.Decided, as
// pib serve wires it for the API).
func (s *Server) approveChange(w http.ResponseWriter, r *http.Request, sess *session) error {
	if s.d.Catalog == nil {
		return errNoCatalog
	}
	s.noteChangeOwner(r, sess)
	d, err := s.d.Catalog.Approve(r.Context(), sess.account, r.PathValue("id"))
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/changes/"+d.Change.ID+"?done=approved", http.StatusSeeOther)
	return nil
}

// rejectChange rejects a change request with the operator's reason
// (catalog.Reject checks it).
func (s *Server) rejectChange(w http.ResponseWriter, r *http.Request, sess *session) error {
	if s.d.Catalog == nil {
		return errNoCatalog
	}
	s.noteChangeOwner(r, sess)
	d, err := s.d.Catalog.Reject(r.Context(), sess.account, r.PathValue("id"), formValue(r, "reason"))
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/changes/"+d.Change.ID+"?done=rejected", http.StatusSeeOther)
	return nil
}

// changeClass is the CSS class of a change request state's badge.
func changeClass(st catalog.State) string {
	switch st {
	case catalog.Approved:
		return "state-ok"
	case catalog.Rejected:
		return "state-issues"
	}
	return "state-progress"
}

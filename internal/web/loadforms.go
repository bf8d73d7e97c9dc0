//go:build linux

package web

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/problem"
)

// loadFormsData is what the Load forms page shows.
type loadFormsData struct {
	Changes []*catalog.Change
	// Submitted is the change request the last upload made.
	Submitted string
	// Refused is the last upload's refusal: its summary and, in Details,
	// every problem with its cell (Products!D7).
	Refused *problem.Error
}

// loadForms is the seller's Load forms page (L1, L2): download the form,
// upload a filled one, and the seller's change requests with their state
// and reason, read through catalog.Store.Changes as GET /v1/changes.
func (s *Server) loadForms(w http.ResponseWriter, r *http.Request, sess *session) error {
	return s.showLoadForms(w, r, sess, http.StatusOK, loadFormsData{Submitted: r.URL.Query().Get("submitted")})
}

func (s *Server) showLoadForms(w http.ResponseWriter, r *http.Request, sess *session, status int, data loadFormsData) error {
	if s.d.Catalog == nil {
		return problem.New(problem.NotFound, "this pib has no catalog: load forms are off")
	}
	list, err := s.d.Catalog.Changes(r.Context(), sess.account)
	if err != nil {
		return err
	}
	data.Changes = list
	s.render(w, r, sess, status, "loadforms.html", "Load forms", data)
	return nil
}

// loadFormTemplate downloads the empty load form: the same bytes as GET
// /v1/load-form (api.Deps.LoadFormTemplate).
func (s *Server) loadFormTemplate(w http.ResponseWriter, r *http.Request, sess *session) error {
	if s.d.Catalog == nil {
		return problem.New(problem.NotFound, "this pib has no catalog: load forms are off")
	}
	var buf bytes.Buffer
	if err := s.d.LoadFormTemplate(r.Context(), sess.account.ID, &buf); err != nil {
		return err
	}
	w.Header().Set("Content-Type", api.XLSXType)
	w.Header().Set("Content-Disposition", `attachment; filename="pib-load-form.xlsx"`)
	_, err := w.Write(buf.Bytes())
	return err
}

// submitLoadForm takes a filled load form (multipart field "form") and
// submits it as POST /v1/load-forms does (api.Deps.SubmitLoadForm). A
// refusal the seller can fix shows the page again with every problem and
// its cell; an accepted form goes to the list (post, redirect, get).
func (s *Server) submitLoadForm(w http.ResponseWriter, r *http.Request, sess *session) error {
	if s.d.Catalog == nil {
		return problem.New(problem.NotFound, "this pib has no catalog: load forms are off")
	}
	f, _, err := r.FormFile("form")
	if err != nil {
		return s.refuseLoadForm(w, r, sess, &problem.Error{Code: problem.Invalid, Rule: "L1", Field: "form", Message: "choose the filled load form (.xlsx) to upload"})
	}
	defer f.Close()
	ch, _, err := s.d.SubmitLoadForm(r.Context(), sess.account, f)
	if err != nil {
		return s.refuseLoadForm(w, r, sess, err)
	}
	http.Redirect(w, r, "/load-forms?submitted="+url.QueryEscape(ch.ID), http.StatusSeeOther)
	return nil
}

// refuseLoadForm shows the Load forms page with a refusal the seller can
// fix; pib's own failures go to the error page.
func (s *Server) refuseLoadForm(w http.ResponseWriter, r *http.Request, sess *session, err error) error {
	var pe *problem.Error
	status := api.StatusOf(err)
	if status >= http.StatusInternalServerError || !errors.As(err, &pe) {
		return err
	}
	return s.showLoadForms(w, r, sess, status, loadFormsData{Refused: pe})
}

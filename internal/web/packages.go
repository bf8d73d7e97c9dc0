//go:build linux

package web

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/problem"
)

// packagesData is what the Packages page shows.
type packagesData struct {
	Packages []*packages.Package
	// Error is the refused upload's, shown beside the file field; Uploaded
	// names the package just stored.
	Error    *problem.Error
	Uploaded *packages.Package
	MaxSize  int64
}

// packagesPage lists the seller's packages (as GET /v1/packages) with the
// upload form.
func (s *Server) packagesPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	var uploaded *packages.Package
	if id := r.URL.Query().Get("uploaded"); id != "" {
		// Only the seller's own package is named; any other ID is ignored.
		uploaded, _ = s.d.Packages.Get(r.Context(), sess.account.ID, id)
	}
	return s.showPackages(w, r, sess, http.StatusOK, packagesData{Uploaded: uploaded})
}

func (s *Server) showPackages(w http.ResponseWriter, r *http.Request, sess *session, status int, data packagesData) error {
	list, err := s.d.Packages.List(r.Context(), sess.account.ID)
	if err != nil {
		return err
	}
	data.Packages, data.MaxSize = list, s.d.Packages.MaxSize
	s.render(w, r, sess, status, "packages.html", "Packages", data)
	return nil
}

// uploadPackage streams a multipart form's file into the package store,
// as POST /v1/packages streams its body: Packages.Upload makes the same
// P5 checks and errors, and nothing is held whole in memory. The form's
// csrf field must come first (the page puts it first; browsers send
// fields in document order): it is checked before the file is read.
//
// The file name is the one the browser sent, unchanged: multipart.Part's
// FileName would drop a path, and Upload must see it to refuse it (P5).
func (s *Server) uploadPackage(w http.ResponseWriter, r *http.Request, sess *session) error {
	if r.ContentLength > s.d.Packages.MaxSize+maxFormBytes {
		return s.refuseUpload(w, r, sess, &problem.Error{Code: problem.TooLarge, Rule: "P5", Field: "file", Message: "the file is larger than the upload limit"})
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.d.Packages.MaxSize+maxFormBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		return &problem.Error{Code: problem.UnsupportedMediaType, Message: "send the file with the upload form on the Packages page"}
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != csrfField {
		return errCSRF
	}
	token, err := io.ReadAll(io.LimitReader(part, 1024))
	if err != nil || !sameToken(string(token), sess.csrf) {
		return errCSRF
	}
	part, err = mr.NextPart()
	if err != nil || part.FormName() != "file" {
		return s.refuseUpload(w, r, sess, &problem.Error{Code: problem.Invalid, Rule: "P5", Field: "file", Message: "choose a file to upload"})
	}
	_, params, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	p, err := s.d.Packages.Upload(r.Context(), sess.account.ID, params["filename"], part)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = &problem.Error{Code: problem.TooLarge, Rule: "P5", Field: "file", Message: "the file is larger than the upload limit"}
	}
	if err != nil {
		return s.refuseUpload(w, r, sess, err)
	}
	noteObject(r, p.ID, sess.account.ID)
	http.Redirect(w, r, "/packages?uploaded="+p.ID, http.StatusSeeOther)
	return nil
}

// refuseUpload shows a refused upload's error beside the file field (P5)
// with the status the API gives it; pib's own failures go to renderError.
func (s *Server) refuseUpload(w http.ResponseWriter, r *http.Request, sess *session, err error) error {
	var pe *problem.Error
	if !errors.As(err, &pe) || api.StatusOf(err) == http.StatusInternalServerError {
		return err
	}
	if err := s.showPackages(w, r, sess, api.StatusOf(err), packagesData{Error: pe}); err != nil {
		return err
	}
	return errShown{err}
}

// formatSize shows a byte count in binary units (1.5 MiB).
func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

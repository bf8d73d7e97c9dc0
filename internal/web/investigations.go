//go:build linux

package web

import (
	"net/http"

	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
)

// investigationsData is what the investigation queue shows.
type investigationsData struct {
	Items []pipeline.Investigation
	// Done says what the last action did ("retried b-…").
	Done, Build string
}

var errNoPipeline = problem.New(problem.NotFound, "this pib serve runs no builds, so it has no investigation queue")

// investigations is the operators' queue (SPEC: states): each build in
// Investigating, oldest first, overdue after 4 business days, with Retry
// and Resolve. It reads pipeline.Reader.Investigations, as GET
// /v1/investigations does, and is audited as that route is.
func (s *Server) investigations(w http.ResponseWriter, r *http.Request, sess *session) error {
	list, err := s.d.Builds.Investigations(r.Context())
	if err != nil {
		return err
	}
	q := r.URL.Query()
	s.render(w, r, sess, http.StatusOK, "investigations.html", "Investigations", investigationsData{Items: list, Done: q.Get("done"), Build: q.Get("build")})
	return nil
}

// retryBuild starts an investigated build over (pipeline.Retry, as POST
// /v1/investigations/{build}/retry; its audit row, like the API's, names
// the build and not its owner).
func (s *Server) retryBuild(w http.ResponseWriter, r *http.Request, sess *session) error {
	if s.d.Pipeline == nil {
		return errNoPipeline
	}
	b, err := s.d.Pipeline.Retry(r.Context(), r.PathValue("build"))
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/investigations?done=retried&build="+b.ID, http.StatusSeeOther)
	return nil
}

// resolveBuild closes an investigation with the operator's note
// (pipeline.Resolve refuses an empty one).
func (s *Server) resolveBuild(w http.ResponseWriter, r *http.Request, sess *session) error {
	if s.d.Pipeline == nil {
		return errNoPipeline
	}
	b, err := s.d.Pipeline.Resolve(r.Context(), r.PathValue("build"), formValue(r, "note"))
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/investigations?done=resolved&build="+b.ID, http.StatusSeeOther)
	return nil
}

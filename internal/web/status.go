//go:build linux

package web

import (
	"net/http"
	"slices"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/pipeline"
)

// statusPageSize is how many groups one Scan status page lists.
const statusPageSize = 100

// statusData is what the Scan status page shows.
type statusData struct {
	Groups []*api.GroupStatus
	// Next is the cursor of the next (older) page; Single is set when the
	// page shows one group (/status/{group}).
	Next   string
	Single bool
	// InProgress: a build is in progress, so the groups poll for their
	// state (htmx, every 2 s) until none is; in-progress groups show
	// their builds open.
	InProgress bool
}

// scanStatus is the seller's Scan status page (SPEC: states): each group
// with its submitted date and state, expanding to its builds. It reads the
// view through api.Deps.ScanStatus, as GET /v1/status does. An htmx
// request (Refresh status) gets the groups fragment alone.
func (s *Server) scanStatus(w http.ResponseWriter, r *http.Request, sess *session) error {
	page, err := s.d.ScanStatus(r.Context(), sess.account.ID, r.URL.Query().Get("cursor"), statusPageSize)
	if err != nil {
		return err
	}
	s.showStatus(w, r, sess, statusData{Groups: page.Items, Next: page.NextCursor})
	return nil
}

// groupStatus is the Scan status page of one group, by ID or name;
// another account's group is not found, exactly as a missing one.
func (s *Server) groupStatus(w http.ResponseWriter, r *http.Request, sess *session) error {
	g, err := s.d.GroupStatus(r.Context(), sess.account.ID, r.PathValue("group"))
	if err != nil {
		return err
	}
	s.showStatus(w, r, sess, statusData{Groups: []*api.GroupStatus{g}, Single: true})
	return nil
}

func (s *Server) showStatus(w http.ResponseWriter, r *http.Request, sess *session, data statusData) {
	data.InProgress = slices.ContainsFunc(data.Groups, func(g *api.GroupStatus) bool {
		return g.State == pipeline.Building || g.State == pipeline.Scanning
	})
	w.Header().Add("Vary", "HX-Request")
	if r.Header.Get("HX-Request") == "true" {
		s.renderTemplate(w, r, sess, http.StatusOK, "status.html", "groups", "", data)
		return
	}
	s.render(w, r, sess, http.StatusOK, "status.html", "Scan status", data)
}

// stateClass is the CSS class of a build or group state's badge.
func stateClass(st pipeline.State) string {
	switch st {
	case pipeline.Successful:
		return "state-ok"
	case pipeline.IssuesFound, pipeline.GroupIssuesFound:
		return "state-issues"
	case pipeline.Investigating:
		return "state-investigating"
	case pipeline.Draft:
		return "state-draft"
	}
	return "state-progress"
}

//go:build linux

package api

import (
	"net/http"

	"github.com/pib-dev/pib/internal/accounts"
)

// monitorRoutes are continuous monitoring's (S5). POST /v1/rescan is the
// operator's: re-matching every image that matters is the platform's
// maintenance, and its summary counts images of every account. Sellers
// and buyers learn what concerns their images through the
// vulnerabilities.changed events and the status view.
func (s *Server) monitorRoutes() []route {
	if s.Monitor == nil {
		return nil
	}
	return []route{
		{method: "POST", pattern: "/v1/rescan", roles: operatorOnly, handle: s.rescan},
	}
}

// RescanRequest is the body of POST /v1/rescan.
type RescanRequest struct {
	// ImageID re-matches this image only; empty: every image that matters.
	ImageID string `json:"image_id,omitempty"`
}

func (s *Server) rescan(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	var req RescanRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	noteObject(r, req.ImageID, "")
	res, err := s.Monitor.Run(r.Context(), req.ImageID, "rescan requested by "+a.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

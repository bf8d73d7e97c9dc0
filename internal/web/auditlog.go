//go:build linux

package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/problem"
)

// auditPageSize is how many entries the audit log page shows.
const auditPageSize = 200

// auditLogData is what the audit log page shows.
type auditLogData struct {
	Entries        []audit.Entry
	Account, Since string
	Limit          int
}

// sinceLayouts are the times the since filter takes: RFC 3339 (as GET
// /v1/audit), a datetime-local field's value, or a day, in UTC.
var sinceLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"}

// auditLog is the operators' audit log page, newest first, filtered by
// account (ID or name) and since (audit.List, as GET /v1/audit).
func (s *Server) auditLog(w http.ResponseWriter, r *http.Request, sess *session) error {
	q := r.URL.Query()
	data := auditLogData{Account: strings.TrimSpace(q.Get("account")), Since: strings.TrimSpace(q.Get("since")), Limit: auditPageSize}
	f := audit.Filter{Account: data.Account, Limit: auditPageSize}
	if data.Since != "" {
		var err error
		for _, layout := range sinceLayouts {
			if f.Since, err = time.Parse(layout, data.Since); err == nil {
				break
			}
		}
		if err != nil {
			return &problem.Error{Code: problem.Invalid, Field: "since", Message: "since must be a date (2026-11-25) or a time (2026-11-25T18:00, UTC, or RFC 3339)"}
		}
	}
	list, err := s.d.Audit.List(r.Context(), f)
	if err != nil {
		return err
	}
	data.Entries = list
	s.render(w, r, sess, http.StatusOK, "auditlog.html", "Audit log", data)
	return nil
}

//go:build linux

package web

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
)

// The portal's audit rows (SPEC, roles and isolation) are the API's: a
// page that does the work of an API route names that route (apiRoute),
// and its requests are recorded exactly as the API records the route's
// (internal/api/audit.go): every state-changing request, and every
// operator read of another account's data, with the API's action, the
// object, its owner and the status the API would have answered. So the
// log reads the same whichever way an operator worked. A POST of a page
// with no API route is recorded under its own pattern.

// apiRoute is the API route a portal page does the work of.
type apiRoute struct {
	// action is the API's audit action, "METHOD /v1/pattern".
	action string
	// ok is the status the API answers on success (the portal redirects
	// after a post, but the row records what the API would).
	ok int
	// othersData: an operator's read may show another account's data
	// (the API route's othersData).
	othersData bool
}

// auditNote is what a handler tells the audit row of its request.
type auditNote struct {
	requestID     string
	object, owner string
}

type ctxKey int

const auditKey ctxKey = iota

// noteObject names the object a request acted on (id, when not the one
// in the path) and the account owning it (owner, when known).
func noteObject(r *http.Request, id, owner string) {
	if n, ok := r.Context().Value(auditKey).(*auditNote); ok {
		if id != "" {
			n.object = id
		}
		if owner != "" {
			n.owner = owner
		}
	}
}

// withAuditNote returns r carrying a note, of request requestID, for its
// handler to fill.
func withAuditNote(r *http.Request, requestID string) (*http.Request, *auditNote) {
	n := &auditNote{requestID: requestID}
	return r.WithContext(context.WithValue(r.Context(), auditKey, n)), n
}

// audited reports whether a request of rt by a, answered, is recorded:
// the API's rule, for the API route the page stands for.
func (rt route) audited(r *http.Request, a *accounts.Account, n *auditNote) bool {
	return api.Audited(r.Method, rt.api != nil && rt.api.othersData, a, n.owner)
}

// record writes the audit row of a request of rt answered with err (nil:
// the API route's success status).
func (s *Server) record(rt route, r *http.Request, a *accounts.Account, n *auditNote, err error) {
	if !rt.audited(r, a, n) {
		return
	}
	action, status := rt.pattern, api.StatusOf(err)
	if rt.api != nil {
		action = rt.api.action
		if err == nil {
			status = rt.api.ok
		}
	} else if err == nil {
		status = http.StatusSeeOther
	}
	object := n.object
	if object == "" {
		object = api.PathObject(rt.pattern, r)
	}
	e := audit.Entry{
		At: time.Now().UTC(), RequestID: n.requestID,
		AccountID: a.ID, AccountName: a.Name, Role: string(a.Role),
		Action: action, Object: object, Owner: n.owner, Result: status,
	}
	// The page may be written already: the request's context may end.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := s.d.Audit.Record(ctx, e); err != nil {
		slog.Error("audit entry not written; the portal request was answered", "request_id", e.RequestID, "action", e.Action, "account", e.AccountID, "err", err)
	}
}

// requestIDHeader carries a request's ID on the answer (the API's header).
const requestIDHeader = "X-Request-Id"

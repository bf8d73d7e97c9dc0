//go:build linux

package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/problem"
)

// The audit middleware (SPEC, roles and isolation): every state-changing
// request, and every operator read of another account's data, becomes one
// row of the audit log. Every answer carries the request's ID in
// X-Request-Id, so a row can be matched with the server log and with what
// the client saw. IDs are made here; one sent by the client is ignored, so
// a caller cannot make its requests look like someone else's.

// requestIDHeader names the response header carrying the request ID.
const requestIDHeader = "X-Request-Id"

type ctxKey int

const (
	requestIDKey ctxKey = iota
	auditKey
)

// auditInfo is what a request tells the audit log; the route wrapper makes
// it, authentication fills in the account, handlers name the object.
type auditInfo struct {
	account *accounts.Account
	object  string
	owner   string
	// public: the read showed only what every account may see (a
	// published product), so an operator's read of it is not audited.
	public bool
}

// NewRequestID makes a request ID (req-…); the portal makes its own with
// it.
func NewRequestID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "req-" + hex.EncodeToString(b)
}

// withRequestID gives every request an ID, echoed in X-Request-Id.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := NewRequestID()
		w.Header().Set(requestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// RequestID returns the ID the API gave the request of ctx ("" outside one).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// noteObject tells the audit log which object a request acted on (id, when
// not the one in the path) and which account owns it (owner, when known).
func noteObject(r *http.Request, id, owner string) {
	if ai, ok := r.Context().Value(auditKey).(*auditInfo); ok {
		if id != "" {
			ai.object = id
		}
		if owner != "" {
			ai.owner = owner
		}
	}
}

// notePublic tells the audit log that a read showed only public data.
func notePublic(r *http.Request) {
	if ai, ok := r.Context().Value(auditKey).(*auditInfo); ok {
		ai.public = true
	}
}

// noteAccount records the authenticated account of the request.
func noteAccount(r *http.Request, a *accounts.Account) {
	if ai, ok := r.Context().Value(auditKey).(*auditInfo); ok {
		ai.account = a
	}
}

// audited reports whether a request on rt, answered, goes to the audit log.
func audited(rt route, r *http.Request, ai *auditInfo) bool {
	if ai.account == nil {
		return false // unauthenticated: changed nothing
	}
	return Audited(r.Method, rt.othersData && !ai.public, ai.account, ai.owner)
}

// Audited is the audit rule (SPEC, roles and isolation) for a request by
// a with method on a route or page that may show another account's data
// (othersData, false when what was shown is public) of owner (when known):
// every state-changing request, and every operator read of another
// account's data. The portal applies it to its pages.
func Audited(method string, othersData bool, a *accounts.Account, owner string) bool {
	if method != http.MethodGet && method != http.MethodHead {
		return true
	}
	if !othersData || a.Role != accounts.Operator {
		return false
	}
	// The operator's own images (base images) are not another account's.
	return owner != a.ID && owner != images.Operator
}

// record writes the audit row of an answered request, if it needs one.
func (s *Server) record(rt route, r *http.Request, ai *auditInfo, status int) {
	if !audited(rt, r, ai) {
		return
	}
	object := ai.object
	if object == "" {
		object = PathObject(rt.pattern, r)
	}
	e := audit.Entry{
		At: time.Now().UTC(), RequestID: RequestID(r.Context()),
		AccountID: ai.account.ID, AccountName: ai.account.Name, Role: string(ai.account.Role),
		Action: rt.method + " " + rt.pattern, Object: object, Owner: ai.owner, Result: status,
	}
	// The request is answered already: its context may be cancelled.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := s.Audit.Record(ctx, e); err != nil {
		slog.Error("audit entry not written; the request was answered", "request_id", e.RequestID, "action", e.Action, "account", e.AccountID, "err", err)
	}
}

// PathObject is the value of the pattern's first wildcard ({id}, {ref},
// …): the object of a request's audit row when the handler named none.
func PathObject(pattern string, r *http.Request) string {
	_, rest, ok := strings.Cut(pattern, "{")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "}")
	return r.PathValue(strings.TrimSuffix(name, "..."))
}

// auditRoutes serve the audit log to operators.
func (s *Server) auditRoutes() []route {
	return []route{
		{method: "GET", pattern: "/v1/audit", roles: operatorOnly, handle: s.listAudit},
	}
}

// listAudit answers GET /v1/audit?account=&since=&limit=, newest first.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, _ *accounts.Account) error {
	q := r.URL.Query()
	f := audit.Filter{Account: q.Get("account"), Limit: 100}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return &problem.Error{Code: problem.Invalid, Field: "since", Message: "since must be an RFC 3339 time, e.g. 2026-11-25T18:00:00Z"}
		}
		f.Since = t
	}
	if q.Has("limit") {
		_, limit, err := pageParams(r)
		if err != nil {
			return err
		}
		f.Limit = limit
	}
	list, err := s.Audit.List(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Page[audit.Entry]{Items: list})
	return nil
}

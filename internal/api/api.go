//go:build linux

// Package api is pib's REST API: JSON under /v1/, bearer-token
// authentication, role and ownership checks on every route.
//
// Errors have one shape, {"code","rule","field","message"}: a handler
// returns the domain's *problem.Error (or makes one for what only the API
// knows, such as a query parameter), and one table maps its code to the
// HTTP status (statusOf). An error without a code is pib's own failure: a
// 500 whose detail goes to the log with the request ID, never to the
// caller. A resource of another account answers exactly like a missing
// one: 404 not_found.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/instance"
	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/monitor"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/sboms"
	"github.com/pib-dev/pib/internal/subscriptions"
	"github.com/pib-dev/pib/internal/webhook"
)

// Deps are the stores the API serves.
type Deps struct {
	Accounts   *accounts.Store
	Packages   *packages.Store
	Groups     *groups.Store
	OSVersions *osversions.Store
	Images     *images.Store
	// Audit is the audit log; required (SPEC, roles and isolation).
	Audit *audit.Log
	// Pipeline runs builds; nil leaves out the build routes.
	Pipeline *pipeline.Pipeline
	// Builds reads builds, the status view and the operators' queue:
	// required with Pipeline (its Reader).
	Builds *pipeline.Reader
	// Webhooks are the accounts' webhooks, served with the build routes:
	// required with Pipeline (the one it delivers through).
	Webhooks *webhook.Service
	// Catalog is the catalog and its change requests (L1–L2, F1–F3); nil
	// leaves out the catalog routes. Required with it: Builds, which tells
	// the load form which groups are Successful.
	Catalog *catalog.Store
	// LoadForm bounds load form uploads; zero fields take
	// loadform.DefaultLimits.
	LoadForm loadform.Limits
	// Subscriptions and PrivateBuilds serve the buyers' routes
	// (buyers.go); nil leaves them out.
	Subscriptions *subscriptions.Store
	PrivateBuilds *privatebuilds.Service
	// Monitor re-matches images as vulnerability data changes (S5),
	// serving POST /v1/rescan and the status view's verdict dates; nil
	// leaves them out.
	Monitor *monitor.Monitor
	// SBOMs makes the standard SBOM formats from the syft JSON a scan
	// kept (GET /v1/builds/{id}/sbom); nil serves only what a scan kept.
	SBOMs *sboms.Store
	// Instances launches and supervises images as machines; nil leaves
	// out the instance routes.
	Instances *instance.Manager
	// Registry collects metrics served at /metrics; nil makes a new one.
	Registry *prometheus.Registry
}

// Server is the HTTP API.
type Server struct {
	Deps
	mux    *http.ServeMux
	routes []route
	reqs   *prometheus.CounterVec
	dur    *prometheus.HistogramVec
}

// route is one API route: who may call it and what handles it.
type route struct {
	method, pattern string
	roles           []accounts.Role // empty: any authenticated account; nil with public: no token
	public          bool
	// othersData: an operator's GET here may read another account's data,
	// so it is audited (see audited).
	othersData bool
	handle     func(w http.ResponseWriter, r *http.Request, a *accounts.Account) error
}

// maxJSONBody bounds request bodies other than uploads.
const maxJSONBody = 1 << 20

// New returns the API server with all routes registered.
func New(d Deps) *Server {
	if d.Audit == nil {
		panic("api.New: Deps.Audit is nil; every API needs the audit log (audit.New(db))")
	}
	if d.Pipeline != nil && (d.Builds == nil || d.Webhooks == nil) {
		panic("api.New: Deps.Builds or Deps.Webhooks is nil; the build routes need the pipeline's Reader and the webhooks it delivers through")
	}
	if d.Catalog != nil && d.Builds == nil {
		panic("api.New: Deps.Builds is nil; the catalog routes read group states through the pipeline's Reader")
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	s := &Server{Deps: d, mux: http.NewServeMux()}
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pib_http_requests_total", Help: "API requests by route and status."}, []string{"route", "status"})
	s.dur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pib_http_request_duration_seconds", Help: "API request latency by route.", Buckets: prometheus.DefBuckets}, []string{"route"})
	d.Registry.MustRegister(s.reqs, s.dur, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	// Metrics name routes, accounts' activity and build counts: operators
	// only here; MetricsHandler serves them unauthenticated on a private
	// listener (pib serve --metrics-listen).
	s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		err := s.serve(w, r, route{method: "GET", pattern: "/metrics", roles: operatorOnly, handle: func(w http.ResponseWriter, r *http.Request, _ *accounts.Account) error {
			s.MetricsHandler().ServeHTTP(w, r)
			return nil
		}})
		if err != nil {
			writeError(w, r, err)
		}
	})
	s.mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
	if d.Pipeline != nil {
		d.Registry.MustRegister(d.Pipeline.Collectors()...)
	}
	for _, rt := range slices.Concat(s.allRoutes(), s.imageRoutes(), s.buildRoutes(), s.auditRoutes(), s.catalogRoutes(), s.buyerRoutes(), s.monitorRoutes(), s.instanceRoutes()) {
		s.handle(rt)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, problem.New(problem.NotFound, "no route %s %s; see /v1/openapi.json", r.Method, r.URL.Path))
	})
	return s
}

// Routes lists the method and pattern of every /v1 route (for the OpenAPI
// completeness test).
func (s *Server) Routes() [][2]string {
	var out [][2]string
	for _, rt := range s.routes {
		out = append(out, [2]string{rt.method, rt.pattern})
	}
	return out
}

// MetricsHandler serves the Prometheus metrics without authentication,
// for a listener only a scraper can reach.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	withRequestID(s.mux).ServeHTTP(w, r)
}

func (s *Server) handle(rt route) {
	s.routes = append(s.routes, rt)
	name := rt.method + " " + rt.pattern
	s.mux.HandleFunc(name, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		ai := &auditInfo{}
		r = r.WithContext(context.WithValue(r.Context(), auditKey, ai))
		err := s.serve(rec, r, rt)
		if err != nil {
			writeError(rec, r, err)
		}
		s.record(rt, r, ai, rec.status)
		s.reqs.WithLabelValues(name, fmt.Sprint(rec.status)).Inc()
		s.dur.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt route) (err error) {
	defer func() {
		if p := recover(); p != nil {
			slog.Error("panic in API handler", "route", rt.pattern, "panic", p)
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	var a *accounts.Account
	if !rt.public {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return problem.New(problem.Unauthenticated, "send your API token as Authorization: Bearer <token> (pib login)")
		}
		if a, err = s.Accounts.Authenticate(r.Context(), strings.TrimSpace(token)); err != nil {
			return err // accounts.ErrUnauthenticated: "unknown API token"
		}
		noteAccount(r, a)
		if len(rt.roles) > 0 && !hasRole(a.Role, rt.roles) {
			return problem.New(problem.Forbidden, "a %s account may not call %s %s", a.Role, rt.method, rt.pattern)
		}
	}
	return rt.handle(w, r, a)
}

func hasRole(r accounts.Role, roles []accounts.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

// statusOf maps error codes to HTTP statuses: the one table.
var statusOf = map[problem.Code]int{
	problem.Invalid:              http.StatusBadRequest,
	problem.Unauthenticated:      http.StatusUnauthorized,
	problem.Forbidden:            http.StatusForbidden,
	problem.NotFound:             http.StatusNotFound,
	problem.Conflict:             http.StatusConflict,
	problem.TooLarge:             http.StatusRequestEntityTooLarge,
	problem.UnsupportedMediaType: http.StatusUnsupportedMediaType,
	problem.Internal:             http.StatusInternalServerError,
}

// StatusOf is the HTTP status of err by the one table (statusOf): a
// domain error's code, else 500. The portal (internal/web) answers with it.
func StatusOf(err error) int {
	var pe *problem.Error
	if errors.As(err, &pe) {
		if st, ok := statusOf[pe.Code]; ok {
			return st
		}
	}
	return http.StatusInternalServerError
}

// toAPIError turns an error into the answer's body: a problem error as it
// is; the few standard errors a request can meet on its own; anything else
// (and a problem.Internal) is pib's own failure, logged with the request ID,
// its detail not shown.
func toAPIError(r *http.Request, err error) *problem.Error {
	var pe *problem.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &pe) && pe.Code != problem.Internal:
		return pe
	case errors.As(err, &mbe):
		return problem.New(problem.TooLarge, "request body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, context.Canceled):
		return problem.New(problem.Invalid, "request cancelled")
	}
	id := RequestID(r.Context())
	slog.Error("API request failed", "request", id, "method", r.Method, "path", r.URL.Path, "err", err)
	return problem.New(problem.Internal, "internal error; the server log has the details (request %s)", id)
}

func writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := toAPIError(r, err)
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// readJSON decodes a JSON request body strictly: the right content type,
// at most maxJSONBody bytes, no unknown fields, nothing after the value.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return problem.New(problem.UnsupportedMediaType, "send the request body as Content-Type: application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return &problem.Error{Code: problem.Invalid, Message: "malformed JSON body: " + err.Error(), Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem.New(problem.Invalid, "malformed JSON body: more data after the JSON value")
	}
	return nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// openAPI describes every /v1 route; a test keeps it complete.
//
//go:embed openapi.json
var openAPI []byte

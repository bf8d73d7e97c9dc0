//go:build linux

package web

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/problem"
)

//go:embed templates static
var files embed.FS

// Server is the portal: an http.Handler for every path outside the API.
type Server struct {
	d        api.Deps
	mux      *http.ServeMux
	sessions *sessions
	pages    map[string]*template.Template
}

// route is one portal page: who may open it and what renders it.
type route struct {
	pattern string
	// roles that may open the page; nil: anyone signed in.
	roles  []accounts.Role
	handle func(w http.ResponseWriter, r *http.Request, s *session) error
	// multipart: the handler streams a multipart body and checks its
	// csrf field itself (the first part), before it reads the rest.
	multipart bool
	// api is the API route the page does the work of, for its audit
	// rows (audit.go); nil: a POST is recorded under pattern.
	api *apiRoute
	// upload: a multipart form post, streamed; its CSRF token is its
	// first part (see uploadParts).
	upload bool
}

// navItem is one link of the header's navigation.
type navItem struct{ Path, Label string }

// nav is the navigation each role sees. A new page adds its link here.
var nav = map[accounts.Role][]navItem{
	accounts.Seller: {{"/status", "Scan status"}, {"/packages", "Packages"}, {"/start", "Start package"}, {"/load-forms", "Load forms"}},
	accounts.Operator: {{"/investigations", "Investigations"}, {"/changes", "Change requests"},
		{"/os-versions", "OS versions"}, {"/audit", "Audit log"}},
	accounts.Buyer: {{"/products", "Products"}, {"/subscriptions", "Subscriptions"}, {"/images", "Gold images"}, {"/configure", "Private image configuration"}, {"/private-builds", "Private builds"}},
}

var sellerOnly = []accounts.Role{accounts.Seller}

var operatorOnly = []accounts.Role{accounts.Operator}

// New returns the portal over the API's stores (the same Deps pib serve
// gives api.New), so a page reads through the same domain code as its
// API route.
func New(d api.Deps) *Server {
	if d.Accounts == nil || d.Groups == nil || d.Builds == nil {
		panic("web.New: Deps.Accounts, Groups and Builds are required (the pipeline's Reader serves the Scan status page)")
	}
	s := &Server{d: d, mux: http.NewServeMux(), sessions: newSessions(IdleTimeout), pages: parsePages()}
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err)
	}
	fileServer := http.FileServerFS(static)
	s.mux.HandleFunc("GET /static/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		http.StripPrefix("/static/", fileServer).ServeHTTP(w, r)
	})
	s.mux.HandleFunc("GET /signin", s.signInForm)
	s.mux.HandleFunc("POST /signin", s.signIn)
	s.mux.HandleFunc("POST /signout", s.signOut)
	s.mux.HandleFunc("GET /{$}", s.home)
	for _, rt := range s.routes() {
		s.handle(rt)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.renderError(w, r, s.sessions.fromRequest(r), problem.New(problem.NotFound, "no page %s", r.URL.Path))
	})
	return s
}

// routes are the portal's pages behind sign-in. A new page adds its row.
func (s *Server) routes() []route {
	rs := []route{
		{pattern: "GET /status", roles: sellerOnly, handle: s.scanStatus},
		{pattern: "GET /status/{group}", roles: sellerOnly, handle: s.groupStatus},
		{pattern: "GET /builds/{id}", roles: sellerOnly, handle: s.buildPage},
		{pattern: "GET /builds/{id}/sbom/{format}", roles: sellerOnly, handle: s.buildSBOM},
		{pattern: "GET /load-forms", roles: sellerOnly, handle: s.loadForms},
		{pattern: "GET /load-forms/template", roles: sellerOnly, handle: s.loadFormTemplate},
		{pattern: "POST /load-forms", roles: sellerOnly, handle: s.submitLoadForm},
		{pattern: "POST /status/{group}/submit", roles: sellerOnly, handle: s.submitGroup},
		{pattern: "GET /packages", roles: sellerOnly, handle: s.packagesPage},
		{pattern: "POST /packages", roles: sellerOnly, handle: s.uploadPackage, multipart: true},
		{pattern: "GET /start", roles: sellerOnly, handle: s.startPage},
		{pattern: "POST /start", roles: sellerOnly, handle: s.startPackage},
		{pattern: "GET /start/name", roles: sellerOnly, handle: s.checkName},
		{pattern: "GET /os-versions", roles: operatorOnly, handle: s.osVersions},
		{pattern: "POST /os-versions", roles: operatorOnly, handle: s.addOSVersion,
			api: &apiRoute{action: "POST /v1/os-versions", ok: http.StatusCreated}},
		{pattern: "GET /investigations", roles: operatorOnly, handle: s.investigations,
			api: &apiRoute{action: "GET /v1/investigations", ok: http.StatusOK, othersData: true}},
		{pattern: "POST /investigations/{build}/retry", roles: operatorOnly, handle: s.retryBuild,
			api: &apiRoute{action: "POST /v1/investigations/{build}/retry", ok: http.StatusAccepted}},
		{pattern: "POST /investigations/{build}/resolve", roles: operatorOnly, handle: s.resolveBuild,
			api: &apiRoute{action: "POST /v1/investigations/{build}/resolve", ok: http.StatusOK}},
		{pattern: "GET /changes", roles: operatorOnly, handle: s.changes,
			api: &apiRoute{action: "GET /v1/changes", ok: http.StatusOK, othersData: true}},
		{pattern: "GET /changes/{id}", roles: operatorOnly, handle: s.change,
			api: &apiRoute{action: "GET /v1/changes/{id}", ok: http.StatusOK, othersData: true}},
		{pattern: "POST /changes/{id}/approve", roles: operatorOnly, handle: s.approveChange,
			api: &apiRoute{action: "POST /v1/changes/{id}/approve", ok: http.StatusOK}},
		{pattern: "POST /changes/{id}/reject", roles: operatorOnly, handle: s.rejectChange,
			api: &apiRoute{action: "POST /v1/changes/{id}/reject", ok: http.StatusOK}},
		{pattern: "GET /audit", roles: operatorOnly, handle: s.auditLog},
	}
	rs = append(rs, s.buyerRoutes()...)
	return rs
}

// Beside serves the API's paths (/v1/…, /healthz, /metrics) with apiH and
// every other path with the portal: what pib serve listens with.
func Beside(apiH, portal http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/", apiH)
	mux.Handle("/healthz", apiH)
	mux.Handle("/metrics", apiH)
	mux.Handle("/", portal)
	return mux
}

// CSP allows only pib's own scripts, styles and images: no inline script
// or style, no framing, forms post only to pib.
const CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store") // pages show an account's data; /static/ overrides
	s.mux.ServeHTTP(w, r)
}

// handle registers a page behind sign-in: no session sends the browser to
// the sign-in page; a role the page is not for gets 403.
func (s *Server) handle(rt route) {
	s.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) {
		sess := s.sessions.fromRequest(r)
		if sess == nil {
			http.Redirect(w, r, "/signin", http.StatusSeeOther)
			return
		}
		id := api.NewRequestID()
		w.Header().Set(requestIDHeader, id)
		r, note := withAuditNote(r, id)
		err := s.serve(rt, w, r, sess)
		if err != nil && !errors.As(err, new(errShown)) {
			s.renderError(w, r, sess, err)
		}
		s.record(rt, r, sess.account, note, err)
	})
}

// serve checks a page request's CSRF token and role and runs its handler.
func (s *Server) serve(rt route, w http.ResponseWriter, r *http.Request, sess *session) error {
	switch {
	case rt.upload:
		// A streamed upload: its CSRF token is its first part.
		var ok bool
		if r, ok = sess.uploadParts(r); !ok {
			return errCSRF
		}
	case rt.multipart:
		// The handler checks the csrf field itself (the first part),
		// before it reads the rest of the body.
	case r.Method == http.MethodPost && !sess.validCSRF(r):
		return errCSRF
	}
	if rt.roles != nil && !slices.Contains(rt.roles, sess.account.Role) {
		return problem.New(problem.Forbidden, "this page is for %s accounts; you are signed in as a %s", rt.roles[0], sess.account.Role)
	}
	return rt.handle(w, r, sess)
}

// errShown is an error its handler has shown already (a form again, with
// the error next to its field): it is audited, not rendered again.
type errShown struct{ error }

func (e errShown) Unwrap() error { return e.error }

// errCSRF refuses a form post without its session's token.
var errCSRF = problem.New(problem.Forbidden, "the form was not sent from this session's page; reload the page and send it again")

// home sends each role to its first page.
func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions.fromRequest(r)
	if sess == nil {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	// Every role has pages (nav); its first is its home.
	http.Redirect(w, r, nav[sess.account.Role][0].Path, http.StatusSeeOther)
}

// view is what every template gets: the layout reads Account, CSRF and
// Nav; the page reads Data.
type view struct {
	Title   string
	Account *accounts.Account // nil when signed out
	CSRF    string
	Nav     []navItem
	Path    string
	Data    any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, sess *session, status int, page, title string, data any) {
	s.renderTemplate(w, r, sess, status, page, "layout", title, data)
}

// renderTemplate executes one named template of page: "layout" for the
// whole page, or a fragment (an htmx swap).
func (s *Server) renderTemplate(w http.ResponseWriter, r *http.Request, sess *session, status int, page, name, title string, data any) {
	v := view{Title: title, Path: r.URL.Path, Data: data}
	if sess != nil {
		v.Account, v.CSRF, v.Nav = sess.account, sess.csrf, nav[sess.account.Role]
	}
	t, ok := s.pages[page]
	if !ok {
		panic("web: no template " + page)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, name, v); err != nil {
		slog.Error("portal template failed", "page", page, "path", r.URL.Path, "err", err)
	}
}

// renderError shows err as a page with its status (api.StatusOf, the
// API's one table). A not-found says only what the domain said, so
// another account's object reads exactly like a missing one; pib's own
// failures are logged, not shown.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	status := api.StatusOf(err)
	msg := "Something went wrong in pib; the server log has the details."
	var pe *problem.Error
	if status != http.StatusInternalServerError && errors.As(err, &pe) {
		msg = pe.Message
	} else {
		slog.Error("portal request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	s.render(w, r, sess, status, "error.html", http.StatusText(status), msg)
}

// parsePages parses each page template with the layout.
func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{"date": formatDate, "stateClass": stateClass, "size": formatSize, "changeClass": changeClass}
	pages := map[string]*template.Template{}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		base := n[len("templates/"):]
		if base == "layout.html" {
			continue
		}
		pages[base] = template.Must(template.New(base).Funcs(funcs).ParseFS(files, "templates/layout.html", n))
	}
	return pages
}

// formatDate shows a time (or *time.Time; nil is a dash) in UTC to the
// minute.
func formatDate(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return "—"
		}
		t = *x
	default:
		return ""
	}
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

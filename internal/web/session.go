//go:build linux

package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/problem"
)

// IdleTimeout ends a session that made no request for this long.
const IdleTimeout = 12 * time.Hour

const (
	sessionCookie = "pib_session"
	// signInCookie holds the sign-in form's CSRF token before there is a
	// session (a double-submit: the form's hidden field must equal it).
	signInCookie = "pib_signin"
	csrfField    = "csrf"
	maxFormBytes = 64 << 10
	// maxUploadBytes bounds a multipart form post (a load form upload,
	// loadform.DefaultLimits.MaxBytes, and its fields); the page's handler
	// applies its own, smaller, limit to the file.
	maxUploadBytes  = 64 << 20
	maxUploadMemory = 1 << 20
)

// session is one signed-in browser. The token the account pasted is not
// kept: the session holds the account it authenticated.
type session struct {
	key      [32]byte // sha256 of the cookie value
	account  *accounts.Account
	csrf     string
	lastSeen time.Time
}

// validCSRF reports whether r's form carries the session's token. It
// reads the form (bounded).
func (s *session) validCSRF(r *http.Request) bool {
	return sameToken(formValue(r, csrfField), s.csrf)
}

// sessions are kept in memory, by the sha256 of their cookie value: a
// restart of pib serve signs everyone out, and two pib serve processes
// behind one address do not share them (pin a browser to one, or move
// them to a table when that is needed). Only a valid account token makes
// one, so their number is bounded by the accounts' use, not by strangers.
type sessions struct {
	mu   sync.Mutex
	m    map[[32]byte]*session
	idle time.Duration
	now  func() time.Time
}

func newSessions(idle time.Duration) *sessions {
	return &sessions{m: map[[32]byte]*session{}, idle: idle, now: time.Now}
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for a and returns its cookie value. Expired
// sessions are dropped here, so the map does not grow with them.
func (st *sessions) create(a *accounts.Account) (string, *session) {
	id := randomToken()
	s := &session{key: sha256.Sum256([]byte(id)), account: a, csrf: randomToken()}
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	for k, old := range st.m {
		if now.Sub(old.lastSeen) > st.idle {
			delete(st.m, k)
		}
	}
	s.lastSeen = now
	st.m[s.key] = s
	return id, s
}

// fromRequest returns the live session r's cookie names, or nil; a hit
// counts as activity.
func (st *sessions) fromRequest(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	key := sha256.Sum256([]byte(c.Value))
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.m[key]
	if s == nil {
		return nil
	}
	now := st.now()
	if now.Sub(s.lastSeen) > st.idle {
		delete(st.m, key)
		return nil
	}
	s.lastSeen = now
	return s
}

func (st *sessions) remove(s *session) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, s.key)
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value, path string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

func sameToken(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// formValue reads one field of a url-encoded form of at most
// maxFormBytes, or of a multipart upload of at most maxUploadBytes (its
// files, past maxUploadMemory, in temporary files net/http removes after
// the request).
func formValue(r *http.Request, name string) string {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); r.Form == nil && mt == "multipart/form-data" {
		r.Body = http.MaxBytesReader(nil, r.Body, maxUploadBytes)
		if err := r.ParseMultipartForm(maxUploadMemory); err != nil {
			return ""
		}
	}
	if r.Form == nil {
		r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			return ""
		}
	}
	return r.PostForm.Get(name)
}

// signInData is what the sign-in page shows.
type signInData struct {
	CSRF  string
	Error string
}

func (s *Server) signInForm(w http.ResponseWriter, r *http.Request) {
	if s.sessions.fromRequest(r) != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.showSignIn(w, r, http.StatusOK, "")
}

func (s *Server) showSignIn(w http.ResponseWriter, r *http.Request, status int, msg string) {
	token := randomToken()
	setCookie(w, r, signInCookie, token, "/signin", 3600)
	s.render(w, r, nil, status, "signin.html", "Sign in", signInData{CSRF: token, Error: msg})
}

// signIn checks the pasted token through accounts, the API's own check,
// and starts a new session (a fresh cookie value, never one the browser
// brought: no session fixation).
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(signInCookie)
	if err != nil || !sameToken(formValue(r, csrfField), c.Value) {
		s.renderError(w, r, nil, errCSRF)
		return
	}
	a, err := s.d.Accounts.Authenticate(r.Context(), strings.TrimSpace(formValue(r, "token")))
	if errors.Is(err, problem.Unauthenticated) {
		s.showSignIn(w, r, http.StatusUnauthorized, "pib does not know that token. Paste the whole token (pib_…) that was printed when your account was created; an operator can create a new account for you.")
		return
	}
	if err != nil {
		s.renderError(w, r, nil, err)
		return
	}
	if old := s.sessions.fromRequest(r); old != nil {
		s.sessions.remove(old)
	}
	id, _ := s.sessions.create(a)
	setCookie(w, r, sessionCookie, id, "/", 0)
	setCookie(w, r, signInCookie, "", "/signin", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// signOut ends the session (it is removed, not only its cookie).
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions.fromRequest(r)
	if sess == nil {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	if !sess.validCSRF(r) {
		s.renderError(w, r, sess, errCSRF)
		return
	}
	s.sessions.remove(sess)
	setCookie(w, r, sessionCookie, "", "/", -1)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// partsKey is the request context key of an upload's multipart reader.
type partsKey struct{}

// uploadParts checks an upload (a multipart form post) without reading
// the file into memory: its first part must be the session's CSRF token.
// The returned request carries the reader of the remaining parts (parts);
// the handler bounds what it reads of them.
func (s *session) uploadParts(r *http.Request) (*http.Request, bool) {
	mr, err := r.MultipartReader()
	if err != nil {
		return r, false
	}
	p, err := mr.NextPart()
	if err != nil || p.FormName() != csrfField {
		return r, false
	}
	token, err := io.ReadAll(io.LimitReader(p, 256))
	if err != nil || !sameToken(string(token), s.csrf) {
		return r, false
	}
	return r.WithContext(context.WithValue(r.Context(), partsKey{}, mr)), true
}

// parts is the multipart reader of an upload route's request, after its
// CSRF token.
func parts(r *http.Request) *multipart.Reader {
	mr, _ := r.Context().Value(partsKey{}).(*multipart.Reader)
	return mr
}

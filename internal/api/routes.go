//go:build linux

package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/problem"
)

var (
	operatorOnly = []accounts.Role{accounts.Operator}
	sellerOnly   = []accounts.Role{accounts.Seller}
)

// allRoutes is the API's route table. Handlers get the authenticated
// account and use its ID as the owner of everything they touch.
func (s *Server) allRoutes() []route {
	return []route{
		{method: "GET", pattern: "/v1/whoami", handle: s.whoami},
		{method: "POST", pattern: "/v1/accounts", roles: operatorOnly, handle: s.createAccount},
		{method: "GET", pattern: "/v1/accounts", roles: operatorOnly, handle: s.listAccounts},
		{method: "POST", pattern: "/v1/os-versions", roles: operatorOnly, handle: s.addOSVersion},
		{method: "GET", pattern: "/v1/os-versions", handle: s.listOSVersions},
		{method: "POST", pattern: "/v1/packages", roles: sellerOnly, handle: s.uploadPackage},
		{method: "GET", pattern: "/v1/packages", roles: sellerOnly, handle: s.listPackages},
		{method: "GET", pattern: "/v1/packages/{id}", roles: sellerOnly, handle: s.getPackage},
		{method: "POST", pattern: "/v1/package-groups", roles: sellerOnly, handle: s.createGroup},
		{method: "GET", pattern: "/v1/package-groups", roles: sellerOnly, handle: s.listGroups},
		{method: "GET", pattern: "/v1/package-groups/{ref}", roles: sellerOnly, handle: s.getGroup},
	}
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	writeJSON(w, http.StatusOK, a)
	return nil
}

// CreateAccountRequest is the body of POST /v1/accounts.
type CreateAccountRequest struct {
	Name string        `json:"name"`
	Role accounts.Role `json:"role"`
}

// CreateAccountResponse answers POST /v1/accounts: the token is shown
// only this once.
type CreateAccountResponse struct {
	Account *accounts.Account `json:"account"`
	Token   string            `json:"token"`
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request, _ *accounts.Account) error {
	var req CreateAccountRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	a, token, err := s.Accounts.Create(r.Context(), req.Name, req.Role)
	if err != nil {
		return err
	}
	noteObject(r, a.ID, "")
	writeJSON(w, http.StatusCreated, CreateAccountResponse{Account: a, Token: token})
	return nil
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, _ *accounts.Account) error {
	list, err := s.Accounts.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// AddOSVersionRequest is the body of POST /v1/os-versions.
type AddOSVersionRequest struct {
	Name  string `json:"name"`
	Image string `json:"image"` // ID or alias
	// BootTest, when set, turns the OS version's boot test (V1–V3) on or
	// off; absent keeps it as it is (off for a new one).
	BootTest *bool `json:"boot_test,omitempty"`
	// Backend, when set, chooses where the OS version's builds run:
	// "sandbox" or "vm" (osversions.Sandbox, osversions.VM); absent keeps
	// it as it is (sandbox for a new Linux one; Windows is always vm).
	Backend *string `json:"backend,omitempty"`
}

func (s *Server) addOSVersion(w http.ResponseWriter, r *http.Request, _ *accounts.Account) error {
	var req AddOSVersionRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if req.Backend != nil {
		// Refused before anything is registered: a bad request changes
		// nothing. The image's platform decides whether sandbox is allowed;
		// an unknown image is AddOSVersion's error to report.
		platform, disk := "", false
		if im, err := s.Images.GetOwned(r.Context(), images.Operator, req.Image); err == nil {
			platform, disk = im.OS, im.Disk != ""
		}
		if err := osversions.CheckBackend(platform, disk, *req.Backend); err != nil {
			return err
		}
	}
	v, err := s.AddOSVersion(r.Context(), req.Name, req.Image)
	if err != nil {
		return err
	}
	if req.Backend != nil {
		if v, err = s.OSVersions.SetBackend(r.Context(), v.Name, *req.Backend); err != nil {
			return err
		}
	}
	if req.BootTest != nil {
		if v, err = s.OSVersions.SetBootTest(r.Context(), v.Name, *req.BootTest); err != nil {
			return err
		}
	}
	noteObject(r, v.Name, "")
	writeJSON(w, http.StatusCreated, v)
	return nil
}

// AddOSVersion registers OS version name on the operator's image (ID or
// alias), as POST /v1/os-versions and the portal's OS versions page do.
func (d Deps) AddOSVersion(ctx context.Context, name, image string) (*osversions.OSVersion, error) {
	// Only the operator's own images: a base image another account owns
	// could be deleted or replaced under every seller's builds.
	im, err := d.Images.GetOwned(ctx, images.Operator, image)
	if errors.Is(err, images.ErrNotFound) {
		return nil, &problem.Error{Code: problem.Invalid, Field: "image", Message: fmt.Sprintf("no operator image has ID or alias %q; an OS version builds only on an image the operator imported or bootstrapped (pib image ls shows the owner)", image)}
	}
	if err != nil {
		return nil, err
	}
	return d.OSVersions.Add(ctx, name, im.OS, im.ID)
}

func (s *Server) listOSVersions(w http.ResponseWriter, r *http.Request, _ *accounts.Account) error {
	list, err := s.OSVersions.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// uploadPackage streams the request body (application/octet-stream) into
// the package store; the file name is the "name" query parameter.
func (s *Server) uploadPackage(w http.ResponseWriter, r *http.Request, a *accounts.Account) (err error) {
	defer func() {
		if err != nil {
			// A refused upload's body may be unread: without this,
			// net/http reads (up to 256 KiB of) it before answering, and
			// a stalled body holds the answer (as POST /v1/images).
			w.Header().Set("Connection", "close")
		}
	}()
	if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" {
		return &problem.Error{Code: problem.UnsupportedMediaType, Message: "upload the file as the request body with Content-Type: application/octet-stream and ?name=FILE"}
	}
	name := r.URL.Query().Get("name")
	if r.ContentLength > s.Packages.MaxSize {
		return &problem.Error{Code: problem.TooLarge, Rule: "P5", Field: "file", Message: "the file is larger than the upload limit"}
	}
	p, err := s.Packages.Upload(r.Context(), a.ID, name, r.Body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, p)
	return nil
}

func (s *Server) listPackages(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	list, err := s.Packages.List(r.Context(), a.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) getPackage(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	p, err := s.Packages.Get(r.Context(), a.ID, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	var spec groups.Spec
	if err := readJSON(w, r, &spec); err != nil {
		return err
	}
	g, err := s.Groups.Create(r.Context(), a.ID, spec)
	if err != nil {
		return err
	}
	noteObject(r, g.ID, a.ID)
	writeJSON(w, http.StatusCreated, g)
	return nil
}

// Page is one page of a listing.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// pageParams reads ?limit= (1–1000, default 100) and ?cursor=.
func pageParams(r *http.Request) (string, int, error) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return "", 0, &problem.Error{Code: problem.Invalid, Field: "limit", Message: "limit must be a number from 1 to 1000"}
		}
		limit = n
	}
	return r.URL.Query().Get("cursor"), limit, nil
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	cursor, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	list, next, err := s.Groups.ListPage(r.Context(), a.ID, cursor, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Page[*groups.Group]{Items: list, NextCursor: next})
	return nil
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	g, err := s.Groups.Get(r.Context(), a.ID, r.PathValue("ref"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

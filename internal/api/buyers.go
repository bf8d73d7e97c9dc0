//go:build linux

package api

import (
	"bytes"
	"net/http"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/privatebuilds"
)

var (
	buyerOnly     = []accounts.Role{accounts.Buyer}
	buyerOrSeller = []accounts.Role{accounts.Buyer, accounts.Seller}
)

// buyerRoutes are the buyers' routes (SPEC C1–C6): subscriptions and
// private image builds, which a seller also runs on its own product to
// test-fulfil it (F2). Each account sees only its own.
func (s *Server) buyerRoutes() []route {
	var rs []route
	if s.Subscriptions != nil {
		rs = append(rs,
			route{method: "GET", pattern: "/v1/subscriptions", roles: buyerOnly, handle: s.listSubscriptions},
			route{method: "POST", pattern: "/v1/subscriptions", roles: buyerOnly, handle: s.subscribe},
			route{method: "DELETE", pattern: "/v1/subscriptions/{product}", roles: buyerOnly, handle: s.unsubscribe},
		)
	}
	if s.PrivateBuilds != nil {
		rs = append(rs,
			route{method: "POST", pattern: "/v1/private-image-builds", roles: buyerOrSeller, handle: s.createPrivateBuild},
			route{method: "GET", pattern: "/v1/private-image-builds", roles: buyerOrSeller, handle: s.listPrivateBuilds},
			route{method: "GET", pattern: "/v1/private-image-builds/{id}", roles: buyerOrSeller, handle: s.getPrivateBuild},
			route{method: "GET", pattern: "/v1/private-image-builds/{id}/log", roles: buyerOrSeller, handle: s.privateBuildLog},
			route{method: "GET", pattern: "/v1/private-image-builds/{id}/report", roles: buyerOrSeller, handle: s.privateBuildReport},
			route{method: "GET", pattern: "/v1/private-image-builds/{id}/history", roles: buyerOrSeller, handle: s.privateBuildHistory},
		)
	}
	return rs
}

// SubscribeRequest is the body of POST /v1/subscriptions.
type SubscribeRequest struct {
	Product string `json:"product"` // product ID
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	list, err := s.Subscriptions.List(r.Context(), a)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// subscribe answers 201 for a new subscription, 200 for one the account
// had already.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	var req SubscribeRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	sub, created, err := s.Subscriptions.Add(r.Context(), a, req.Product)
	if err != nil {
		return err
	}
	noteObject(r, sub.ProductID, a.ID)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, sub)
	return nil
}

func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	if err := s.Subscriptions.Remove(r.Context(), a, r.PathValue("product")); err != nil {
		return err
	}
	noteObject(r, r.PathValue("product"), a.ID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// createPrivateBuild answers 201 with a new build, or 200 with the build
// an earlier request with the same client token made (C4).
func (s *Server) createPrivateBuild(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	var req privatebuilds.Request
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	pb, created, err := s.PrivateBuilds.Create(r.Context(), a, req)
	if err != nil {
		return err
	}
	noteObject(r, pb.ID, a.ID)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, pb)
	return nil
}

func (s *Server) listPrivateBuilds(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	list, err := s.PrivateBuilds.List(r.Context(), a)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) getPrivateBuild(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	pb, err := s.PrivateBuilds.Get(r.Context(), a, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pb)
	return nil
}

func (s *Server) privateBuildLog(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	var log bytes.Buffer
	if err := s.PrivateBuilds.Log(r.Context(), a, r.PathValue("id"), &log); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(log.Bytes())
	return nil
}

func (s *Server) privateBuildReport(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	rep, err := s.PrivateBuilds.Report(r.Context(), a, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *Server) privateBuildHistory(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	ev, err := s.PrivateBuilds.History(r.Context(), a, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ev))
	return nil
}

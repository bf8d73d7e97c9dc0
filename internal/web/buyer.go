//go:build linux

package web

import (
	"errors"
	"net/http"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/problem"
)

var (
	buyerOnly     = []accounts.Role{accounts.Buyer}
	buyerOrSeller = []accounts.Role{accounts.Buyer, accounts.Seller}
)

// buyerRoutes are the buyers' pages (SPEC C1–C6), each beside the API
// route it mirrors and with its roles: the catalog (GET /v1/products),
// subscriptions, gold images (/v1/images), the Private image
// configuration and private builds (/v1/private-image-builds). Without
// the catalog or the buyers' services (Deps), they are left out, as the
// API leaves out its routes.
func (s *Server) buyerRoutes() []route {
	var rs []route
	if s.d.Images != nil {
		rs = append(rs,
			route{pattern: "GET /images", roles: buyerOrSeller, handle: s.goldImages},
			route{pattern: "POST /images", roles: buyerOrSeller, handle: s.importImage, upload: true},
			route{pattern: "GET /images/{ref}", roles: buyerOrSeller, handle: s.goldImage},
			route{pattern: "GET /images/{ref}/export", roles: buyerOrSeller, handle: s.exportImage},
		)
	}
	if s.d.Catalog == nil {
		return rs
	}
	rs = append(rs,
		route{pattern: "GET /products", handle: s.products},
		route{pattern: "GET /products/{id}", handle: s.product},
	)
	if s.d.Subscriptions != nil {
		rs = append(rs,
			route{pattern: "GET /subscriptions", roles: buyerOnly, handle: s.subscriptions},
			route{pattern: "POST /subscriptions", roles: buyerOnly, handle: s.subscribe},
			route{pattern: "POST /subscriptions/{product}/delete", roles: buyerOnly, handle: s.unsubscribe},
		)
	}
	if s.d.PrivateBuilds != nil && s.d.Images != nil {
		rs = append(rs,
			route{pattern: "GET /configure", roles: buyerOrSeller, handle: s.configure},
			route{pattern: "POST /private-builds", roles: buyerOrSeller, handle: s.createPrivateBuild},
			route{pattern: "GET /private-builds", roles: buyerOrSeller, handle: s.privateBuilds},
			route{pattern: "GET /private-builds/{id}", roles: buyerOrSeller, handle: s.privateBuild},
			route{pattern: "GET /private-builds/{id}/log", roles: buyerOrSeller, handle: s.privateBuildLog},
		)
	}
	return rs
}

// formError is a refusal shown next to the form that caused it: the
// domain's message with its reason (C4), rule and field, or nil when err
// is not the caller's to fix (the error page shows those).
type formError struct {
	Status  int
	Message string
	Reason  string
	Rule    string
	Field   string
	Details []problem.Detail
}

// asFormError returns err as a formError when it is a *problem.Error the
// caller can fix (any status but 500).
func asFormError(err error) *formError {
	var pe *problem.Error
	status := api.StatusOf(err)
	if status == http.StatusInternalServerError || !errors.As(err, &pe) {
		return nil
	}
	return &formError{Status: status, Message: pe.Message, Reason: string(pe.Reason), Rule: pe.Rule, Field: pe.Field, Details: pe.Details}
}

//go:build linux

package web

import (
	"errors"
	"net/http"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/subscriptions"
)

// productData is what the product page shows.
type productData struct {
	Product *catalog.Product
	// Subscribed: the viewer subscribes to the product; CanSubscribe: the
	// viewer is a buyer (subscriptions are theirs).
	Subscribed, CanSubscribe bool
}

// products is the catalog: what the signed-in account may see, as GET
// /v1/products answers it (catalog.Store.List applies the visibility).
func (s *Server) products(w http.ResponseWriter, r *http.Request, sess *session) error {
	list, err := s.d.Catalog.List(r.Context(), sess.account)
	if err != nil {
		return err
	}
	s.render(w, r, sess, http.StatusOK, "products.html", "Products", list)
	return nil
}

// product is one product's page, as GET /v1/products/{id}: a product the
// viewer may not see is not found, exactly as a missing one. A buyer
// subscribes or unsubscribes here and goes on to configure a private
// image.
func (s *Server) product(w http.ResponseWriter, r *http.Request, sess *session) error {
	p, err := s.d.Catalog.Get(r.Context(), sess.account, r.PathValue("id"))
	if err != nil {
		return err
	}
	data := productData{Product: p}
	if s.d.Subscriptions != nil && sess.account.Role == accounts.Buyer {
		data.CanSubscribe = true
		err := s.d.Subscriptions.Check(r.Context(), sess.account, p.ID)
		switch {
		case err == nil:
			data.Subscribed = true
		case !errors.Is(err, subscriptions.ErrNotSubscribed):
			return err
		}
	}
	s.render(w, r, sess, http.StatusOK, "product.html", p.Title, data)
	return nil
}

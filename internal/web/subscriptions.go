//go:build linux

package web

import (
	"net/http"
	"net/url"
)

// subscriptions lists the buyer's subscriptions, as GET /v1/subscriptions.
func (s *Server) subscriptions(w http.ResponseWriter, r *http.Request, sess *session) error {
	list, err := s.d.Subscriptions.List(r.Context(), sess.account)
	if err != nil {
		return err
	}
	s.render(w, r, sess, http.StatusOK, "subscriptions.html", "Subscriptions", list)
	return nil
}

// subscribe subscribes to the form's product (C1), as POST
// /v1/subscriptions, and returns to the product's page.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request, sess *session) error {
	sub, _, err := s.d.Subscriptions.Add(r.Context(), sess.account, r.PostForm.Get("product"))
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/products/"+url.PathEscape(sub.ProductID), http.StatusSeeOther)
	return nil
}

// unsubscribe ends a subscription, as DELETE /v1/subscriptions/{product}.
func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request, sess *session) error {
	if err := s.d.Subscriptions.Remove(r.Context(), sess.account, r.PathValue("product")); err != nil {
		return err
	}
	http.Redirect(w, r, "/subscriptions", http.StatusSeeOther)
	return nil
}

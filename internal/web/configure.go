//go:build linux

package web

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/problem"
)

// configureData is what the Private image configuration page shows: the
// choices (product → version → fulfillment option → gold image) and the
// build parameters, as chosen so far.
type configureData struct {
	Products []*catalog.Product
	Product  *catalog.Product // the chosen one, if any
	Version  *catalog.Version // the chosen one, if any
	Images   []*images.Image
	Req      privatebuilds.Request
	Tags     string // the tags field: one key=value a line
	Token    string // the client token of this form (C4)
	Error    *formError
}

// configure is the Private image configuration page (C1). Choosing the
// product, version and fulfillment option is a GET form, so the page
// works without JavaScript; the Build form posts to /private-builds.
func (s *Server) configure(w http.ResponseWriter, r *http.Request, sess *session) error {
	q := r.URL.Query()
	req := privatebuilds.Request{Product: q.Get("product"), Version: q.Get("version"), Fulfillment: q.Get("fulfillment"), GoldImage: q.Get("gold_image")}
	return s.showConfigure(w, r, sess, http.StatusOK, configureData{Req: req})
}

func (s *Server) showConfigure(w http.ResponseWriter, r *http.Request, sess *session, status int, data configureData) error {
	list, err := s.d.Catalog.List(r.Context(), sess.account)
	if err != nil {
		return err
	}
	data.Products = list
	// The choices come from the catalog as this viewer sees it: an
	// unknown or hidden product is simply not chosen.
	if i := slices.IndexFunc(list, func(p *catalog.Product) bool { return p.ID == data.Req.Product }); i >= 0 {
		data.Product = list[i]
		vs := data.Product.Versions
		if j := slices.IndexFunc(vs, func(v *catalog.Version) bool { return v.ID == data.Req.Version || v.Title == data.Req.Version }); j >= 0 {
			data.Version = vs[j]
		} else if len(vs) == 1 {
			data.Version = vs[0]
		}
	}
	if data.Images, err = s.ownImages(r, sess); err != nil {
		return err
	}
	if data.Token, err = clientToken(); err != nil {
		return err
	}
	s.render(w, r, sess, status, "configure.html", "Private image configuration", data)
	return nil
}

// clientToken makes a form's client token: sending the same form twice
// makes one build (C4).
func clientToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "web-" + hex.EncodeToString(b), nil
}

// createPrivateBuild runs the Build form through
// privatebuilds.Service.Create, as POST /v1/private-image-builds: its
// refusals (C2, C4, C5 and the request's own) are shown next to the form
// with their reason, rule and field.
func (s *Server) createPrivateBuild(w http.ResponseWriter, r *http.Request, sess *session) error {
	f := r.PostForm
	req := privatebuilds.Request{Product: f.Get("product"), Version: f.Get("version"), Fulfillment: f.Get("fulfillment"),
		GoldImage: f.Get("gold_image"), Name: f.Get("name"), Description: f.Get("description"), ClientToken: f.Get("client_token")}
	tags, err := parseTags(f.Get("tags"))
	if err == nil {
		req.Tags = tags
		var pb *privatebuilds.PrivateBuild
		if pb, _, err = s.d.PrivateBuilds.Create(r.Context(), sess.account, req); err == nil {
			http.Redirect(w, r, "/private-builds/"+url.PathEscape(pb.ID), http.StatusSeeOther)
			return nil
		}
	}
	fe := asFormError(err)
	if fe == nil {
		return err
	}
	return s.showConfigure(w, r, sess, fe.Status, configureData{Req: req, Tags: f.Get("tags"), Error: fe})
}

// parseTags reads the tags field, one key=value a line; privatebuilds
// checks the keys and values themselves.
func parseTags(field string) (map[string]string, error) {
	tags := map[string]string{}
	for _, line := range strings.Split(field, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &problem.Error{Code: problem.Invalid, Rule: "C1", Field: "tags", Message: "write each tag on its own line as key=value: " + line}
		}
		tags[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return tags, nil
}

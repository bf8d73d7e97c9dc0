//go:build linux

package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/problem"
)

// osVersionsData is what the OS versions page shows.
type osVersionsData struct {
	Versions []osVersionRow
	// Images are the operator's images, offered as base images.
	Images []*images.Image
	// Added names the version just added.
	Added string
	// Error is why the form was refused, shown next to Field's control;
	// Name and Image are what was sent.
	Error, Field, Name, Image string
}

// osVersionRow is one OS version with its base image (nil when the image
// is gone from the store).
type osVersionRow struct {
	*osversions.OSVersion
	Image *images.Image
}

// osVersions is the operators' OS versions page: each version with its
// base image, and the form adding one (as GET and POST /v1/os-versions).
func (s *Server) osVersions(w http.ResponseWriter, r *http.Request, sess *session) error {
	return s.showOSVersions(w, r, sess, http.StatusOK, osVersionsData{Added: r.URL.Query().Get("added")})
}

func (s *Server) showOSVersions(w http.ResponseWriter, r *http.Request, sess *session, status int, data osVersionsData) error {
	list, err := s.d.OSVersions.List(r.Context())
	if err != nil {
		return err
	}
	all, err := s.d.Images.List(r.Context())
	if err != nil {
		return err
	}
	byID := map[string]*images.Image{}
	for _, im := range all {
		byID[im.ID] = im
		// Only the operator's images may be base images (the API's
		// check, api.Deps.AddOSVersion); the list only saves typing.
		if im.Owner == images.Operator {
			data.Images = append(data.Images, im)
		}
	}
	for _, v := range list {
		data.Versions = append(data.Versions, osVersionRow{OSVersion: v, Image: byID[v.ImageID]})
	}
	s.render(w, r, sess, status, "osversions.html", "OS versions", data)
	return nil
}

// addOSVersion adds (or repoints) an OS version through
// api.Deps.AddOSVersion, the API's own checks. A refused form is shown
// again with the error next to its field.
func (s *Server) addOSVersion(w http.ResponseWriter, r *http.Request, sess *session) error {
	name, image := strings.TrimSpace(formValue(r, "name")), strings.TrimSpace(formValue(r, "image"))
	v, err := s.d.AddOSVersion(r.Context(), name, image)
	var pe *problem.Error
	if errors.As(err, &pe) && pe.Code == problem.Invalid {
		if err := s.showOSVersions(w, r, sess, api.StatusOf(err), osVersionsData{Error: pe.Message, Field: pe.Field, Name: name, Image: image}); err != nil {
			return err
		}
		return errShown{err}
	}
	if err != nil {
		return err
	}
	noteObject(r, v.Name, "")
	http.Redirect(w, r, "/os-versions?added="+v.Name, http.StatusSeeOther)
	return nil
}

//go:build linux

package web

import (
	"bytes"
	"net/http"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/privatebuilds"
)

// privateBuildData is what a private build's page shows.
type privateBuildData struct {
	Build   *privatebuilds.PrivateBuild
	Report  *pipeline.Report
	Formats []images.Format // the export formats of its image, once made
}

// privateBuilds lists the account's private builds, as GET
// /v1/private-image-builds.
func (s *Server) privateBuilds(w http.ResponseWriter, r *http.Request, sess *session) error {
	list, err := s.d.PrivateBuilds.List(r.Context(), sess.account)
	if err != nil {
		return err
	}
	s.render(w, r, sess, http.StatusOK, "private-builds.html", "Private builds", list)
	return nil
}

// privateBuild is one private build, as GET /v1/private-image-builds/{id}
// and its /report: state, findings, changed files, and the export links of
// the private image. Another account's build is not found, exactly as a
// missing one (privatebuilds.Service.Get).
func (s *Server) privateBuild(w http.ResponseWriter, r *http.Request, sess *session) error {
	id := r.PathValue("id")
	pb, err := s.d.PrivateBuilds.Get(r.Context(), sess.account, id)
	if err != nil {
		return err
	}
	rep, err := s.d.PrivateBuilds.Report(r.Context(), sess.account, id)
	if err != nil {
		return err
	}
	data := privateBuildData{Build: pb, Report: rep}
	if pb.Build != nil && pb.Build.ImageID != "" && pb.Build.State == pipeline.Successful {
		data.Formats = images.ExportFormats
	}
	s.render(w, r, sess, http.StatusOK, "private-build.html", "Private build "+pb.Name, data)
	return nil
}

// privateBuildLog is the build log (I8), as GET
// /v1/private-image-builds/{id}/log.
func (s *Server) privateBuildLog(w http.ResponseWriter, r *http.Request, sess *session) error {
	var log bytes.Buffer
	if err := s.d.PrivateBuilds.Log(r.Context(), sess.account, r.PathValue("id"), &log); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := w.Write(log.Bytes())
	return err
}

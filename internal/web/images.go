//go:build linux

package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/problem"
)

// maxAliasBytes bounds the alias field of an import.
const maxAliasBytes = 1 << 10

// imagesData is what the Gold images page shows.
type imagesData struct {
	Images []*images.Image
	Alias  string
	Error  *formError
}

// imageData is what one image's page shows.
type imageData struct {
	Image   *images.Image
	Formats []images.Format
}

// goldImages lists the account's own images, as GET /v1/images does for
// anyone but an operator, with the import form.
func (s *Server) goldImages(w http.ResponseWriter, r *http.Request, sess *session) error {
	return s.showImages(w, r, sess, http.StatusOK, imagesData{})
}

func (s *Server) showImages(w http.ResponseWriter, r *http.Request, sess *session, status int, data imagesData) error {
	list, err := s.ownImages(r, sess)
	if err != nil {
		return err
	}
	data.Images = list
	s.render(w, r, sess, status, "images.html", "Gold images", data)
	return nil
}

func (s *Server) ownImages(r *http.Request, sess *session) ([]*images.Image, error) {
	all, err := s.d.Images.List(r.Context())
	if err != nil {
		return nil, err
	}
	var out []*images.Image
	for _, im := range all {
		if im.Owner == sess.account.ID {
			out = append(out, im)
		}
	}
	return out, nil
}

// goldImage is one of the account's images; another account's is not
// found, exactly as a missing one (images.Store.GetOwned).
func (s *Server) goldImage(w http.ResponseWriter, r *http.Request, sess *session) error {
	im, err := s.d.Images.GetOwned(r.Context(), sess.account.ID, r.PathValue("ref"))
	if err != nil {
		return err
	}
	s.render(w, r, sess, http.StatusOK, "image.html", "Image "+im.ID, imageData{Image: im, Formats: images.ExportFormats})
	return nil
}

// importImage imports the uploaded archive (C3) as the account's image,
// through api.Deps.CheckImport and ImportImage: POST /v1/images's checks,
// limit and refusals. The form's parts come in order: csrf (checked by
// handle), alias, archive; the archive is streamed to a temporary file.
// A refusal is shown next to the form.
func (s *Server) importImage(w http.ResponseWriter, r *http.Request, sess *session) error {
	im, alias, err := s.receiveImage(r, sess)
	if err != nil {
		fe := asFormError(err)
		if fe == nil {
			return err
		}
		// The rest of the body is not read: do not let net/http wait
		// for it.
		w.Header().Set("Connection", "close")
		return s.showImages(w, r, sess, fe.Status, imagesData{Alias: alias, Error: fe})
	}
	http.Redirect(w, r, "/images/"+url.PathEscape(im.ID), http.StatusSeeOther)
	return nil
}

var errNoArchive = &problem.Error{Code: problem.Invalid, Field: "archive", Rule: "C3", Message: "choose an image archive to import: an OCI image archive (docker save, podman save, OCI layout) or a root file system tarball"}

func (s *Server) receiveImage(r *http.Request, sess *session) (*images.Image, string, error) {
	mr := parts(r)
	var alias string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, alias, errNoArchive
		}
		if err != nil {
			return nil, alias, &problem.Error{Code: problem.Invalid, Message: "the form was cut short; send it again", Err: err}
		}
		switch p.FormName() {
		case "alias":
			b, err := io.ReadAll(io.LimitReader(p, maxAliasBytes))
			if err != nil {
				return nil, alias, err
			}
			alias = string(b)
		case "archive":
			if err := s.d.CheckImport(r.Context(), sess.account, alias, r.ContentLength); err != nil {
				return nil, alias, err
			}
			if p.FileName() == "" {
				return nil, alias, errNoArchive
			}
			im, err := s.importPart(r, sess, alias, p)
			return im, alias, err
		}
	}
}

// importPart copies the archive part to a temporary file (archive formats
// need random access), at most the upload limit, and imports it.
func (s *Server) importPart(r *http.Request, sess *session, alias string, part io.Reader) (*images.Image, error) {
	tmp, err := os.CreateTemp("", "pib-image-upload-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	max := s.d.Packages.MaxSize
	n, err := io.Copy(tmp, io.LimitReader(part, max+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if n > max {
		// The same refusal as a body whose length is known to be over.
		return nil, s.d.CheckImport(r.Context(), sess.account, "", n)
	}
	return s.d.ImportImage(r.Context(), sess.account, alias, "", tmp.Name())
}

// exportImage streams one of the account's images in a format of
// images.ExportFormats, as GET /v1/images/{ref}/export does for its owner.
func (s *Server) exportImage(w http.ResponseWriter, r *http.Request, sess *session) error {
	format := images.Format(r.URL.Query().Get("format"))
	if format == "" {
		format = images.DockerArchive
	}
	if !slices.Contains(images.ExportFormats, format) {
		return &problem.Error{Code: problem.Invalid, Field: "format", Message: "format must be docker-archive, oci-archive or rootfs-tar"}
	}
	im, err := s.d.Images.GetOwned(r.Context(), sess.account.ID, r.PathValue("ref"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", filepath.Base(im.ID)+"."+string(format)+".tar"))
	// Errors after the first byte can only cut the stream short.
	return s.d.Images.WriteArchive(im, format, w)
}

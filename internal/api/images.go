//go:build linux

package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/problem"
)

// imageRoutes let an account list, inspect, import, export and remove its
// images; the operator sees every image and owns the base images.
func (s *Server) imageRoutes() []route {
	if s.Images == nil {
		return nil
	}
	return []route{
		{method: "GET", pattern: "/v1/images", othersData: true, handle: s.listImages},
		{method: "POST", pattern: "/v1/images", handle: s.importImage},
		{method: "GET", pattern: "/v1/images/{ref}", othersData: true, handle: s.getImage},
		{method: "DELETE", pattern: "/v1/images/{ref}", handle: s.removeImage},
		{method: "GET", pattern: "/v1/images/{ref}/export", othersData: true, handle: s.exportImage},
	}
}

// imageOwner is the owner an account's images carry: base images belong
// to the operator role, every other image to its account.
func imageOwner(a *accounts.Account) string {
	if a.Role == accounts.Operator {
		return images.Operator
	}
	return a.ID
}

// image resolves ref among the images a may see.
func (s *Server) image(r *http.Request, a *accounts.Account) (*images.Image, error) {
	ref := r.PathValue("ref")
	if a.Role == accounts.Operator {
		im, err := s.Images.Get(r.Context(), ref)
		if err == nil {
			noteObject(r, im.ID, im.Owner)
		}
		return im, err
	}
	return s.Images.GetOwned(r.Context(), a.ID, ref)
}

// ownImage resolves ref among the images a may export or remove: its
// own. An operator reads the metadata of any account's image (audited) but
// its content is the owner's alone, and so is removing it (issue 11:
// "operators see metadata only"; SPEC roles: a gold or private image is
// its buyer's). The operator may know the image exists, so the refusal is
// a 403, not a 404.
func (s *Server) ownImage(r *http.Request, a *accounts.Account) (*images.Image, error) {
	im, err := s.image(r, a)
	if err != nil {
		return nil, err
	}
	if im.Owner != imageOwner(a) {
		return nil, problem.New(problem.Forbidden, "image %s belongs to another account: an operator may read its metadata (pib image inspect %s) but not export or remove it", im.ID, im.ID)
	}
	return im, nil
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	all, err := s.Images.List(r.Context())
	if err != nil {
		return err
	}
	out := []*images.Image{}
	for _, im := range all {
		if a.Role == accounts.Operator || im.Owner == a.ID {
			out = append(out, im)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getImage(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	im, err := s.image(r, a)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, im)
	return nil
}

func (s *Server) removeImage(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	im, err := s.ownImage(r, a)
	if err != nil {
		return err
	}
	if _, err := s.Images.Remove(r.Context(), im.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, im)
	return nil
}

// importImage takes an image archive as the request body (streamed to a
// temporary file: archive formats need random access) and imports it as
// the caller's.
func (s *Server) importImage(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" {
		return &problem.Error{Code: problem.UnsupportedMediaType, Message: "send the image archive as the request body with Content-Type: application/octet-stream"}
	}
	if err := s.checkImport(r, a); err != nil {
		// Without this, net/http reads up to 256 KiB of the unread body
		// before it sends the answer, and waits for a body that stalls.
		w.Header().Set("Connection", "close")
		return err
	}
	tmp, err := os.CreateTemp("", "pib-image-upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, http.MaxBytesReader(w, r.Body, s.Packages.MaxSize))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	im, err := s.ImportImage(r.Context(), a, r.URL.Query().Get("alias"), r.URL.Query().Get("os"), tmp.Name())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, im)
	return nil
}

// checkImport validates everything about an import but the archive, so
// that a bad request is answered before any of its body is read (a body
// may be gigabytes, or never end).
func (s *Server) checkImport(r *http.Request, a *accounts.Account) error {
	q := r.URL.Query()
	for key := range q {
		if key != "alias" && key != "os" {
			return &problem.Error{Code: problem.Invalid, Field: key, Message: fmt.Sprintf("unknown parameter %q; an import takes only ?alias=NAME and, for a qcow2 disk, ?os=linux|windows", key)}
		}
		if len(q[key]) > 1 {
			return &problem.Error{Code: problem.Invalid, Field: key, Message: "give one " + key}
		}
	}
	if o := q.Get("os"); o != "" && !slices.Contains(images.DiskOSes, o) {
		return &problem.Error{Code: problem.Invalid, Field: "os", Message: fmt.Sprintf("os %q: a disk image's OS family is linux or windows", o)}
	}
	return s.CheckImport(r.Context(), a, q.Get("alias"), r.ContentLength)
}

// CheckImport is what POST /v1/images checks before it reads an archive:
// alias (may be empty) is valid and free among a's images, and size (-1:
// unknown) is within the upload limit. The portal's import checks the same.
func (d Deps) CheckImport(ctx context.Context, a *accounts.Account, alias string, size int64) error {
	if alias != "" {
		if err := images.ValidAlias(alias); err != nil {
			return &problem.Error{Code: problem.Invalid, Field: "alias", Message: err.Error()}
		}
		_, err := d.Images.GetOwned(ctx, imageOwner(a), alias)
		if err == nil {
			return &problem.Error{Code: problem.Conflict, Field: "alias", Message: fmt.Sprintf("%v: %q; choose another alias or remove that image first (pib image rm %s)", images.ErrAliasTaken, alias, alias)}
		}
		if !errors.Is(err, images.ErrNotFound) {
			return err
		}
	}
	if size > d.Packages.MaxSize {
		return &problem.Error{Code: problem.TooLarge, Field: "archive", Message: fmt.Sprintf("the archive is larger than the upload limit of %d bytes", d.Packages.MaxSize)}
	}
	return nil
}

// ImportImage imports the archive or qcow2 disk (of OS family os) in file
// (pib's temporary copy of an upload) as a's image named alias, as POST
// /v1/images does: its errors name the request's fields, never the file.
func (d Deps) ImportImage(ctx context.Context, a *accounts.Account, alias, os, file string) (*images.Image, error) {
	im, err := d.Images.Import(ctx, file, images.ImportOptions{Alias: alias, Owner: imageOwner(a), OS: os})
	if err != nil {
		var pe *problem.Error
		switch {
		case !errors.As(err, &pe):
			return nil, err
		case errors.Is(pe, images.ErrAliasTaken):
			// Another import took the alias after CheckImport looked.
			return nil, &problem.Error{Code: problem.Conflict, Field: "alias", Message: pe.Message, Err: err}
		case pe.Code == problem.Invalid:
			// Its message never names the file (ours, not the caller's).
			return nil, &problem.Error{Code: problem.Invalid, Field: "archive", Message: "the archive: " + pe.Message, Err: err}
		}
		return nil, err
	}
	return im, nil
}

func (s *Server) exportImage(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	format := images.Format(r.URL.Query().Get("format"))
	if format == "" {
		format = images.DockerArchive
	}
	if slices.Contains(images.DiskFormats, format) {
		return s.exportDisk(w, r, a, format)
	}
	if !slices.Contains(images.ExportFormats, format) {
		return &problem.Error{Code: problem.Invalid, Field: "format", Message: "format must be docker-archive, oci-archive, rootfs-tar, raw or qcow2"}
	}
	im, err := s.ownImage(r, a)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", filepath.Base(im.ID)+"."+string(format)+".tar"))
	// Errors after the first byte can only cut the stream short; the
	// client sees a truncated archive, which every reader refuses.
	return s.Images.WriteArchive(im, format, w)
}

// maxDiskSize bounds ?size= of a disk export (16 TiB).
const maxDiskSize = 16 << 40

// exportDisk serves the image as a bootable disk (raw or qcow2), made
// once per image and size in the server's cache (images.Store.Disk): the
// first export of an image takes as long as making its file system,
// ~15 s for Debian 12. The answer has a Content-Length, so a client sees
// a cut download as an error (a truncated raw disk is not recognisable by
// itself), and takes Range requests to resume one.
func (s *Server) exportDisk(w http.ResponseWriter, r *http.Request, a *accounts.Account, format images.Format) error {
	var size int64
	if v := r.URL.Query().Get("size"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > maxDiskSize {
			return &problem.Error{Code: problem.Invalid, Field: "size", Message: "size must be the disk's size in bytes (e.g. 4294967296 for 4 GiB), or absent for one just big enough"}
		}
		size = n
	}
	im, err := s.ownImage(r, a)
	if err != nil {
		return err
	}
	path, err := s.Images.Disk(r.Context(), im, size, format)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", im.ID+"."+string(format)))
	http.ServeContent(w, r, "", st.ModTime(), f)
	return nil
}

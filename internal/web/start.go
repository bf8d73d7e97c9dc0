//go:build linux

package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/problem"
)

// startData is what the Start package page shows: the form as sent (or
// empty), the choices, and the error of the field at fault.
type startData struct {
	Spec       groups.Spec
	Platforms  []string
	OSVersions []*osversions.OSVersion // of Spec.Platform
	Packages   []*packages.Package
	// Errors is the refusal by field (name, platform, os_versions,
	// installer_id, package_ids, software_version); Error one with no
	// field the form has.
	Errors  map[string]*problem.Error
	Error   *problem.Error
	Example string
}

// Included reports whether package id is in the form's packages.
func (d startData) Included(id string) bool {
	return slices.Contains(d.Spec.PackageIDs, id) || d.Spec.InstallerID == id
}

// Chosen reports whether OS version name is ticked.
func (d startData) Chosen(name string) bool { return slices.Contains(d.Spec.OSVersions, name) }

// knownPlatform is p, or linux for a platform pib does not know (the
// form then lists linux's OS versions).
func knownPlatform(p string) string {
	if _, ok := groups.InstallerTypes[p]; ok {
		return p
	}
	return "linux"
}

// startPage is the empty Start package form; ?platform= picks the
// platform whose OS versions it lists.
func (s *Server) startPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	spec := groups.Spec{Platform: knownPlatform(r.URL.Query().Get("platform"))}
	return s.showStart(w, r, sess, http.StatusOK, startData{Spec: spec})
}

func (s *Server) showStart(w http.ResponseWriter, r *http.Request, sess *session, status int, data startData) error {
	ctx := r.Context()
	oses, err := s.d.OSVersions.List(ctx)
	if err != nil {
		return err
	}
	for _, v := range oses {
		if v.Platform == data.Spec.Platform {
			data.OSVersions = append(data.OSVersions, v)
		}
	}
	if data.Packages, err = s.d.Packages.List(ctx, sess.account.ID); err != nil {
		return err
	}
	data.Platforms = slices.Sorted(func(yield func(string) bool) {
		for p := range groups.InstallerTypes {
			if !yield(p) {
				return
			}
		}
	})
	data.Example = groups.SuggestName("MyApp", "1.0", data.Spec.Platform, 1)
	s.render(w, r, sess, status, "start.html", "Start package", data)
	return nil
}

// startPackage creates the group through groups.Store.Create, as POST
// /v1/package-groups does: the rules (N1–N2, P1–P4) are the store's; a
// refusal is shown beside its field with its rule ID. The new group opens
// on Scan status, where it is submitted.
//
// The form's "Show this platform's OS versions" button (action=platform;
// htmx sends it when the platform changes) re-renders the form, keeping
// what was typed, instead of creating the group.
func (s *Server) startPackage(w http.ResponseWriter, r *http.Request, sess *session) error {
	f := r.PostForm
	spec := groups.Spec{Name: f.Get("name"), Platform: f.Get("platform"), OSVersions: f["os_versions"],
		PackageIDs: f["package_ids"], InstallerID: f.Get("installer_id"), SoftwareVersion: f.Get("software_version")}
	if f.Get("action") == "platform" {
		spec.Platform = knownPlatform(spec.Platform)
		return s.showStart(w, r, sess, http.StatusOK, startData{Spec: spec})
	}
	g, err := s.d.Groups.Create(r.Context(), sess.account.ID, spec)
	var pe *problem.Error
	if err != nil && errors.As(err, &pe) && api.StatusOf(err) != http.StatusInternalServerError {
		data := startData{Spec: spec}
		if pe.Field != "" {
			data.Errors = map[string]*problem.Error{pe.Field: pe}
		} else {
			data.Error = pe
		}
		data.Spec.Platform = knownPlatform(spec.Platform)
		if err := s.showStart(w, r, sess, api.StatusOf(err), data); err != nil {
			return err
		}
		return errShown{err}
	}
	if err != nil {
		return err
	}
	noteObject(r, g.ID, sess.account.ID)
	http.Redirect(w, r, "/status/"+g.ID, http.StatusSeeOther)
	return nil
}

// checkName answers the name field's check as you type (htmx): the N1
// error fragment, empty when the name is valid. The form's post makes the
// same check (groups.ValidName), and N2 too.
func (s *Server) checkName(w http.ResponseWriter, r *http.Request, sess *session) error {
	name := r.URL.Query().Get("name")
	var data startData
	if err := groups.ValidName(name); err != nil && name != "" {
		data.Errors = map[string]*problem.Error{"name": err}
	}
	s.renderTemplate(w, r, sess, http.StatusOK, "start.html", "name-error", "", data)
	return nil
}

// submitGroup submits the group for its builds through Pipeline.Submit,
// as POST /v1/package-groups/{ref}/submit does, and shows it on Scan
// status; another account's group is not found, as a missing one.
func (s *Server) submitGroup(w http.ResponseWriter, r *http.Request, sess *session) error {
	if s.d.Pipeline == nil {
		return problem.New(problem.Conflict, "this pib serve runs no build pipeline; builds cannot be submitted")
	}
	ref := r.PathValue("group")
	if _, err := s.d.Pipeline.Submit(r.Context(), sess.account.ID, ref); err != nil {
		return err
	}
	noteObject(r, "", sess.account.ID)
	http.Redirect(w, r, "/status/"+url.PathEscape(ref), http.StatusSeeOther)
	return nil
}

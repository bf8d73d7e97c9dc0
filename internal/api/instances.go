//go:build linux

package api

import (
	"net/http"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/instance"
)

// instanceRoutes launch images as machines (issue 14): a buyer its private
// images, a seller its build results, operators their base images (which
// all operator accounts share, as they share the instances). Any
// account may call them; each sees and acts on its own instances only,
// and launches only an image it owns (instance.Manager.Launch answers
// another account's image as a missing one).
func (s *Server) instanceRoutes() []route {
	if s.Instances == nil {
		return nil
	}
	return []route{
		{method: "POST", pattern: "/v1/instances", handle: s.launchInstance},
		{method: "GET", pattern: "/v1/instances", handle: s.listInstances},
		{method: "GET", pattern: "/v1/instances/{id}", handle: s.getInstance},
		{method: "GET", pattern: "/v1/instances/{id}/console", handle: s.instanceConsole},
		{method: "POST", pattern: "/v1/instances/{id}/stop", handle: s.stopInstance},
		{method: "DELETE", pattern: "/v1/instances/{id}", handle: s.removeInstance},
	}
}

// LaunchRequest is the body of POST /v1/instances.
type LaunchRequest struct {
	Image string `json:"image"` // ID or alias of an image the caller owns
	// SSHKey is one OpenSSH public key line, installed for the image's
	// default user (debian on pib's Debian images) by cloud-init.
	SSHKey   string `json:"ssh_key"`
	MemoryMB int    `json:"memory_mb,omitempty"` // default 1024
	CPUs     int    `json:"cpus,omitempty"`      // default 2
}

// launchInstance answers 201 once QEMU runs; the guest then boots (about
// 15 s with software emulation) before SSH answers on the instance's port.
func (s *Server) launchInstance(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	var req LaunchRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	inst, err := s.Instances.Launch(r.Context(), instance.LaunchOptions{Owner: imageOwner(a), Image: req.Image, SSHKey: req.SSHKey, MemoryMB: req.MemoryMB, CPUs: req.CPUs})
	if err != nil {
		return err
	}
	noteObject(r, inst.ID, imageOwner(a))
	writeJSON(w, http.StatusCreated, inst)
	return nil
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	writeJSON(w, http.StatusOK, s.Instances.List(imageOwner(a)))
	return nil
}

func (s *Server) getInstance(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	inst, err := s.Instances.Get(imageOwner(a), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, inst)
	return nil
}

// instanceConsole serves the last bytes of the serial console as they
// came from the guest: untrusted text, which clients sanitise before a
// terminal shows it (pib instance console does).
func (s *Server) instanceConsole(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	out, err := s.Instances.Console(imageOwner(a), r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(out)
	return nil
}

func (s *Server) stopInstance(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	if err := s.Instances.Stop(imageOwner(a), r.PathValue("id")); err != nil {
		return err
	}
	noteObject(r, r.PathValue("id"), imageOwner(a))
	inst, err := s.Instances.Get(imageOwner(a), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, inst)
	return nil
}

func (s *Server) removeInstance(w http.ResponseWriter, r *http.Request, a *accounts.Account) error {
	inst, err := s.Instances.Get(imageOwner(a), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.Instances.Remove(imageOwner(a), inst.ID); err != nil {
		return err
	}
	noteObject(r, inst.ID, imageOwner(a))
	inst.State = "removed"
	writeJSON(w, http.StatusOK, inst)
	return nil
}

//go:build linux

package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/osversions"
)

// TestOSAddBackend: `pib os add --backend vm` sends backend "vm" in POST
// /v1/os-versions and says where the builds run; no flag sends none (the
// server keeps the setting); a bad value is refused before any request.
func TestOSAddBackend(t *testing.T) {
	clientEnv(t)
	var got []api.AddOSVersionRequest
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.AddOSVersionRequest
		if r.Method != "POST" || r.URL.Path != "/v1/os-versions" || json.NewDecoder(r.Body).Decode(&req) != nil {
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			http.Error(w, "no", 400)
			return
		}
		got = append(got, req)
		v := osversions.OSVersion{Name: req.Name, Platform: "linux", ImageID: "img-00000000000base1", Created: time.Unix(0, 0), Backend: osversions.Sandbox}
		if req.Backend != nil {
			v.Backend = *req.Backend
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(v)
	}))
	defer hs.Close()

	out, err := run(t, t.TempDir(), "--server", hs.URL, "os", "add", "debian-12", "--image", "debian-12", "--backend", "vm")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "debian-12 builds run in a virtual machine (backend vm)") {
		t.Errorf("output does not say the builds run in a machine:\n%s", out)
	}
	if _, err := run(t, t.TempDir(), "--server", hs.URL, "os", "add", "debian-12", "--image", "debian-12"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, t.TempDir(), "--server", hs.URL, "os", "add", "debian-12", "--image", "debian-12", "--backend", "docker"); err == nil || !strings.Contains(err.Error(), "use sandbox or vm") {
		t.Errorf("--backend docker: %v, want a refusal naming sandbox and vm", err)
	}
	if len(got) != 2 || got[0].Backend == nil || *got[0].Backend != "vm" || got[1].Backend != nil {
		t.Fatalf("requests sent: %+v; want backend vm, then none", got)
	}
}

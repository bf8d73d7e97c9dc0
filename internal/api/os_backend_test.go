package api_test

import (
	"testing"

	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// TestOSVersionBackend: POST /v1/os-versions with "backend" chooses where
// builds run; absent keeps the setting (sandbox for a new Linux OS
// version); an unknown backend is a 400 on field backend that registers
// nothing.
func TestOSVersionBackend(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		var v osversions.OSVersion
		if code := e.json("POST", "/v1/os-versions", e.operator, map[string]string{"name": "debian-12", "image": "debian-12"}, &v); code != 201 || v.Backend != osversions.Sandbox {
			t.Fatalf("register without backend: %d %+v; want backend sandbox", code, v)
		}
		if code := e.json("POST", "/v1/os-versions", e.operator, map[string]string{"name": "debian-12", "image": "debian-12", "backend": "vm"}, &v); code != 201 || v.Backend != osversions.VM {
			t.Fatalf("backend vm: %d %+v", code, v)
		}
		if code := e.json("POST", "/v1/os-versions", e.operator, map[string]string{"name": "debian-12", "image": "debian-12"}, &v); code != 201 || v.Backend != osversions.VM {
			t.Fatalf("absent backend changed the setting: %d %+v", code, v)
		}
		var apiErr problem.Error
		if code := e.json("POST", "/v1/os-versions", e.operator, map[string]string{"name": "debian-13", "image": "debian-12", "backend": "docker"}, &apiErr); code != 400 || apiErr.Field != "backend" {
			t.Fatalf("backend docker: %d %+v; want 400 on field backend", code, apiErr)
		}
		var list []osversions.OSVersion
		if code := e.json("GET", "/v1/os-versions", e.operator, nil, &list); code != 200 || len(list) != 1 {
			t.Fatalf("a refused request registered an OS version: %d %+v", code, list)
		}
	})
}

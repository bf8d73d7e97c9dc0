package api_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// rootfsTar is a minimal Linux root file system tarball.
func rootfsTar(t *testing.T, version string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := "ID=debian\nVERSION_ID=" + version + "\n"
	if err := tw.WriteHeader(&tar.Header{Name: "etc/os-release", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestOSVersionTakesOnlyOperatorImages: a seller's image aliased like a
// base image never becomes an OS version's base image, by alias or by ID,
// and an alias never resolves to another account's image (issue 8.3).
func TestOSVersionTakesOnlyOperatorImages(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		seller := e.account("acme", accounts.Seller)
		var poisoned images.Image
		if code := e.call("POST", "/v1/images?alias=debian-13", seller, "application/octet-stream", bytes.NewReader(rootfsTar(t, "13")), &poisoned); code != 201 || poisoned.Owner == images.Operator {
			t.Fatalf("seller import: %d %+v", code, poisoned)
		}
		for _, ref := range []string{"debian-13", poisoned.ID} {
			var apiErr problem.Error
			if code := e.json("POST", "/v1/os-versions", e.operator, map[string]string{"name": "debian-13", "image": ref}, &apiErr); code != 400 || apiErr.Field != "image" || !strings.Contains(apiErr.Message, "operator") {
				t.Errorf("OS version on the seller's image %s: %d %+v, want 400 naming the image field", ref, code, apiErr)
			}
		}
		var list []map[string]any
		if e.call("GET", "/v1/os-versions", e.operator, "", nil, &list); len(list) != 0 {
			t.Fatalf("OS versions registered: %v", list)
		}
		// The operator's alias lookup does not fall through to the seller's.
		if code := e.call("GET", "/v1/images/debian-13", e.operator, "", nil, nil); code != 404 {
			t.Errorf("operator GET /v1/images/debian-13 (a seller's alias): %d, want 404", code)
		}
		if _, err := e.images.Get(context.Background(), "debian-13"); err == nil {
			t.Errorf("images.Get resolved a seller's alias")
		}
		// The operator's own alias still works.
		if code := e.json("POST", "/v1/os-versions", e.operator, map[string]string{"name": "debian-12", "image": "debian-12"}, nil); code != 201 {
			t.Fatalf("OS version on the operator's image: %d", code)
		}
	})
}

// TestReferencedImagesStay: an OS version's base image and a parent image
// cannot be removed; the 409 names what refers to them.
func TestReferencedImagesStay(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		var base images.Image
		if code := e.call("GET", "/v1/images/debian-12", e.operator, "", nil, &base); code != 200 {
			t.Fatalf("get base: %d", code)
		}
		if code := e.json("POST", "/v1/os-versions", e.operator, map[string]string{"name": "debian-12", "image": "debian-12"}, nil); code != 201 {
			t.Fatalf("register OS: %d", code)
		}
		var apiErr problem.Error
		code := e.call("DELETE", "/v1/images/debian-12", e.operator, "", nil, &apiErr)
		want := "image " + base.ID + " is the base image of OS version debian-12"
		if code != 409 || apiErr.Code != "conflict" || !strings.Contains(apiErr.Message, want) {
			t.Fatalf("remove a base image: %d %+v, want 409 containing %q", code, apiErr, want)
		}

		// A parent with a child image.
		var parent images.Image
		if code := e.call("POST", "/v1/images?alias=parent", e.operator, "application/octet-stream", bytes.NewReader(rootfsTar(t, "12")), &parent); code != 201 {
			t.Fatalf("import parent: %d", code)
		}
		upper := t.TempDir()
		if err := os.MkdirAll(filepath.Join(upper, "opt"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(upper, "opt", "app"), []byte("app\n"), 0o644)
		child, err := e.images.AddLayer(ctx, &parent, upper, images.AddLayerOptions{CreatedBy: "test"})
		if err != nil {
			t.Fatal(err)
		}
		apiErr = problem.Error{}
		code = e.call("DELETE", "/v1/images/"+parent.ID, e.operator, "", nil, &apiErr)
		want = "image " + parent.ID + " is the parent of image " + child.ID
		if code != 409 || !strings.Contains(apiErr.Message, want) {
			t.Fatalf("remove a parent: %d %+v, want 409 containing %q", code, apiErr, want)
		}
		// The local pib image rm goes through the same check.
		if _, err := e.images.Remove(ctx, "parent"); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("images.Remove of a parent: %v", err)
		}
		// Child first, then the parent goes.
		if code := e.call("DELETE", "/v1/images/"+child.ID, e.operator, "", nil, nil); code != 200 {
			t.Fatalf("remove child: %d", code)
		}
		if code := e.call("DELETE", "/v1/images/"+parent.ID, e.operator, "", nil, nil); code != 200 {
			t.Fatalf("remove parent after its child: %d", code)
		}
	})
}

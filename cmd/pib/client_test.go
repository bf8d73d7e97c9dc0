//go:build linux

package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
)

// TestClientCommands drives the seller and operator client commands
// against a real API server over the same data directory.
func TestClientCommands(t *testing.T) {
	testenv := t.TempDir()
	data := filepath.Join(testenv, "data")
	t.Setenv("HOME", testenv) // pib login writes under the config dir
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(testenv, "config"))
	if _, err := run(t, data, "image", "import", rootfsTar(t), "--alias", "tiny"); err != nil {
		t.Fatal(err)
	}
	g := &globals{dataDir: data}
	ctx := context.Background()
	db, bs, err := g.openStores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	as := accounts.NewStore(db)
	if err := as.EnsureOperator(ctx, filepath.Join(data, "operator.token")); err != nil {
		t.Fatal(err)
	}
	ps := packages.NewStore(db, bs)
	oses := osversions.NewStore(db)
	hs := httptest.NewServer(api.New(api.Deps{Accounts: as, Packages: ps, Groups: groups.NewStore(db, ps, oses), OSVersions: oses, Images: images.NewStore(db, bs, filepath.Join(data, "cache")), Audit: audit.New(db)}))
	defer hs.Close()

	// The operator logs in with the token file pib serve wrote.
	out, err := run(t, data, "--server", hs.URL, "login", "--token-file", filepath.Join(data, "operator.token"))
	if err != nil || !strings.Contains(out, "as operator (operator)") {
		t.Fatalf("login: %v %s", err, out)
	}
	if out, err = run(t, data, "os", "add", "alpine-3", "--image", "tiny"); err != nil || !strings.Contains(out, "alpine-3 (linux)") {
		t.Fatalf("os add: %v %s", err, out)
	}
	out, err = run(t, data, "account", "create", "--role", "seller", "acme")
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(out)
	if !strings.HasPrefix(token, "pib_") {
		t.Fatalf("account create printed %q, want the token last", out)
	}

	// The seller works with PIB_SERVER and PIB_TOKEN.
	t.Setenv("PIB_SERVER", hs.URL)
	t.Setenv("PIB_TOKEN", token)
	installer := filepath.Join(testenv, "setup.sh")
	os.WriteFile(installer, []byte("#!/bin/sh\necho hi\n"), 0o755)
	readme := filepath.Join(testenv, "README.txt")
	os.WriteFile(readme, []byte("read me\n"), 0o644)
	out, err = run(t, data, "groups", "create", "--name", "Acme1Linux1", "--os", "alpine-3", "--installer", installer, "--package", readme)
	if err != nil || !strings.Contains(out, "created package group Acme1Linux1") {
		t.Fatalf("groups create: %v %s", err, out)
	}
	_, err = run(t, data, "groups", "create", "--name", "Acme1Linux1", "--os", "alpine-3", "--installer", installer)
	if err == nil || !strings.Contains(err.Error(), "rule N2") || !strings.Contains(err.Error(), "name") {
		t.Fatalf("reused name: %v, want the N2 rule and the field", err)
	}
	_, err = run(t, data, "groups", "create", "--name", "Acme2", "--os", "alpine-3", "--installer", readme)
	if err == nil || !strings.Contains(err.Error(), "rule P2") {
		t.Fatalf("txt installer: %v, want rule P2", err)
	}
	out, err = run(t, data, "packages", "ls", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []packages.Package
	if err := json.Unmarshal([]byte(out), &pkgs); err != nil || len(pkgs) != 2 {
		t.Fatalf("packages ls --json: %v %s", err, out)
	}
	out, err = run(t, data, "groups", "show", "Acme1Linux1")
	if err != nil || !strings.Contains(out, "setup.sh") || !strings.Contains(out, "(installer)") {
		t.Fatalf("groups show: %v %s", err, out)
	}
	if out, err = run(t, data, "groups", "ls"); err != nil || !strings.Contains(out, "Acme1Linux1") {
		t.Fatalf("groups ls: %v %s", err, out)
	}
	// Images through the API: the seller's own, invisible to others.
	out, err = run(t, data, "image", "import", rootfsTar(t), "--alias", "mine")
	if err != nil {
		t.Fatal(err)
	}
	mine := strings.TrimSpace(out)
	out, err = run(t, data, "image", "ls", "--json")
	if err != nil || !strings.Contains(out, mine) || strings.Contains(out, `"tiny"`) {
		t.Fatalf("seller's image ls: %v %s", err, out)
	}
	exp := filepath.Join(testenv, "mine.tar")
	if _, err := run(t, data, "image", "export", "mine", "--format", "oci-archive", "-o", exp); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(exp); err != nil || fi.Size() < 1024 {
		t.Fatalf("export: %v %v", fi, err)
	}
	if _, err := run(t, data, "image", "import", rootfsTar(t), "--alias", "mine"); err == nil || !strings.Contains(err.Error(), "already taken") {
		t.Fatalf("second import with the same alias: %v", err)
	}
	if _, err := run(t, data, "image", "bootstrap", "debian-12"); err == nil || !strings.Contains(err.Error(), "server's own machine") {
		t.Fatalf("bootstrap through a server: %v", err)
	}
	// The operator's alias "tiny" is not the seller's to see or remove.
	if _, err := run(t, data, "image", "rm", "tiny"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("seller removing the operator's image: %v", err)
	}
	if out, err = run(t, data, "image", "rm", "mine"); err != nil || !strings.Contains(out, mine) {
		t.Fatalf("rm: %v %s", err, out)
	}

	// A seller cannot act as operator.
	if _, err := run(t, data, "account", "create", "--role", "seller", "sneaky"); err == nil || !strings.Contains(err.Error(), "may not") {
		t.Fatalf("seller creating accounts: %v", err)
	}
	if _, err := run(t, data, "audit", "ls"); err == nil || !strings.Contains(err.Error(), "may not") {
		t.Fatalf("seller reading the audit log: %v", err)
	}

	// The operator reads the audit log: the seller's writes, newest first.
	t.Setenv("PIB_TOKEN", "")
	out, err = run(t, data, "audit", "ls", "--account", "acme", "--since", "1h", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []audit.Entry
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) == 0 {
		t.Fatalf("audit ls --json: %v %s", err, out)
	}
	if rows[0].Action != "POST /v1/accounts" || rows[0].Result != 403 || rows[0].AccountName != "acme" {
		t.Fatalf("newest row of acme, the refused account create: %+v", rows[0])
	}
	if rows[1].Action != "DELETE /v1/images/{ref}" || rows[1].Object != "mine" || rows[1].Result != 200 {
		t.Fatalf("second newest row of acme, the image removal: %+v", rows[1])
	}
	if out, err = run(t, data, "audit", "ls"); err != nil || !strings.Contains(out, "POST /v1/package-groups") || !strings.Contains(out, "req-") {
		t.Fatalf("audit ls: %v %s", err, out)
	}
	if _, err = run(t, data, "audit", "ls", "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("audit ls --since yesterday: %v", err)
	}
}

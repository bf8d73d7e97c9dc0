package vulndb_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/vulndb"
)

func record(id, modified, pkg, fixed string, extra string) string {
	return fmt.Sprintf(`{"id":%q,"modified":%q,"summary":"%s summary","aliases":["CVE-2099-0001"],%s
	"affected":[{"package":{"ecosystem":"Debian:12","name":%q},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":%q}]}]}]}`,
		id, modified, id, extra, pkg, fixed)
}

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeZip(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "all.zip")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func fixed(t *testing.T, db *vulndb.DB, pkg string) map[string]string {
	t.Helper()
	es, err := db.Lookup(context.Background(), "Debian:12", []string{pkg})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range es {
		for _, r := range e.Affected.Ranges {
			for _, ev := range r.Events {
				if ev.Fixed != "" {
					out[e.ID] = ev.Fixed
				}
			}
		}
	}
	return out
}

func TestImport(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, sdb *store.DB) {
		ctx := context.Background()
		db := vulndb.New(sdb)

		first := writeDir(t, map[string]string{
			"DSA-1.json":     record("DSA-1", "2024-01-01T00:00:00Z", "curl", "1.0-1", ""),
			"DSA-2.json":     record("DSA-2", "2024-01-01T00:00:00Z", "curl", "2.0-1", ""),
			"DSA-3.json":     record("DSA-3", "2024-01-01T00:00:00Z", "openssl", "3.0-1", ""),
			"BROKEN-1.json":  `{"id": "BROKEN-1", "modified": "yesterday"}`,
			"TRUNCATED.json": `{"id": "TRUNC`,
			"GONE-1.json":    record("GONE-1", "2024-01-01T00:00:00Z", "curl", "9", `"withdrawn":"2024-01-01T00:00:00Z",`),
			"README.md":      "not a record",
		})
		res, err := db.Import(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		var skipped []string
		for _, s := range res.Skipped {
			skipped = append(skipped, s.ID)
		}
		if diff := cmp.Diff([]string{"BROKEN-1", "TRUNCATED"}, skipped); diff != "" {
			t.Errorf("skipped (-want +got):\n%s", diff)
		}
		if res.Imported != 3 || res.Withdrawn != 1 || res.Read != 6 {
			t.Errorf("result = %+v, want 3 imported, 1 withdrawn, 6 read", res)
		}
		if diff := cmp.Diff(map[string]string{"DSA-1": "1.0-1", "DSA-2": "2.0-1"}, fixed(t, db, "curl")); diff != "" {
			t.Errorf("curl after first import (-want +got):\n%s", diff)
		}

		t.Run("re-import is idempotent", func(t *testing.T) {
			res, err := db.Import(ctx, first)
			if err != nil {
				t.Fatal(err)
			}
			if res.Imported != 0 || res.Unchanged != 3 {
				t.Errorf("result = %+v, want 0 imported, 3 unchanged", res)
			}
			s, err := db.Summary(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Records != 3 {
				t.Errorf("records = %d, want 3", s.Records)
			}
		})

		t.Run("newest modified wins, withdrawn removes, zip works", func(t *testing.T) {
			zipPath := writeZip(t, map[string]string{
				"DSA-1.json": record("DSA-1", "2025-01-01T00:00:00Z", "curl", "1.5-1", ""),                                   // newer: replaces
				"DSA-2.json": record("DSA-2", "2023-01-01T00:00:00Z", "curl", "0.1-1", ""),                                   // older: ignored
				"DSA-3.json": record("DSA-3", "2025-02-01T00:00:00Z", "openssl", "3", `"withdrawn":"2025-02-01T00:00:00Z",`), // withdrawn now
			})
			res, err := db.Import(ctx, zipPath)
			if err != nil {
				t.Fatal(err)
			}
			if res.Imported != 1 || res.Unchanged != 1 || res.Withdrawn != 1 {
				t.Errorf("result = %+v", res)
			}
			if diff := cmp.Diff(map[string]string{"DSA-1": "1.5-1", "DSA-2": "2.0-1"}, fixed(t, db, "curl")); diff != "" {
				t.Errorf("curl (-want +got):\n%s", diff)
			}
			if got := fixed(t, db, "openssl"); len(got) != 0 {
				t.Errorf("withdrawn DSA-3 still stored: %v", got)
			}
			st, err := db.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			if st.Records != 2 || !st.NewestModified.Equal(want) {
				t.Errorf("status = %d records, newest %v; want 2, %v", st.Records, st.NewestModified, want)
			}
			if len(st.Ecosystems) != 1 || st.Ecosystems[0].Ecosystem != "Debian:12" || st.Ecosystems[0].Records != 2 || st.Ecosystems[0].ImportedAt.IsZero() {
				t.Errorf("ecosystems = %+v", st.Ecosystems)
			}
		})

		t.Run("same ID twice in one source: newest wins", func(t *testing.T) {
			dir := writeDir(t, map[string]string{
				"a/DSA-7.json": record("DSA-7", "2025-03-01T00:00:00Z", "zlib", "1.3-2", ""),
				"b/DSA-7.json": record("DSA-7", "2025-02-01T00:00:00Z", "zlib", "1.3-1", ""),
			})
			if _, err := db.Import(ctx, dir); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{"DSA-7": "1.3-2"}, fixed(t, db, "zlib")); diff != "" {
				t.Errorf("zlib (-want +got):\n%s", diff)
			}
		})

		t.Run("not a zip", func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.zip")
			os.WriteFile(p, []byte("nope"), 0o644)
			if _, err := db.Import(ctx, p); err == nil || !strings.Contains(err.Error(), "not a readable zip") {
				t.Errorf("err = %v", err)
			}
		})
	})
}

func TestUpdateConditional(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, sdb *store.DB) {
		ctx := context.Background()
		db := vulndb.New(sdb)
		zipPath := writeZip(t, map[string]string{"DSA-9.json": record("DSA-9", "2024-05-01T00:00:00Z", "bash", "5.2-1", "")})
		body, err := os.ReadFile(zipPath)
		if err != nil {
			t.Fatal(err)
		}
		var full, notMod atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/Debian/all.zip" {
				http.NotFound(w, r)
				return
			}
			if r.Header.Get("If-None-Match") == `"v1"` {
				notMod.Add(1)
				w.WriteHeader(http.StatusNotModified)
				return
			}
			full.Add(1)
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("Last-Modified", "Wed, 12 Feb 2025 00:00:00 GMT")
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body)
		}))
		defer srv.Close()

		dir := t.TempDir()
		var progress bytes.Buffer
		opts := vulndb.UpdateOptions{BaseURL: srv.URL, Ecosystems: []string{"Debian:12"}, Dir: dir, Progress: &progress}
		res, err := db.Update(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || res[0].NotModified || res[0].Import == nil || res[0].Import.Imported != 1 {
			t.Fatalf("first update = %+v", res)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "Debian-all.zip")); !bytes.Equal(got, body) {
			t.Errorf("downloaded zip differs from served one")
		}
		if leftovers, _ := filepath.Glob(filepath.Join(dir, ".download-*")); len(leftovers) != 0 {
			t.Errorf("temporary files left: %v", leftovers)
		}
		if !strings.Contains(progress.String(), "Debian [") {
			t.Errorf("no progress bar in %q", progress.String())
		}

		res, err = db.Update(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !res[0].NotModified {
			t.Errorf("second update downloaded again: %+v", res[0])
		}
		if full.Load() != 1 || notMod.Load() != 1 {
			t.Errorf("server saw %d full and %d conditional requests, want 1 and 1", full.Load(), notMod.Load())
		}

		t.Run("server error changes nothing", func(t *testing.T) {
			bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "boom", http.StatusInternalServerError)
			}))
			defer bad.Close()
			_, err := db.Update(ctx, vulndb.UpdateOptions{BaseURL: bad.URL, Ecosystems: []string{"Alpine"}, Dir: dir})
			if err == nil || !strings.Contains(err.Error(), "500") {
				t.Errorf("err = %v, want the server's status", err)
			}
		})
	})
}

func TestLookupPrefix(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, sdb *store.DB) {
		ctx := context.Background()
		db := vulndb.New(sdb)
		rec := func(id, eco string) string {
			return fmt.Sprintf(`{"id":%q,"modified":"2025-01-01T00:00:00Z","affected":[{"package":{"ecosystem":%q,"name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:3.0.7-25.el9"}]}]}]}`, id, eco)
		}
		dir := writeDir(t, map[string]string{
			"RHSA-1.json": rec("RHSA-1", "Red Hat:enterprise_linux:9::baseos"),
			"RHSA-2.json": rec("RHSA-2", "Red Hat:enterprise_linux:9::appstream"),
			"RHSA-3.json": rec("RHSA-3", "Red Hat:enterprise_linux:8::baseos"),
			"RHSA-4.json": rec("RHSA-4", "Red Hat:enterpriseXlinux:9::baseos"), // "_" is no wildcard
		})
		if _, err := db.Import(ctx, dir); err != nil {
			t.Fatal(err)
		}
		es, err := db.Lookup(ctx, "Red Hat:enterprise_linux:9:", []string{"openssl"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range es {
			ids = append(ids, e.ID)
		}
		if diff := cmp.Diff([]string{"RHSA-1", "RHSA-2"}, ids); diff != "" {
			t.Errorf("prefix lookup (-want +got):\n%s", diff)
		}
	})
}

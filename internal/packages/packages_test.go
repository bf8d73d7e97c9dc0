package packages_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

func tarOf(names ...string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
		tw.Write([]byte("x"))
	}
	tw.Close()
	return buf.Bytes()
}

func zipOf(names ...string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, _ := zw.Create(n)
		w.Write([]byte("x"))
	}
	zw.Close()
	return buf.Bytes()
}

func TestUpload(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		blobDir := filepath.Join(t.TempDir(), "blobs")
		bs, err := blobs.NewDir(blobDir)
		if err != nil {
			t.Fatal(err)
		}
		as := accounts.NewStore(db)
		a, _, _ := as.Create(ctx, "seller", accounts.Seller)
		b, _, _ := as.Create(ctx, "other", accounts.Seller)
		ps := packages.NewStore(db, bs)
		ps.MaxSize = 4096

		for _, tc := range []struct {
			name, file string
			body       []byte
			field      string
		}{
			{"empty file", "setup.sh", nil, "file"},
			{"over the limit", "big.run", bytes.Repeat([]byte("x"), 4097), "file"},
			{"path separator", "../setup.sh", []byte("x"), "name"},
			{"backslash", `dir\setup.exe`, []byte("x"), "name"},
			{"control character", "setup\n.sh", []byte("x"), "name"},
			{"empty name", "", []byte("x"), "name"},
			{"tar escaping its root", "data.tar", tarOf("ok", "../../etc/cron.d/x"), "file"},
			{"tar with absolute path", "data.tar", tarOf("/etc/passwd"), "file"},
			{"zip escaping its root", "data.zip", zipOf("a/../../x"), "file"},
			{"corrupt tar", "data.tar", []byte(strings.Repeat("garbage", 100)), "file"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := ps.Upload(ctx, a.ID, tc.file, bytes.NewReader(tc.body))
				var pe *problem.Error
				if !errors.As(err, &pe) || pe.Rule != "P5" || pe.Field != tc.field {
					t.Fatalf("got %v, want a P5 error on %s", err, tc.field)
				}
				// The API answers the upload limit with 413, the rest with 400.
				if want := map[bool]problem.Code{true: problem.TooLarge, false: problem.Invalid}[tc.name == "over the limit"]; pe.Code != want {
					t.Fatalf("code %q, want %q", pe.Code, want)
				}
				// Nothing stored: no row, no blob, no temp file.
				list, _ := ps.List(ctx, a.ID)
				if len(list) != 0 {
					t.Fatalf("%d packages stored", len(list))
				}
				for _, d := range []string{"sha256", "tmp"} {
					if ents, _ := os.ReadDir(filepath.Join(blobDir, d)); len(ents) != 0 {
						t.Fatalf("left in blobs/%s: %v", d, ents)
					}
				}
			})
		}

		p, err := ps.Upload(ctx, a.ID, "setup.sh", strings.NewReader("#!/bin/sh\necho hi\n"))
		if err != nil {
			t.Fatal(err)
		}
		if p.Size != 18 || !strings.HasPrefix(p.Digest, "sha256:") || !strings.HasPrefix(p.ID, "pkg-") {
			t.Fatalf("package %+v", p)
		}
		// Same name and content: de-duplicated.
		again, err := ps.Upload(ctx, a.ID, "setup.sh", strings.NewReader("#!/bin/sh\necho hi\n"))
		if err != nil || again.ID != p.ID {
			t.Fatalf("re-upload: %+v %v, want package %s", again, err, p.ID)
		}
		// A safe archive is fine.
		if _, err := ps.Upload(ctx, a.ID, "data.tar", bytes.NewReader(tarOf("opt/app/bin", "./etc/app.conf"))); err != nil {
			t.Fatal(err)
		}
		list, _ := ps.List(ctx, a.ID)
		if len(list) != 2 {
			t.Fatalf("%d packages, want 2", len(list))
		}
		// Isolation: the other account sees none of them.
		if _, err := ps.Get(ctx, b.ID, p.ID); !errors.Is(err, packages.ErrNotFound) {
			t.Fatalf("foreign get: %v", err)
		}
		if l, _ := ps.List(ctx, b.ID); len(l) != 0 {
			t.Fatalf("other account lists %d packages", len(l))
		}
		rc, err := ps.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(rc)
		rc.Close()
		if string(body) != "#!/bin/sh\necho hi\n" {
			t.Fatalf("content %q", body)
		}
	})
}

package packages_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "archives", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Rule P5 by content: each archive is uploaded under a name that hides
// what it is; the escaping ones are refused, the benign ones stored.
func TestUploadArchivesByContent(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		bs, err := blobs.NewDir(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		a, _, _ := accounts.NewStore(db).Create(ctx, "seller", accounts.Seller)
		ps := packages.NewStore(db, bs)
		for _, tc := range []struct {
			fixture, upload string
			refused         string // part of the P5 message; "" when accepted
		}{
			{"dotdot.tar.gz", "evil.bin", "gzip-compressed tar archive is unsafe"},
			{"escape.zip", "notes.txt", "zip archive is unsafe"},
			{"backslash.zip", "setup.exe", "escapes"},
			{"dotdot.tar.xz", "data.dat", "xz-compressed tar archive is unsafe"},
			{"dotdot.tar.bz2", "readme", "bzip2-compressed tar archive is unsafe"},
			{"dotdot.tar.zst", "install.sh", "zstd-compressed tar archive is unsafe"},
			{"absolute.tar.xz", "x.txz", "absolute path"},
			{"absolute.tar.bz2", "x.tar.bz2", "absolute path"},
			{"absolute.tar.zst", "x.png", "absolute path"},
			{"absolute.tar.gz", "x.run", "absolute path"},
			{"symlink.tar", "image.iso", "symlink"},
			{"symlink.tar.gz", "a.deb", "symlink"},
			{"symlink.tar.xz", "b.rpm", "symlink"},
			{"symlink.tar.bz2", "c.msi", "symlink"},
			{"symlink.tar.zst", "d.bat", "symlink"},
			{"benign.tar", "payload.bin", ""},
			{"benign.tar.gz", "payload.tgz.txt", ""},
			{"benign.tar.xz", "payload.tar.xz", ""},
			{"benign.tar.bz2", "payload.bz", ""},
			{"benign.tar.zst", "payload", ""},
			{"benign.zip", "payload.jar", ""},
			{"text.gz", "notes.gz", ""},
		} {
			t.Run(tc.fixture+" as "+tc.upload, func(t *testing.T) {
				p, err := ps.Upload(ctx, a.ID, tc.upload, bytes.NewReader(fixture(t, tc.fixture)))
				if tc.refused == "" {
					if err != nil {
						t.Fatalf("benign %s refused: %v", tc.fixture, err)
					}
					return
				}
				var pe *problem.Error
				if !errors.As(err, &pe) || pe.Rule != "P5" || pe.Field != "file" || !strings.Contains(pe.Message, tc.refused) {
					t.Fatalf("upload = %+v, %v; want a P5 refusal saying %q", p, err, tc.refused)
				}
			})
		}
	})
}

// A self-extracting archive: a zip behind a shell script stub.
func TestCheckArchiveZipWithPrefix(t *testing.T) {
	data := append([]byte("#!/bin/sh\nexec unzip \"$0\"\n"), fixture(t, "escape.zip")...)
	if err := packages.CheckArchive(context.Background(), bytes.NewReader(data), int64(len(data)), packages.DefaultLimits); !isP5(err) {
		t.Fatalf("zip behind a stub: %v, want P5", err)
	}
}

func TestCheckArchiveZipSymlink(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "etc"}
	h.SetMode(fs.ModeSymlink | 0o777)
	w, _ := zw.CreateHeader(h)
	w.Write([]byte("/etc"))
	w, _ = zw.Create("etc/cron.d/x")
	w.Write([]byte("x"))
	zw.Close()
	if err := packages.CheckArchive(context.Background(), bytes.NewReader(buf.Bytes()), int64(buf.Len()), packages.DefaultLimits); !isP5(err) || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("zip writing through its symlink: %v, want P5", err)
	}
}

func isP5(err error) bool {
	var pe *problem.Error
	return errors.As(err, &pe) && pe.Rule == "P5"
}

// The caps hold whatever the archive claims.
func TestCheckArchiveLimits(t *testing.T) {
	ctx := context.Background()
	lim := packages.Limits{MaxEntries: 3, MaxUnpacked: 64 << 10, MaxWindow: 1 << 20}
	check := func(b []byte) error { return packages.CheckArchive(ctx, bytes.NewReader(b), int64(len(b)), lim) }
	if err := check(tarOf("a", "b", "c")); err != nil {
		t.Fatalf("3 entries with a cap of 3: %v", err)
	}
	if err := check(tarOf("a", "b", "c", "d")); !isP5(err) || !strings.Contains(err.Error(), "more than 3 entries") {
		t.Fatalf("4 entries: %v", err)
	}
	if err := check(zipOf("a", "b", "c", "d")); !isP5(err) || !strings.Contains(err.Error(), "more than 3 entries") {
		t.Fatalf("zip of 4 entries: %v", err)
	}
	var big bytes.Buffer
	tw := tar.NewWriter(&big)
	tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: 128 << 10, Typeflag: tar.TypeReg})
	tw.Write(make([]byte, 128<<10))
	tw.Close()
	if err := check(big.Bytes()); !isP5(err) || !strings.Contains(err.Error(), "more than the limit") {
		t.Fatalf("128 KiB entry with a 64 KiB cap: %v", err)
	}
	// A PAX sparse file: a few bytes that would expand to a terabyte.
	sparse := sparseTar()
	start := time.Now()
	if err := check(sparse); !isP5(err) || !strings.Contains(err.Error(), "sparse") {
		t.Fatalf("sparse tar: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("sparse tar took %v", d)
	}
}

func TestValidNameRefusesDisplaySpoofing(t *testing.T) {
	for _, tc := range []struct {
		name, what string
	}{
		{"setup\u202egpj.exe", "bidirectional control"},
		{"setup\u202a.sh", "bidirectional control"},
		{"setup\u2066.sh", "bidirectional control"},
		{"setup\u2069.sh", "bidirectional control"},
		{"setup\u200e.sh", "bidirectional control"},
		{"setup\u200f.sh", "bidirectional control"},
		{"setup\u061c.sh", "bidirectional control"},
		{"set\u200bup.sh", "invisible character"},
		{"set\u200dup.sh", "invisible character"},
		{"set\u2060up.sh", "invisible character"},
		{"\ufeffsetup.sh", "invisible character"},
		{"set\u3164up.sh", "invisible character"},
		{"set\u00adup.sh", "invisible format character"},     // soft hyphen, Cf
		{"set\U000e0001up.sh", "invisible format character"}, // language tag, Cf
		{"setup\xff.sh", "not valid UTF-8"},
	} {
		err := packages.ValidName(tc.name)
		var pe *problem.Error
		if !errors.As(err, &pe) || pe.Rule != "P5" || pe.Field != "name" || !strings.Contains(pe.Message, tc.what) {
			t.Errorf("ValidName(%+q) = %v, want P5 %s", tc.name, err, tc.what)
			continue
		}
		// The message shows the character escaped, not acting on the text.
		for _, r := range pe.Message {
			if r > 0x7e {
				t.Errorf("message %q carries a non-ASCII rune %U", pe.Message, r)
				break
			}
		}
	}
	for _, ok := range []string{"setup.sh", "installer-1.2_x86.run", "façade.deb", "インストーラ.exe", "שלום.sh"} {
		if err := packages.ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
}

// rawBlock is a ustar header block written by hand: archive/tar refuses
// to write the sparse headers a hostile archive carries.
func rawBlock(name string, typeflag byte, size int) []byte {
	b := make([]byte, 512)
	copy(b, name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typeflag
	copy(b[257:], "ustar\x0000")
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }

func paxRecord(k, v string) string {
	line := " " + k + "=" + v + "\n"
	n := len(line)
	for len(fmt.Sprint(n))+len(line) != n {
		n = len(fmt.Sprint(n)) + len(line)
	}
	return fmt.Sprint(n) + line
}

// sparseTar is a PAX sparse file of a terabyte in 3 KiB.
func sparseTar() []byte {
	records := paxRecord("GNU.sparse.major", "0") + paxRecord("GNU.sparse.minor", "1") +
		paxRecord("GNU.sparse.name", "hole") + paxRecord("GNU.sparse.realsize", "1099511627776") +
		paxRecord("GNU.sparse.numblocks", "1") + paxRecord("GNU.sparse.map", "1099511627775,1")
	b := rawBlock("PaxHeaders/hole", 'x', len(records))
	b = append(b, pad([]byte(records))...)
	b = append(b, rawBlock("hole", '0', 1)...)
	b = append(b, pad([]byte("x"))...)
	return append(b, make([]byte, 1024)...)
}

package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// endlessBody gives one chunk, then blocks until it is closed (the
// transport closes it once the answer is in): a body that never ends.
// read counts what the client took from it.
type endlessBody struct {
	read    atomic.Int64
	release chan struct{}
	once    sync.Once
	sent    bool
}

func (b *endlessBody) Close() error {
	b.once.Do(func() { close(b.release) })
	return nil
}

func (b *endlessBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		n := copy(p, make([]byte, 1024))
		b.read.Add(int64(n))
		return n, nil
	}
	<-b.release
	return 0, http.ErrBodyReadAfterClose
}

// POST /v1/images answers a bad request before it reads the body: an
// alias that is invalid or taken, an unknown parameter, a declared size
// over the limit. Before, the body was streamed to a temporary file first,
// so a body that never ends never got an answer.
func TestImportValidatesBeforeReadingTheBody(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	e := newEnv(t, db)
	seller := e.account("acme", accounts.Seller)
	for _, tc := range []struct {
		name, query, token string
		length             int64
		status             int
		field              string
	}{
		{"bad alias", "?alias=Not%20An%20Alias!", seller, -1, 400, "alias"},
		{"alias shaped like an ID", "?alias=img-0123456789abcdef0", seller, -1, 400, "alias"},
		{"two aliases", "?alias=a&alias=b", seller, -1, 400, "alias"},
		{"unknown parameter", "?alias=mine&format=raw", seller, -1, 400, "format"},
		{"alias taken", "?alias=debian-12", e.operator, -1, 409, "alias"},
		{"declared size over the limit", "?alias=mine", seller, 1 << 40, 413, "archive"},
		{"unknown disk OS family", "?alias=mine&os=plan9", seller, -1, 400, "os"},
		{"two OS families", "?os=linux&os=windows", seller, -1, 400, "os"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &endlessBody{release: make(chan struct{})}
			defer body.Close()
			req, err := http.NewRequest("POST", e.url+"/v1/images"+tc.query, body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = tc.length
			req.Header.Set("Authorization", "Bearer "+tc.token)
			req.Header.Set("Content-Type", "application/octet-stream")
			start := time.Now()
			type answer struct {
				resp *http.Response
				err  error
			}
			got := make(chan answer, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				got <- answer{resp, err}
			}()
			var resp *http.Response
			select {
			case a := <-got:
				if a.err != nil {
					t.Fatal(a.err)
				}
				resp = a.resp
			case <-time.After(5 * time.Second):
				t.Fatal("no answer after 5s: the server is reading the body")
			}
			defer resp.Body.Close()
			var apiErr struct{ Field string }
			json.NewDecoder(resp.Body).Decode(&apiErr)
			if resp.StatusCode != tc.status || apiErr.Field != tc.field {
				t.Fatalf("status %d on %q, want %d on %q", resp.StatusCode, apiErr.Field, tc.status, tc.field)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("answered after %v", d)
			}
			if n := body.read.Load(); n > 1024 {
				t.Fatalf("%d bytes of the body were read", n)
			}
		})
	}
}

// POST /v1/packages answers a refused upload without waiting for the rest
// of its body (P5): a wrong content type, a declared size over the limit,
// a name with a path separator.
func TestPackageUploadRefusedPromptly(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	e := newEnv(t, db)
	seller := e.account("acme", accounts.Seller)
	for _, tc := range []struct {
		name, query, contentType string
		length                   int64
		status                   int
	}{
		{"content type", "?name=setup.sh", "text/plain", -1, 415},
		{"declared size over the limit", "?name=setup.sh", "application/octet-stream", 1 << 40, 413},
		{"path separator", "?name=..%2Fsetup.sh", "application/octet-stream", -1, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &endlessBody{release: make(chan struct{})}
			defer body.Close()
			req, err := http.NewRequest("POST", e.url+"/v1/packages"+tc.query, body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = tc.length
			req.Header.Set("Authorization", "Bearer "+seller)
			req.Header.Set("Content-Type", tc.contentType)
			got := make(chan *http.Response, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
				}
				got <- resp
			}()
			select {
			case resp := <-got:
				if resp == nil {
					return
				}
				defer resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no answer after 10s: the server waits for the rest of the body")
			}
		})
	}
}

// A qcow2 disk sent with ?os= becomes a disk image, and an OS version on
// it builds in a machine: sandbox is refused before anything is
// registered.
func TestImportDiskImage(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	e := newEnv(t, db)
	qcow := filepath.Join(t.TempDir(), "win.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", qcow, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	body, err := os.ReadFile(qcow)
	if err != nil {
		t.Fatal(err)
	}
	var im images.Image
	if code := e.call("POST", "/v1/images?alias=win&os=windows", e.operator, "application/octet-stream", bytes.NewReader(body), &im); code != 201 {
		t.Fatalf("import the disk: %d", code)
	}
	if im.Disk != "disk/0.qcow2" || im.OS != "windows" {
		t.Fatalf("imported: %+v; want a windows disk image", im)
	}
	var v osversions.OSVersion
	if code := e.json("POST", "/v1/os-versions", e.operator, map[string]any{"name": "windows-2022", "image": "win", "backend": "sandbox"}, &v); code != 400 {
		t.Fatalf("OS version on a disk image with backend sandbox: %d, want 400", code)
	}
	if code := e.json("POST", "/v1/os-versions", e.operator, map[string]any{"name": "windows-2022", "image": "win"}, &v); code != 201 || v.Backend != osversions.VM || !v.DiskImage {
		t.Fatalf("OS version on a disk image: %d %+v; want backend vm and disk_image", code, v)
	}
	// Without its OS family a disk is refused; with one, an archive is.
	var p problem.Error
	if code := e.call("POST", "/v1/images?alias=win2", e.operator, "application/octet-stream", bytes.NewReader(body), &p); code != 400 || p.Field != "archive" || !strings.Contains(p.Message, "--os") {
		t.Fatalf("a disk without os: %d %+v", code, p)
	}
}

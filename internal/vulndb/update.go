package vulndb

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// DefaultBaseURL is where osv.dev publishes one all.zip per ecosystem
// (<base>/<Ecosystem>/all.zip).
const DefaultBaseURL = "https://osv-vulnerabilities.storage.googleapis.com"

// UpdateOptions configures Update.
type UpdateOptions struct {
	BaseURL string // default DefaultBaseURL
	// Ecosystems to fetch, as osv.dev names them ("Debian", "Alpine",
	// "PyPI"); a release suffix ("Debian:12") is dropped.
	Ecosystems []string
	// Dir keeps the downloaded zips (<Dir>/<Ecosystem>-all.zip).
	Dir      string
	Client   *http.Client // default http.DefaultClient
	Progress io.Writer    // download progress and results; nil for none
}

// UpdateResult says what happened to one ecosystem.
type UpdateResult struct {
	Ecosystem string
	URL       string
	// NotModified is true when the server answered 304: the data
	// imported last time is current, nothing was downloaded.
	NotModified bool
	Bytes       int64
	Import      *ImportResult
}

// Update downloads each ecosystem's all.zip with a conditional request
// (If-None-Match / If-Modified-Since from the previous download), writes
// it to a temporary file renamed into place only once complete, and
// imports it. An unchanged ecosystem costs one request and no import.
func (d *DB) Update(ctx context.Context, opts UpdateOptions) ([]UpdateResult, error) {
	base := opts.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	client := opts.Client
	if client == nil {
		client = http.DefaultClient
	}
	if opts.Dir == "" {
		return nil, fmt.Errorf("vulndb update: no download directory")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []UpdateResult
	for _, eco := range opts.Ecosystems {
		eco = baseEcosystem(eco)
		if seen[eco] {
			continue
		}
		seen[eco] = true
		res, err := d.updateOne(ctx, client, strings.TrimRight(base, "/"), eco, opts)
		if err != nil {
			return out, err
		}
		out = append(out, *res)
	}
	return out, nil
}

func (d *DB) updateOne(ctx context.Context, client *http.Client, base, eco string, opts UpdateOptions) (*UpdateResult, error) {
	u := base + "/" + url.PathEscape(eco) + "/all.zip"
	res := &UpdateResult{Ecosystem: eco, URL: u}
	etag, lastMod, err := d.sourceState(ctx, u)
	if err != nil {
		return nil, err
	}
	// Records an older pib stored are refreshed by downloading again
	// what a conditional request would call unchanged.
	var old int
	if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM vuln_records WHERE format < $1`, recordFormat).Scan(&old); err != nil {
		return nil, fmt.Errorf("read the vulnerability database: %w", err)
	}
	if old > 0 {
		etag, lastMod = "", ""
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if lastMod != "" {
		req.Header.Set("If-Modified-Since", lastMod)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w; check the network or use --base-url", u, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		res.NotModified = true
		progressf(opts.Progress, "%s: unchanged since the last update\n", eco)
		return res, nil
	case http.StatusOK:
	default:
		return nil, fmt.Errorf("download %s: server answered %s", u, resp.Status)
	}

	final := filepath.Join(opts.Dir, strings.ReplaceAll(eco, "/", "_")+"-all.zip")
	tmp, err := os.CreateTemp(opts.Dir, ".download-*.zip")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	pw := &progressWriter{w: opts.Progress, name: eco, total: resp.ContentLength}
	n, err := io.Copy(tmp, io.TeeReader(resp.Body, pw))
	pw.done()
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("download %s: %w; run the update again", u, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return nil, err
	}
	res.Bytes = n
	imp, err := d.Import(ctx, final)
	if err != nil {
		return nil, err
	}
	res.Import = imp
	// Validators are saved only after a successful import, so a failed
	// import is retried in full next time.
	if err := d.saveSourceState(ctx, u, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")); err != nil {
		return nil, err
	}
	return res, nil
}

func progressf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}

// progressWriter prints a one-line progress display, redrawn at most five
// times a second.
type progressWriter struct {
	w     io.Writer
	name  string
	total int64
	n     int64
	last  time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.w != nil && time.Since(p.last) > 200*time.Millisecond {
		p.last = time.Now()
		p.draw()
	}
	return len(b), nil
}

func (p *progressWriter) draw() {
	if p.total > 0 {
		const width = 30
		fill := int(p.n * width / p.total)
		fmt.Fprintf(p.w, "\r%s [%s%s] %s / %s", p.name, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
			humanize.IBytes(uint64(p.n)), humanize.IBytes(uint64(p.total)))
	} else {
		fmt.Fprintf(p.w, "\r%s %s", p.name, humanize.IBytes(uint64(p.n)))
	}
}

func (p *progressWriter) done() {
	if p.w != nil {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

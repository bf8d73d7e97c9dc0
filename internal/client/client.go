//go:build linux

// Package client is the Go client of pib's REST API, used by the pib
// command's client commands: one method per API operation, taking and
// returning the types the API itself encodes (internal/api and the domain
// packages), so a request or answer has one declaration on both sides.
//
// An error answer comes back as the *problem.Error the server sent, with
// the HTTP status in its Status field, so callers test it as they would on
// the server: errors.Is(err, problem.NotFound). An error answer that is not
// pib's JSON (a proxy's page, say) has code problem.Internal and the body's
// text as its message.
//
// Uploads (UploadPackage, ImportImage, SubmitLoadForm) stream the reader
// they are given: wrap it to show progress. Downloads (BuildLog, BuildSBOM,
// ExportImage, LoadForm) stream into the writer they are given; on an
// error answer nothing is written, but a connection cut short leaves a
// truncated copy, so write to a temporary file and rename it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/problem"
)

// Client talks to one pib server as one account.
type Client struct {
	Server string // e.g. http://127.0.0.1:8080
	Token  string
	HTTP   *http.Client
}

// New returns a client for server with token.
func New(server, token string) *Client {
	return &Client{Server: strings.TrimRight(server, "/"), Token: token, HTTP: &http.Client{Timeout: 0}}
}

// Wait polls fn every interval until it reports done or ctx ends.
func Wait(ctx context.Context, interval time.Duration, fn func() (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		done, err := fn()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// path joins an API path from literal parts and escaped path values:
// path("/v1/builds/", id, "/log").
func path(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 1 {
			p = url.PathEscape(p)
		}
		b.WriteString(p)
	}
	return b.String()
}

// withQuery appends the non-empty values of q to p.
func withQuery(p string, q url.Values) string {
	for k, v := range q {
		if len(v) == 0 || v[0] == "" {
			delete(q, k)
		}
	}
	if len(q) == 0 {
		return p
	}
	return p + "?" + q.Encode()
}

func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// call sends a JSON request (in may be nil) and decodes the JSON answer
// into out (may be nil, or an io.Writer to copy the answer into).
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	return c.send(ctx, method, path, ctype, body, -1, out)
}

// send streams body (size bytes, -1 if unknown) of content type ctype and
// decodes the answer into out as call does.
func (c *Client) send(ctx context.Context, method, path, ctype string, body io.Reader, size int64, out any) error {
	if c.Server == "" {
		return fmt.Errorf("no server given: pass --server URL or set PIB_SERVER (or run pib login)")
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, body)
	if err != nil {
		return err
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is pib serve running there?)", method, c.Server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return decodeError(method, path, resp)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if w, ok := out.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// get is call for a GET answered with a T.
func get[T any](ctx context.Context, c *Client, path string) (T, error) {
	var v T
	err := c.call(ctx, "GET", path, nil, &v)
	return v, err
}

// decodeError reads an error answer into the server's *problem.Error.
func decodeError(method, path string, resp *http.Response) *problem.Error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e problem.Error
	if json.Unmarshal(data, &e) != nil || e.Code == "" || e.Message == "" {
		e = problem.Error{Code: problem.Internal, Message: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))}
	}
	e.Status = resp.StatusCode
	return &e
}

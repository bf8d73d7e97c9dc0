// Package client is the Go client of pib's REST API, used by the pib
// command's client commands.
//
// An error answer comes back as the *problem.Error the server sent, with
// the HTTP status in its Status field, so callers test it as they would on
// the server: errors.Is(err, problem.NotFound). An error answer that is not
// pib's JSON (a proxy's page, say) has code problem.Internal and the body's
// text as its message.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
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

// Do sends a JSON request (in may be nil) and decodes the JSON answer into
// out (may be nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
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

// Upload streams r (size bytes, -1 if unknown) as the package name.
func (c *Client) Upload(ctx context.Context, name string, r io.Reader, size int64, out any) error {
	return c.send(ctx, "POST", "/v1/packages?name="+url.QueryEscape(name), "application/octet-stream", r, size, out)
}

// Send streams body (size bytes, -1 if unknown) of content type ctype and
// decodes the JSON answer into out.
func (c *Client) Send(ctx context.Context, method, path, ctype string, body io.Reader, size int64, out any) error {
	return c.send(ctx, method, path, ctype, body, size, out)
}

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

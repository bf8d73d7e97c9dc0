// Package client is the Go client of pib's REST API, used by the pib
// command's client commands.
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

// Error is an error answer of the API.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Rule    string `json:"rule,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %s: ", e.Rule)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "%s: ", e.Field)
	}
	b.WriteString(e.Message)
	if e.Code == "unauthenticated" {
		b.WriteString(" (set PIB_TOKEN or run pib login)")
	}
	return b.String()
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
		e := &Error{Status: resp.StatusCode}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Code, e.Message = "http", fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
		}
		return e
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

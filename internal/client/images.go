//go:build linux

package client

import (
	"context"
	"io"
	"net/url"
	"strconv"

	"github.com/pib-dev/pib/internal/images"
)

// ListImages lists the images the caller may see: its own, or every image
// for an operator (GET /v1/images).
func (c *Client) ListImages(ctx context.Context) ([]*images.Image, error) {
	return get[[]*images.Image](ctx, c, "/v1/images")
}

// Image returns image ref, an ID or an alias (GET /v1/images/{ref}).
func (c *Client) Image(ctx context.Context, ref string) (*images.Image, error) {
	return get[*images.Image](ctx, c, path("/v1/images/", ref))
}

// ImportImage streams an image archive (size bytes, -1 if unknown) to be
// imported as the caller's image, under alias if not "" (POST /v1/images).
// Wrap r to show progress.
func (c *Client) ImportImage(ctx context.Context, r io.Reader, size int64, alias string) (*images.Image, error) {
	var out images.Image
	if err := c.send(ctx, "POST", withQuery("/v1/images", url.Values{"alias": {alias}}), "application/octet-stream", r, size, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ImportDisk streams a standalone qcow2 disk (size bytes, -1 if unknown)
// to be imported as the caller's disk image of OS family os (linux or
// windows), under alias if not "" (POST /v1/images?os=OS).
func (c *Client) ImportDisk(ctx context.Context, r io.Reader, size int64, alias, os string) (*images.Image, error) {
	var out images.Image
	if err := c.send(ctx, "POST", withQuery("/v1/images", url.Values{"alias": {alias}, "os": {os}}), "application/octet-stream", r, size, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ExportImage copies image ref as an archive in format ("" for the API's
// default, docker-archive) to w (GET /v1/images/{ref}/export).
func (c *Client) ExportImage(ctx context.Context, ref string, format images.Format, w io.Writer) error {
	return c.call(ctx, "GET", withQuery(path("/v1/images/", ref, "/export"), url.Values{"format": {string(format)}}), nil, w)
}

// ExportImageDisk copies image ref as a bootable disk in format (raw or
// qcow2) of size bytes (0: big enough) to w
// (GET /v1/images/{ref}/export?format=raw|qcow2&size=N). A download cut
// short is an error: the server sends the disk's length.
func (c *Client) ExportImageDisk(ctx context.Context, ref string, format images.Format, size int64, w io.Writer) error {
	q := url.Values{"format": {string(format)}}
	if size > 0 {
		q.Set("size", strconv.FormatInt(size, 10))
	}
	return c.call(ctx, "GET", withQuery(path("/v1/images/", ref, "/export"), q), nil, w)
}

// RemoveImage removes image ref and returns what it was
// (DELETE /v1/images/{ref}).
func (c *Client) RemoveImage(ctx context.Context, ref string) (*images.Image, error) {
	var out images.Image
	if err := c.call(ctx, "DELETE", path("/v1/images/", ref), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

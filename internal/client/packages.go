//go:build linux

package client

import (
	"context"
	"io"
	"net/url"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
)

// UploadPackage streams r (size bytes, -1 if unknown) as the caller's
// package name (POST /v1/packages; seller). Wrap r to show progress.
func (c *Client) UploadPackage(ctx context.Context, name string, r io.Reader, size int64) (*packages.Package, error) {
	var out packages.Package
	if err := c.send(ctx, "POST", withQuery("/v1/packages", url.Values{"name": {name}}), "application/octet-stream", r, size, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListPackages lists the caller's packages (GET /v1/packages; seller).
func (c *Client) ListPackages(ctx context.Context) ([]*packages.Package, error) {
	return get[[]*packages.Package](ctx, c, "/v1/packages")
}

// Package returns the caller's package id (GET /v1/packages/{id}; seller).
func (c *Client) Package(ctx context.Context, id string) (*packages.Package, error) {
	return get[*packages.Package](ctx, c, path("/v1/packages/", id))
}

// CreateGroup creates a package group (POST /v1/package-groups; seller).
func (c *Client) CreateGroup(ctx context.Context, spec groups.Spec) (*groups.Group, error) {
	var out groups.Group
	if err := c.call(ctx, "POST", "/v1/package-groups", spec, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Page asks for one page of a listing: at most Limit items (0: the API's
// default, 100; at most 1000) after Cursor (the NextCursor of the page
// before; "" for the first).
type Page struct {
	Cursor string
	Limit  int
}

// ListGroups returns a page of the caller's package groups
// (GET /v1/package-groups; seller).
func (c *Client) ListGroups(ctx context.Context, p Page) (*api.Page[*groups.Group], error) {
	return get[*api.Page[*groups.Group]](ctx, c, withQuery("/v1/package-groups", url.Values{"limit": {itoa(p.Limit)}, "cursor": {p.Cursor}}))
}

// Group returns the caller's package group ref, a name or an ID
// (GET /v1/package-groups/{ref}; seller).
func (c *Client) Group(ctx context.Context, ref string) (*groups.Group, error) {
	return get[*groups.Group](ctx, c, path("/v1/package-groups/", ref))
}

// SubmitGroup submits a package group: one build per OS version
// (POST /v1/package-groups/{ref}/submit; seller).
func (c *Client) SubmitGroup(ctx context.Context, ref string) ([]*pipeline.Build, error) {
	var out []*pipeline.Build
	err := c.call(ctx, "POST", path("/v1/package-groups/", ref, "/submit"), nil, &out)
	return out, err
}

// GroupBuilds returns a package group's state and its latest builds
// (GET /v1/package-groups/{ref}/builds; seller).
func (c *Client) GroupBuilds(ctx context.Context, ref string) (*api.GroupStatus, error) {
	return get[*api.GroupStatus](ctx, c, path("/v1/package-groups/", ref, "/builds"))
}

// GroupHistory returns every state change of a package group's builds
// (GET /v1/package-groups/{ref}/history; seller).
func (c *Client) GroupHistory(ctx context.Context, ref string) ([]pipeline.Event, error) {
	return get[[]pipeline.Event](ctx, c, path("/v1/package-groups/", ref, "/history"))
}

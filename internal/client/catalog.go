//go:build linux

package client

import (
	"context"
	"io"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
)

// Products lists the products the caller may see, each with the versions
// it may see (GET /v1/products; any role).
func (c *Client) Products(ctx context.Context) ([]*catalog.Product, error) {
	return get[[]*catalog.Product](ctx, c, "/v1/products")
}

// Product returns product id if the caller may see it (GET
// /v1/products/{id}; any role).
func (c *Client) Product(ctx context.Context, id string) (*catalog.Product, error) {
	return get[*catalog.Product](ctx, c, path("/v1/products/", id))
}

// PublishVersion asks for version (an ID or a title) of product id to
// become public: a pending change request (POST
// /v1/products/{id}/versions/{version}/publish; seller).
func (c *Client) PublishVersion(ctx context.Context, id, version string) (*api.ChangeRequest, error) {
	return post[api.ChangeRequest](ctx, c, path("/v1/products/", id, "/versions/", version, "/publish"), nil)
}

// LoadForm copies the empty load form (.xlsx), listing the seller's
// Successful package groups, to w (GET /v1/load-form; seller).
func (c *Client) LoadForm(ctx context.Context, w io.Writer) error {
	return c.call(ctx, "GET", "/v1/load-form", nil, w)
}

// SubmitLoadForm uploads a filled load form of size bytes (-1 if unknown)
// and returns the pending change request it became; a refused form is a
// *problem.Error whose Details name each cell (POST /v1/load-forms;
// seller).
func (c *Client) SubmitLoadForm(ctx context.Context, r io.Reader, size int64) (*api.ChangeRequest, error) {
	var out api.ChangeRequest
	if err := c.send(ctx, "POST", "/v1/load-forms", api.XLSXType, r, size, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Changes lists change requests, newest first: a seller its own, an
// operator everyone's (GET /v1/changes; seller, operator).
func (c *Client) Changes(ctx context.Context) ([]*api.ChangeRequest, error) {
	return get[[]*api.ChangeRequest](ctx, c, "/v1/changes")
}

// Change returns change request id with its diff while it is pending (GET
// /v1/changes/{id}; its seller, or an operator).
func (c *Client) Change(ctx context.Context, id string) (*api.ChangeRequest, error) {
	return get[*api.ChangeRequest](ctx, c, path("/v1/changes/", id))
}

// ApproveChange applies pending change request id (POST
// /v1/changes/{id}/approve; operator).
func (c *Client) ApproveChange(ctx context.Context, id string) (*catalog.Decision, error) {
	return post[catalog.Decision](ctx, c, path("/v1/changes/", id, "/approve"), nil)
}

// RejectChange refuses pending change request id with reason, which the
// seller sees (POST /v1/changes/{id}/reject; operator).
func (c *Client) RejectChange(ctx context.Context, id, reason string) (*catalog.Decision, error) {
	return post[catalog.Decision](ctx, c, path("/v1/changes/", id, "/reject"), api.RejectRequest{Reason: reason})
}

// post is call for a POST of in (nil: no body) answered with a T.
func post[T any](ctx context.Context, c *Client, path string, in any) (*T, error) {
	var out T
	if err := c.call(ctx, "POST", path, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

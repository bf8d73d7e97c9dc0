//go:build linux

package client

import (
	"context"
	"io"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/subscriptions"
)

// Subscriptions lists the caller's subscriptions (GET /v1/subscriptions;
// buyer).
func (c *Client) Subscriptions(ctx context.Context) ([]*subscriptions.Subscription, error) {
	return get[[]*subscriptions.Subscription](ctx, c, "/v1/subscriptions")
}

// Subscribe subscribes the caller to product (an ID); subscribing again
// changes nothing (POST /v1/subscriptions; buyer).
func (c *Client) Subscribe(ctx context.Context, product string) (*subscriptions.Subscription, error) {
	var out subscriptions.Subscription
	if err := c.call(ctx, "POST", "/v1/subscriptions", api.SubscribeRequest{Product: product}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Unsubscribe ends the caller's subscription to product
// (DELETE /v1/subscriptions/{product}; buyer).
func (c *Client) Unsubscribe(ctx context.Context, product string) error {
	return c.call(ctx, "DELETE", path("/v1/subscriptions/", product), nil, nil)
}

// CreatePrivateBuild starts a private image build, or returns the build a
// request with the same client token started (POST
// /v1/private-image-builds; buyer, or a seller on its own product). Its
// errors carry a problem.Reason (privatebuilds.Reason…,
// subscriptions.ReasonNotFound).
func (c *Client) CreatePrivateBuild(ctx context.Context, req privatebuilds.Request) (*privatebuilds.PrivateBuild, error) {
	var out privatebuilds.PrivateBuild
	if err := c.call(ctx, "POST", "/v1/private-image-builds", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PrivateBuilds lists the caller's private image builds, newest first
// (GET /v1/private-image-builds).
func (c *Client) PrivateBuilds(ctx context.Context) ([]*privatebuilds.PrivateBuild, error) {
	return get[[]*privatebuilds.PrivateBuild](ctx, c, "/v1/private-image-builds")
}

// PrivateBuild returns the caller's private image build id
// (GET /v1/private-image-builds/{id}).
func (c *Client) PrivateBuild(ctx context.Context, id string) (*privatebuilds.PrivateBuild, error) {
	return get[*privatebuilds.PrivateBuild](ctx, c, path("/v1/private-image-builds/", id))
}

// PrivateBuildLog copies the build log of private image build id to w
// (GET /v1/private-image-builds/{id}/log).
func (c *Client) PrivateBuildLog(ctx context.Context, id string, w io.Writer) error {
	return c.call(ctx, "GET", path("/v1/private-image-builds/", id, "/log"), nil, w)
}

// PrivateBuildReport returns the report of private image build id
// (GET /v1/private-image-builds/{id}/report).
func (c *Client) PrivateBuildReport(ctx context.Context, id string) (*pipeline.Report, error) {
	return get[*pipeline.Report](ctx, c, path("/v1/private-image-builds/", id, "/report"))
}

// PrivateBuildHistory returns every state change of private image build
// id, oldest first (GET /v1/private-image-builds/{id}/history).
func (c *Client) PrivateBuildHistory(ctx context.Context, id string) ([]pipeline.Event, error) {
	return get[[]pipeline.Event](ctx, c, path("/v1/private-image-builds/", id, "/history"))
}

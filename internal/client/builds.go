//go:build linux

package client

import (
	"context"
	"io"
	"net/url"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/monitor"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/webhook"
)

// StatusQuery selects what Status shows: the one package group Group (a
// name or an ID), or else a page of the caller's groups, newest first.
type StatusQuery struct {
	Group string
	Page
}

// Status returns the scan status view: package groups with their state
// and latest builds (GET /v1/status; seller).
func (c *Client) Status(ctx context.Context, q StatusQuery) (*api.Page[*api.GroupStatus], error) {
	v := url.Values{"group": {q.Group}}
	if q.Group == "" {
		v = url.Values{"limit": {itoa(q.Limit)}, "cursor": {q.Cursor}}
	}
	return get[*api.Page[*api.GroupStatus]](ctx, c, withQuery("/v1/status", v))
}

// Build returns build id (GET /v1/builds/{id}; its seller, or an
// operator).
func (c *Client) Build(ctx context.Context, id string) (*pipeline.Build, error) {
	return get[*pipeline.Build](ctx, c, path("/v1/builds/", id))
}

// BuildLog copies build id's log to w (GET /v1/builds/{id}/log; its
// seller, or an operator).
func (c *Client) BuildLog(ctx context.Context, id string, w io.Writer) error {
	return c.call(ctx, "GET", path("/v1/builds/", id, "/log"), nil, w)
}

// BuildReport returns build id's report (GET /v1/builds/{id}/report; its
// seller, or an operator).
func (c *Client) BuildReport(ctx context.Context, id string) (*pipeline.Report, error) {
	return get[*pipeline.Report](ctx, c, path("/v1/builds/", id, "/report"))
}

// BuildSBOM copies the SBOM of build id's image in format (cyclonedx-json
// or spdx-json; "" for the API's default, cyclonedx-json) to w
// (GET /v1/builds/{id}/sbom; its seller, or an operator).
func (c *Client) BuildSBOM(ctx context.Context, id, format string, w io.Writer) error {
	return c.call(ctx, "GET", withQuery(path("/v1/builds/", id, "/sbom"), url.Values{"format": {format}}), nil, w)
}

// ListInvestigations lists the open investigations, oldest first
// (GET /v1/investigations; operator).
func (c *Client) ListInvestigations(ctx context.Context) ([]pipeline.Investigation, error) {
	return get[[]pipeline.Investigation](ctx, c, "/v1/investigations")
}

// Retry queues build again, closing its investigation
// (POST /v1/investigations/{build}/retry; operator).
func (c *Client) Retry(ctx context.Context, build string) (*pipeline.Build, error) {
	var out pipeline.Build
	if err := c.call(ctx, "POST", path("/v1/investigations/", build, "/retry"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Resolve closes build's investigation with a note for the seller
// (POST /v1/investigations/{build}/resolve; operator).
func (c *Client) Resolve(ctx context.Context, build, note string) (*pipeline.Build, error) {
	var out pipeline.Build
	if err := c.call(ctx, "POST", path("/v1/investigations/", build, "/resolve"), api.ResolveRequest{Note: note}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetWebhook registers the caller's webhook URL; the answer holds the
// signing secret, shown only this once (PUT /v1/webhook).
func (c *Client) SetWebhook(ctx context.Context, u string) (*api.Webhook, error) {
	var out api.Webhook
	if err := c.call(ctx, "PUT", "/v1/webhook", api.WebhookRequest{URL: u}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Webhook returns the caller's webhook, without its secret
// (GET /v1/webhook).
func (c *Client) Webhook(ctx context.Context) (*api.Webhook, error) {
	return get[*api.Webhook](ctx, c, "/v1/webhook")
}

// DeleteWebhook stops the caller's webhook deliveries (DELETE /v1/webhook).
func (c *Client) DeleteWebhook(ctx context.Context) error {
	return c.call(ctx, "DELETE", "/v1/webhook", nil, nil)
}

// WebhookDeliveries lists the caller's latest webhook deliveries, newest
// first (GET /v1/webhook/deliveries).
func (c *Client) WebhookDeliveries(ctx context.Context) ([]webhook.Delivery, error) {
	return get[[]webhook.Delivery](ctx, c, "/v1/webhook/deliveries")
}

// Rescan matches the kept inventories of the images that matter (image:
// only that one; "" for all) against the current vulnerability data again
// and announces what changed (POST /v1/rescan; operator; S5).
func (c *Client) Rescan(ctx context.Context, image string) (*monitor.Result, error) {
	return post[monitor.Result](ctx, c, "/v1/rescan", api.RescanRequest{ImageID: image})
}

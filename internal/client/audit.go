//go:build linux

package client

import (
	"context"
	"net/url"
	"time"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
)

// Audit returns audit rows, newest first, that match f; a zero Limit asks
// for the API's default (GET /v1/audit; operator).
func (c *Client) Audit(ctx context.Context, f audit.Filter) (*api.Page[audit.Entry], error) {
	q := url.Values{"account": {f.Account}, "limit": {itoa(f.Limit)}}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	return get[*api.Page[audit.Entry]](ctx, c, withQuery("/v1/audit", q))
}

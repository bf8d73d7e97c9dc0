//go:build linux

package client

import (
	"context"
	"io"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/instance"
)

// LaunchInstance boots an image the caller owns as a machine
// (POST /v1/instances); it returns once QEMU runs, before the guest has
// booted.
func (c *Client) LaunchInstance(ctx context.Context, req api.LaunchRequest) (*instance.Instance, error) {
	return post[instance.Instance](ctx, c, "/v1/instances", req)
}

// Instances lists the caller's instances, oldest first (GET /v1/instances).
func (c *Client) Instances(ctx context.Context) ([]*instance.Instance, error) {
	return get[[]*instance.Instance](ctx, c, "/v1/instances")
}

// Instance returns the caller's instance id (GET /v1/instances/{id}).
func (c *Client) Instance(ctx context.Context, id string) (*instance.Instance, error) {
	return get[*instance.Instance](ctx, c, path("/v1/instances/", id))
}

// InstanceConsole copies the last bytes of instance id's serial console to
// w, as the guest wrote them (GET /v1/instances/{id}/console).
func (c *Client) InstanceConsole(ctx context.Context, id string, w io.Writer) error {
	return c.call(ctx, "GET", path("/v1/instances/", id, "/console"), nil, w)
}

// StopInstance powers instance id off, keeping its disk
// (POST /v1/instances/{id}/stop).
func (c *Client) StopInstance(ctx context.Context, id string) (*instance.Instance, error) {
	return post[instance.Instance](ctx, c, path("/v1/instances/", id, "/stop"), nil)
}

// RemoveInstance stops instance id and deletes its disk
// (DELETE /v1/instances/{id}).
func (c *Client) RemoveInstance(ctx context.Context, id string) (*instance.Instance, error) {
	var out instance.Instance
	if err := c.call(ctx, "DELETE", path("/v1/instances/", id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

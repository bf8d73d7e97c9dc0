//go:build linux

package client

import (
	"context"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/osversions"
)

// Whoami returns the account the client's token belongs to
// (GET /v1/whoami).
func (c *Client) Whoami(ctx context.Context) (*accounts.Account, error) {
	return get[*accounts.Account](ctx, c, "/v1/whoami")
}

// CreateAccount creates an account and its API token, shown only in this
// answer (POST /v1/accounts; operator).
func (c *Client) CreateAccount(ctx context.Context, name string, role accounts.Role) (*api.CreateAccountResponse, error) {
	var out api.CreateAccountResponse
	if err := c.call(ctx, "POST", "/v1/accounts", api.CreateAccountRequest{Name: name, Role: role}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListAccounts lists every account (GET /v1/accounts; operator).
func (c *Client) ListAccounts(ctx context.Context) ([]*accounts.Account, error) {
	return get[[]*accounts.Account](ctx, c, "/v1/accounts")
}

// AddOSVersion registers the operator's image (ID or alias) as the OS
// version name (POST /v1/os-versions; operator).
func (c *Client) AddOSVersion(ctx context.Context, name, image string) (*osversions.OSVersion, error) {
	var out osversions.OSVersion
	if err := c.call(ctx, "POST", "/v1/os-versions", api.AddOSVersionRequest{Name: name, Image: image}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddOSVersionBootTest is AddOSVersion that also turns the OS version's
// boot test (V1–V3) on or off.
func (c *Client) AddOSVersionBootTest(ctx context.Context, name, image string, bootTest bool) (*osversions.OSVersion, error) {
	var out osversions.OSVersion
	if err := c.call(ctx, "POST", "/v1/os-versions", api.AddOSVersionRequest{Name: name, Image: image, BootTest: &bootTest}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddOSVersionWith is AddOSVersion with the request's optional settings
// (boot test, build backend).
func (c *Client) AddOSVersionWith(ctx context.Context, req api.AddOSVersionRequest) (*osversions.OSVersion, error) {
	var out osversions.OSVersion
	if err := c.call(ctx, "POST", "/v1/os-versions", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListOSVersions lists the supported OS versions (GET /v1/os-versions).
func (c *Client) ListOSVersions(ctx context.Context) ([]*osversions.OSVersion, error) {
	return get[[]*osversions.OSVersion](ctx, c, "/v1/os-versions")
}

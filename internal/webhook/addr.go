package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/pib-dev/pib/internal/specialaddr"
)

// Client is the HTTP client webhook deliveries use. Unless
// allowPrivate, it refuses to connect to any special-purpose address
// (specialaddr, rule C6), checked on the address actually dialled, after
// DNS and on every redirect, so DNS rebinding does not get around the
// check made at registration: a seller's webhook must not become a way to
// probe the service's own network.
func Client(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: the dialled address does not parse", specialaddr.ErrRefused)
			}
			return specialaddr.Check(ap.Addr())
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = d.DialContext
	tr.Proxy = nil
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// checkHost refuses a webhook host that is, or resolves to, a
// special-purpose address (C6). A name must resolve now: one that does
// not would only fail at every delivery.
func (s *Service) checkHost(ctx context.Context, host string) error {
	if s.cfg.AllowPrivate {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if err := specialaddr.Check(a); err != nil {
			return badWebhook(err, "%v", err)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		// The resolver's error names the resolver's own address: not shown.
		return badWebhook(nil, "webhook host %q does not resolve; give a host name with a public DNS record", host)
	}
	for _, a := range addrs {
		if err := specialaddr.Check(a); err != nil {
			return badWebhook(err, "%v", err)
		}
	}
	return nil
}

// deliveryError is what a failed POST records: a refused address says so
// and nothing more, because the wrapped dial error carries the resolved
// address, which would map the service's internal DNS names for the
// account that chose the host name.
func deliveryError(target string, err error) error {
	var re *specialaddr.RefusedError
	if errors.As(err, &re) {
		return fmt.Errorf("POST %s: %w", target, re)
	}
	return fmt.Errorf("POST %s: %w", target, err)
}

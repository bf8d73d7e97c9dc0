package main

import (
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"
)

// webhookClient is the HTTP client webhook deliveries use. Unless
// allowPrivate, it refuses to connect to loopback, private, link-local
// (cloud metadata) and unspecified addresses, checked on the address
// actually dialled (after DNS, so rebinding does not get around it): a
// seller's webhook must not become a way to probe the service's own
// network.
func webhookClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip := net.ParseIP(host)
			if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() {
				return fmt.Errorf("webhook address %s is internal; pib serve --webhook-allow-private allows it", host)
			}
			return nil
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = d.DialContext
	tr.Proxy = nil
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

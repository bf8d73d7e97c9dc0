// Package url is go-getter's URL helper: net/url's Parse (upstream only
// differs on Windows).
package url

import "net/url"

// Parse parses rawURL.
func Parse(rawURL string) (*url.URL, error) { return url.Parse(rawURL) }

// Package getter stands in for github.com/hashicorp/go-getter in pib's
// build (see the replace directive in pib's go.mod): the same names, and
// nothing that downloads.
//
// syft imports go-getter in one place, syft/internal/file/getter.go, to
// download remote sources (snaps, archives named by URL). pib never asks
// syft for those: it catalogs a directory it has unpacked itself. But that
// file sits in a package every syft cataloger and SBOM encoder imports,
// and go-getter's GCS and S3 getters bring the Google Cloud and AWS SDKs,
// gRPC's xDS with Envoy's control plane, OpenTelemetry's SDK and JOSE
// with them: 50 modules, 400 of the 1,800 packages pib built and 40 MB of
// its binary, none of which could ever run. No narrower import of syft
// avoids that package, and neither go-getter nor syft has a build tag
// that leaves the getters out.
//
// So every download here fails with ErrNotBuilt. What syft reads from
// go-getter outside downloading, the names of Decompressors (archive
// extensions it accepts in a URL), is kept as upstream v1.8.10 has it.
//
// When syft is upgraded and uses more of go-getter, the build fails here:
// add the name, failing the same way.
package getter

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
)

// ErrNotBuilt is what every download returns.
var ErrNotBuilt = errors.New("downloading sources is not built into pib (go-getter is a stub)")

// ClientMode is the kind of thing a Client fetches.
type ClientMode uint

const (
	ClientModeInvalid ClientMode = iota
	ClientModeAny
	ClientModeFile
	ClientModeDir
)

// Getter fetches a URL; here, never.
type Getter interface {
	Get(string, *url.URL) error
	GetFile(string, *url.URL) error
	ClientMode(*url.URL) (ClientMode, error)
	SetClient(*Client)
}

// Decompressor unpacks a downloaded archive; here, never.
type Decompressor interface {
	Decompress(dst, src string, dir bool, umask os.FileMode) error
}

// ProgressTracker is told about downloads; here there are none.
type ProgressTracker interface {
	TrackProgress(src string, currentSize, totalSize int64, stream io.ReadCloser) (body io.ReadCloser)
}

// Client is the request syft builds; Get refuses it.
type Client struct {
	Ctx              context.Context
	Src, Dst, Pwd    string
	Mode             ClientMode
	Umask            os.FileMode
	Decompressors    map[string]Decompressor
	Getters          map[string]Getter
	Dir              bool
	ProgressListener ProgressTracker
	Insecure         bool
	DisableSymlinks  bool
	Options          []ClientOption
}

// Get returns ErrNotBuilt.
func (c *Client) Get() error { return ErrNotBuilt }

// ClientOption configures a Client.
type ClientOption func(*Client) error

// WithProgress sets the client's progress tracker.
func WithProgress(pl ProgressTracker) func(*Client) error {
	return func(c *Client) error { c.ProgressListener = pl; return nil }
}

// WithDecompressors sets the client's decompressors.
func WithDecompressors(d map[string]Decompressor) ClientOption {
	return func(c *Client) error { c.Decompressors = d; return nil }
}

// notBuilt is every getter's and decompressor's behaviour.
type notBuilt struct{}

func (notBuilt) Get(string, *url.URL) error                         { return ErrNotBuilt }
func (notBuilt) GetFile(string, *url.URL) error                     { return ErrNotBuilt }
func (notBuilt) ClientMode(*url.URL) (ClientMode, error)            { return ClientModeInvalid, ErrNotBuilt }
func (notBuilt) SetClient(*Client)                                  {}
func (notBuilt) Decompress(string, string, bool, os.FileMode) error { return ErrNotBuilt }

// The getters syft names.
type (
	HttpGetter struct {
		notBuilt
		Netrc  bool
		Client *http.Client
		Header http.Header
	}
	FileGetter struct{ notBuilt }
	GitGetter  struct{ notBuilt }
	HgGetter   struct{ notBuilt }
	GCSGetter  struct{ notBuilt }
	S3Getter   struct{ notBuilt }
)

// LimitedDecompressors returns upstream's decompressor names, each
// refusing to run.
func LimitedDecompressors(filesLimit int, fileSizeLimit int64) map[string]Decompressor {
	m := map[string]Decompressor{}
	for _, name := range []string{
		"bz2", "gz", "xz", "tar", "tar.bz2", "tar.gz", "tar.xz", "tar.zst",
		"tbz2", "tgz", "txz", "tzst", "zip", "zst",
	} {
		m[name] = notBuilt{}
	}
	return m
}

// Decompressors are upstream's defaults by name.
var Decompressors = LimitedDecompressors(0, 0)

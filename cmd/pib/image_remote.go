//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/images"
)

// remoteImages is the imageService of a pib server: the API, as the
// token's account.
type remoteImages struct {
	c        *client.Client
	progress io.Writer // shows upload progress when a terminal
}

func (r *remoteImages) List(ctx context.Context) ([]*images.Image, error) {
	return r.c.ListImages(ctx)
}

func (r *remoteImages) Inspect(ctx context.Context, ref string) (*imageDetail, error) {
	im, err := r.c.Image(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &imageDetail{Image: im}, nil
}

// Import uploads an archive file to be imported as the caller's image.
func (r *remoteImages) Import(ctx context.Context, file, alias, osFamily string) (*images.Image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, errors.New("a server imports archives, not directories: send an OCI layout directory as an oci-archive (tar -C DIR -cf image.tar .)")
	}
	body, done := withProgress(r.progress, f, fi.Size(), "uploading "+filepath.Base(file))
	defer done()
	var im *images.Image
	if osFamily != "" {
		im, err = r.c.ImportDisk(ctx, body, fi.Size(), alias, osFamily)
	} else {
		im, err = r.c.ImportImage(ctx, body, fi.Size(), alias)
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	return im, nil
}

// Export downloads an export to out, complete or not at all.
func (r *remoteImages) Export(ctx context.Context, ref string, format images.Format, out string) error {
	if err := download(out, func(w io.Writer) error { return r.c.ExportImage(ctx, ref, format, w) }); err != nil {
		return fmt.Errorf("export %s: %w", ref, err)
	}
	return nil
}

// ExportDisk downloads the disk the server makes (and keeps in its cache).
func (r *remoteImages) ExportDisk(ctx context.Context, ref string, format images.Format, size int64, out string) error {
	if err := download(out, func(w io.Writer) error { return r.c.ExportImageDisk(ctx, ref, format, size, w) }); err != nil {
		return fmt.Errorf("export %s as a %s disk: %w", ref, format, err)
	}
	return nil
}

func (r *remoteImages) Remove(ctx context.Context, ref string) (*images.Image, error) {
	return r.c.RemoveImage(ctx, ref)
}

func (r *remoteImages) Bootstrap(context.Context, images.BootstrapOptions) (*images.Image, error) {
	return nil, errors.New("pib image bootstrap runs on the server's own machine (it needs root and debootstrap there): run it there without --server/PIB_SERVER")
}

func (r *remoteImages) Close() error { return nil }

//go:build linux

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/pib-dev/pib/internal/images"
)

// localImages is the imageService of the local data directory.
type localImages struct {
	s     *images.Store
	close func()
	warn  io.Writer // where a corrupt image is reported
}

func (l *localImages) List(ctx context.Context) ([]*images.Image, error) { return l.s.List(ctx) }

func (l *localImages) Inspect(ctx context.Context, ref string) (*imageDetail, error) {
	im, err := l.s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	img, err := l.s.Image(im)
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		fmt.Fprintf(l.warn, "pib: image %s is corrupt: its config lists %d layer(s), its manifest %d; remove it and import it again\n",
			im.ID, len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	return &imageDetail{Image: im, Layers: layerDetails(m, cfg)}, nil
}

func (l *localImages) Import(ctx context.Context, file, alias, osFamily string) (*images.Image, error) {
	return l.s.Import(ctx, file, images.ImportOptions{Alias: alias, OS: osFamily})
}

func (l *localImages) ExportDisk(ctx context.Context, ref string, format images.Format, size int64, out string) error {
	return l.s.ExportDisk(ctx, ref, format, size, out)
}

func (l *localImages) Export(ctx context.Context, ref string, format images.Format, out string) error {
	return l.s.Export(ctx, ref, format, out)
}

func (l *localImages) Remove(ctx context.Context, ref string) (*images.Image, error) {
	return l.s.Remove(ctx, ref)
}

func (l *localImages) Bootstrap(ctx context.Context, opts images.BootstrapOptions) (*images.Image, error) {
	return l.s.Bootstrap(ctx, opts)
}

func (l *localImages) Close() error {
	l.close()
	return nil
}

//go:build linux

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/store"
)

// openStores opens the metadata database and the blob store: the blob
// folder of the local data directory, or the S3 bucket of --blobs with
// that folder as this node's cache.
func (g *globals) openStores(ctx context.Context) (*store.DB, blobs.Store, error) {
	if err := secureDataDir(g.dataDir); err != nil {
		return nil, nil, err
	}
	url := g.databaseURL
	if url == "" {
		url = "sqlite://" + filepath.Join(g.dataDir, "pib.db")
	}
	db, err := store.Open(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	var bs blobs.Store
	switch dir := filepath.Join(g.dataDir, "blobs"); {
	case g.blobsURL == "":
		bs, err = blobs.NewDir(dir)
	case strings.HasPrefix(g.blobsURL, "s3://"):
		bs, err = blobs.OpenS3(ctx, g.blobsURL, dir, blobs.S3Options{Leases: blobs.NewLeases(db)})
	default:
		err = fmt.Errorf("--blobs %q: want s3://BUCKET/PREFIX?endpoint=URL&region=R, or nothing for %s", g.blobsURL, dir)
	}
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, bs, nil
}

// openImages opens the local data directory: the metadata store (migrated
// on open), the blob folder and the image store over both. The returned
// function closes everything.
func (g *globals) openImages(ctx context.Context) (*images.Store, func(), error) {
	db, bs, err := g.openStores(ctx)
	if err != nil {
		return nil, nil, err
	}
	is := images.NewStore(db, bs, filepath.Join(g.dataDir, "cache"))
	return is, func() { db.Close() }, nil
}

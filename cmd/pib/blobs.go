//go:build linux

package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/images"
)

func newBlobsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "blobs",
		Short: "Maintain the blob store (the local folder or the S3 bucket of --blobs)",
	}
	var grace time.Duration
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Delete blobs no image, package or build references",
		Long: `Delete every blob that no image, uploaded package or build's SBOM
references and that is older than --grace. Safe while other nodes write to
the same store: a blob written less than --grace ago may be one a writer is
about to reference, and on S3 a blob a writer holds a lease on stays.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			db, bs, err := g.openStores(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			lister, ok := bs.(blobs.Lister)
			if !ok {
				return fmt.Errorf("the blob store %T cannot list its blobs", bs)
			}
			is := images.NewStore(db, bs, filepath.Join(g.dataDir, "cache"))
			c, err := blobs.Collect(ctx, lister, grace, is.BlobReferenced)
			if err != nil {
				return fmt.Errorf("blob garbage collection: %w; it can be run again", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d blobs: %d deleted (%d bytes), %d referenced, %d younger than %s\n",
				c.Blobs, c.Deleted, c.DeletedBytes, c.Referenced, c.Young, grace)
			return nil
		},
	}
	gc.Flags().DurationVar(&grace, "grace", time.Hour, "keep blobs younger than this (longer than any upload and build takes)")
	cmd.AddCommand(gc)
	return cmd
}

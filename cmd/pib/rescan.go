//go:build linux

package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newRescanCommand(g *globals) *cobra.Command {
	var image string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rescan [--image ID]",
		Short: "Match the images that matter against the current vulnerability data again (operator; S5)",
		Long: `Match the kept inventories of the images that matter — the latest Successful
build of each group on each OS version, published images and private images —
against the server's current vulnerability data, without reading any image
again. Each image whose vulnerability IDs changed gets a
vulnerabilities.changed event: a webhook delivery to its owner and an entry
in its build's history.

pib serve does this by itself within a minute of any change to the data
(pib vulndb import, or the refresh of --vulndb-refresh); rescan does it now,
for every image or --image ID only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.client().Rescan(cmd.Context(), image)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			data := "no vulnerability data (pib vulndb import FILE or pib vulndb update)"
			if !res.Data.Date.IsZero() {
				data = fmt.Sprintf("vulnerability data of %s (%d records)", res.Data.Date.Format("2006-01-02"), res.Data.Records)
			}
			fmt.Fprintf(out, "%d images matched again with %s in %.1fs: %d changed (each announced)\n", res.Images, data, res.Seconds, res.Changed)
			if res.NotMonitored > 0 {
				fmt.Fprintf(out, "%d images not monitored: %s\n", res.NotMonitored, res.Hint)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&image, "image", "", "match this image only")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

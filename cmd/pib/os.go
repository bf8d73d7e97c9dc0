package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newOSCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "os", Short: "Supported OS versions: the base images builds run on"}
	var image string
	var addJSON, lsJSON bool
	add := &cobra.Command{
		Use:   "add NAME --image ID|ALIAS",
		Short: "Register a base image as a supported OS version (operator); the platform is the image's",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := g.client().AddOSVersion(cmd.Context(), args[0], image)
			if err != nil {
				return err
			}
			if addJSON {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (%s) builds on %s\n", v.Name, v.Platform, v.ImageID)
			return nil
		},
	}
	add.Flags().StringVar(&image, "image", "", "base image ID or alias")
	add.MarkFlagRequired("image")
	add.Flags().BoolVar(&addJSON, "json", false, "print JSON")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List supported OS versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().ListOSVersions(cmd.Context())
			if err != nil {
				return err
			}
			if lsJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPLATFORM\tIMAGE\tREGISTERED")
			for _, v := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.Platform, v.ImageID, v.Created.Local().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "print JSON")
	cmd.AddCommand(add, ls)
	return cmd
}

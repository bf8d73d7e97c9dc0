//go:build linux

package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newSubscriptionsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "subscriptions", Aliases: []string{"subscription"}, Short: "Subscribe to products to build private images of them (buyer, C1)"}
	var asJSON bool
	add := &cobra.Command{
		Use:   "add PRODUCT",
		Short: "Subscribe to a product (its ID) you can see",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.client().Subscribe(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), s)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "subscribed to %s (%s); build a private image with: pib private-images build --product %s --version V --gold-image IMAGE --name NAME\n",
				s.ProductTitle, s.ProductID, s.ProductID)
			return nil
		},
	}
	add.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var lsJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List your subscriptions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().Subscriptions(cmd.Context())
			if err != nil {
				return err
			}
			if lsJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PRODUCT\tTITLE\tSUBSCRIBED")
			for _, s := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.ProductID, s.ProductTitle, when(&s.Created))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "print JSON")
	rm := &cobra.Command{
		Use:   "rm PRODUCT",
		Short: "End a subscription (private images already built stay)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().Unsubscribe(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "unsubscribed from %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(add, ls, rm)
	return cmd
}

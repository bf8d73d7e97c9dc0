//go:build linux

package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newInvestigationsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "investigations", Short: "The operator's queue of builds the platform failed"}
	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List open investigations; those open more than 4 business days are flagged OVERDUE",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().ListInvestigations(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			if len(list) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no open investigations")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "BUILD\tGROUP\tOS\tOPENED\tFLAG\tREASON")
			for _, i := range list {
				flag := ""
				if i.Overdue {
					flag = "OVERDUE"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", i.BuildID, i.GroupName, i.OSName, when(&i.Opened), flag, firstLine(i.Reason))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	retry := &cobra.Command{
		Use:   "retry BUILD",
		Short: "Run a build under investigation again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := g.client().Retry(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s queued again (attempt %d)\n", b.ID, b.Attempt)
			return nil
		},
	}
	var note string
	resolve := &cobra.Command{
		Use:   "resolve BUILD --note TEXT",
		Short: "Close an investigation with a note for the seller",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := g.client().Resolve(cmd.Context(), args[0], note)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s resolved: %s\n", b.ID, b.State)
			return nil
		},
	}
	resolve.Flags().StringVar(&note, "note", "", "what was found and done")
	resolve.MarkFlagRequired("note")
	cmd.AddCommand(ls, retry, resolve)
	return cmd
}

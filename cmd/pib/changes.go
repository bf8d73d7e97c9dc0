//go:build linux

package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
)

func newChangesCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "changes", Aliases: []string{"change"}, Short: "Catalog change requests: a seller's own; an operator reviews them all (SPEC L2)"}
	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List change requests, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().Changes(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			return renderChanges(cmd.OutOrStdout(), list)
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a change request: its rows, and while pending what approving it would change",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ch, err := g.client().Change(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), ch)
			}
			renderChange(cmd.OutOrStdout(), ch)
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	approve := &cobra.Command{
		Use:   "approve ID",
		Short: "Approve a pending change request: applied whole, in one transaction, or not at all (operator)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := g.client().ApproveChange(cmd.Context(), args[0])
			if err != nil {
				printDetails(cmd.ErrOrStderr(), err)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "approved %s\n", d.Change.ID)
			for _, line := range d.Applied {
				fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", line)
			}
			return nil
		},
	}
	var reason string
	reject := &cobra.Command{
		Use:   "reject ID --reason TEXT",
		Short: "Reject a pending change request; the seller sees the reason (operator)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := g.client().RejectChange(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rejected %s: %s\n", d.Change.ID, d.Change.Reason)
			return nil
		},
	}
	reject.Flags().StringVar(&reason, "reason", "", "what the seller should change before submitting again (1–2000 characters)")
	reject.MarkFlagRequired("reason")
	cmd.AddCommand(ls, show, approve, reject)
	return cmd
}

// rowSummary is one line of what a row asks.
func rowSummary(r catalog.Row) string {
	product := r.ProductID
	if r.Request == catalog.NewProduct {
		product = fmt.Sprintf("%q", r.ProductTitle)
	}
	s := fmt.Sprintf("%s %s version %s", r.Request, product, r.VersionTitle)
	if r.PackageGroup != "" {
		s += fmt.Sprintf(", package group %s (%s)", r.PackageGroup, r.Platform)
	}
	if len(r.TestAccounts) > 0 {
		s += ", test accounts " + strings.Join(r.TestAccounts, ", ")
	}
	return s
}

func renderChanges(w io.Writer, list []*api.ChangeRequest) error {
	if len(list) == 0 {
		fmt.Fprintln(w, "no change requests")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSELLER\tCREATED\tROWS\tFIRST ROW")
	for _, ch := range list {
		first := "-"
		if len(ch.Rows) > 0 {
			first = rowSummary(ch.Rows[0])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", ch.ID, ch.State, ch.Seller, when(&ch.Created), len(ch.Rows), first)
	}
	return tw.Flush()
}

func renderChange(w io.Writer, ch *api.ChangeRequest) {
	fmt.Fprintf(w, "ID:       %s\nSeller:   %s\nState:    %s\nCreated:  %s\n", ch.ID, ch.Seller, ch.State, when(&ch.Created))
	if ch.DecidedAt != nil {
		fmt.Fprintf(w, "Decided:  %s by %s\n", when(ch.DecidedAt), ch.DecidedBy)
	}
	if ch.Reason != "" {
		fmt.Fprintf(w, "Reason:   %s\n", ch.Reason)
	}
	fmt.Fprintln(w, "Rows:")
	for _, r := range ch.Rows {
		at := ""
		if r.Line > 0 {
			at = fmt.Sprintf("line %d: ", r.Line)
		}
		fmt.Fprintf(w, "  %s%s\n", at, rowSummary(r))
	}
	if len(ch.Diff) > 0 {
		fmt.Fprintln(w, "Approving it would:")
		for _, d := range ch.Diff {
			fmt.Fprintf(w, "  %s\n", d)
		}
	}
}

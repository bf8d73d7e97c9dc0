//go:build linux

package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/audit"
)

func newAuditCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "The audit log: every change, and every operator read of another account's data (operator)"}
	var account, since string
	var limit int
	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls [--account A] [--since T]",
		Short: "List audit rows, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := audit.Filter{Account: account, Limit: limit}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				f.Since = t
			}
			page, err := g.client().Audit(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), page.Items)
			}
			if len(page.Items) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no audit rows")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tACCOUNT\tROLE\tACTION\tOBJECT\tOWNER\tRESULT\tREQUEST")
			for _, e := range page.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.AccountName, e.Role, e.Action, dash(e.Object), dash(e.Owner), e.Result, e.RequestID)
			}
			return tw.Flush()
		},
	}
	ls.Flags().StringVar(&account, "account", "", "only requests made by this account (name or ID)")
	ls.Flags().StringVar(&since, "since", "", "only rows at or after this time: RFC 3339 (2026-11-25T18:00:00Z) or an age (24h, 30m)")
	ls.Flags().IntVar(&limit, "limit", 100, "at most this many rows (1–1000)")
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(ls)
	return cmd
}

// parseSince reads --since: an RFC 3339 time, or an age before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: give an RFC 3339 time (2026-11-25T18:00:00Z) or an age such as 24h", s)
}

//go:build linux

package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/accounts"
)

func newAccountCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Manage accounts (operator)"}
	var role string
	var asJSON bool
	create := &cobra.Command{
		Use:   "create --role seller|buyer|operator NAME",
		Short: "Create an account; prints its API token last (shown only once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := g.client().CreateAccount(cmd.Context(), args[0], accounts.Role(role))
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created %s account %s (%s); its token follows and is not shown again\n", resp.Account.Role, resp.Account.Name, resp.Account.ID)
			fmt.Fprintln(cmd.OutOrStdout(), resp.Token)
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "", "seller, buyer or operator")
	create.MarkFlagRequired("role")
	create.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var lsJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().ListAccounts(cmd.Context())
			if err != nil {
				return err
			}
			if lsJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED")
			for _, a := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.ID, a.Name, a.Role, a.Created.Local().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "print JSON")
	cmd.AddCommand(create, ls)
	return cmd
}

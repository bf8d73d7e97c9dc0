//go:build linux

package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newWebhookCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "webhook", Short: "Receive each state change of your builds as a signed POST"}
	set := &cobra.Command{
		Use:   "set URL",
		Short: "Register URL; prints the secret for the X-Pib-Signature HMAC-SHA256 header",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := g.client().SetWebhook(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "state changes go to %s, signed with this secret:\n", resp.URL)
			fmt.Fprintln(cmd.OutOrStdout(), resp.Secret)
			return nil
		},
	}
	rm := &cobra.Command{
		Use:   "rm",
		Short: "Stop webhook deliveries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.client().DeleteWebhook(cmd.Context())
		},
	}
	cmd.AddCommand(set, rm)
	return cmd
}

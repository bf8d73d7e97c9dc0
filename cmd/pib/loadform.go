//go:build linux

package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/api"
)

func newLoadFormCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "load-form", Short: "The product load form (.xlsx): download it, fill it in, submit it for review (seller; SPEC L1)"}
	var out string
	download := &cobra.Command{
		Use:   "download [-o FILE]",
		Short: "Download an empty load form; its Package groups sheet lists your Successful groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := downloadTo(out, func(w io.Writer) error { return g.client().LoadForm(cmd.Context(), w) }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s; fill in its Products sheet and send it with: pib load-form submit %s\n", out, out)
			return nil
		},
	}
	download.Flags().StringVarP(&out, "output", "o", "load-form.xlsx", "the file to write")
	submit := &cobra.Command{
		Use:   "submit FILE",
		Short: "Submit a filled load form: all its rows become one change request an operator reviews (L2)",
		Long: `Submit a filled load form. Every row is checked (F1 add a package group to a
version, F2 a new version, F3 a new product); a form with problems is refused
whole, each problem on its own line with its cell (Products!D7: …), and
nothing is stored. An accepted form is a pending change request: follow it
with pib changes show ID.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			ch, err := g.client().SubmitLoadForm(cmd.Context(), f, fi.Size())
			if err != nil {
				printDetails(cmd.ErrOrStderr(), err)
				return err
			}
			for _, w := range ch.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			return printSubmitted(cmd.OutOrStdout(), ch)
		},
	}
	cmd.AddCommand(download, submit)
	return cmd
}

// downloadTo is download, with "-" for standard output refused: a
// workbook is not for a terminal.
func downloadTo(out string, fetch func(io.Writer) error) error {
	if out == "" || out == "-" {
		return fmt.Errorf("-o %q: name the .xlsx file to write", out)
	}
	return download(out, fetch)
}

// printSubmitted tells a seller what its change request asks and what
// comes next.
func printSubmitted(w io.Writer, ch *api.ChangeRequest) error {
	fmt.Fprintf(w, "change request %s is %s; an operator reviews it (pib changes show %s)\n", ch.ID, ch.State, ch.ID)
	for _, d := range ch.Diff {
		fmt.Fprintf(w, "  %s\n", d)
	}
	return nil
}

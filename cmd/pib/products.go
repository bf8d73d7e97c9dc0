//go:build linux

package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/catalog"
)

func newProductsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "products", Aliases: []string{"product"}, Short: "The catalog: products you may see; a seller asks to publish a version"}
	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the products you may see, each with the versions you may see",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().Products(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			return renderProducts(cmd.OutOrStdout(), list)
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	show := &cobra.Command{
		Use:   "show PRODUCT",
		Short: "Show a product, its versions and their fulfillment options",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.client().Product(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), p)
			}
			renderProduct(cmd.OutOrStdout(), p)
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	publish := &cobra.Command{
		Use:   "publish PRODUCT VERSION",
		Short: "Ask for a version of your product (and the product) to become public: a change request an operator reviews",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ch, err := g.client().PublishVersion(cmd.Context(), args[0], args[1])
			if err != nil {
				printDetails(cmd.ErrOrStderr(), err)
				return err
			}
			return printSubmitted(cmd.OutOrStdout(), ch)
		},
	}
	cmd.AddCommand(ls, show, publish)
	return cmd
}

// versionsOf is "2.0 (public), 2.1 (draft)".
func versionsOf(p *catalog.Product) string {
	var vs []string
	for _, v := range p.Versions {
		vs = append(vs, fmt.Sprintf("%s (%s)", v.Title, v.Visibility))
	}
	return dash(strings.Join(vs, ", "))
}

func renderProducts(w io.Writer, list []*catalog.Product) error {
	if len(list) == 0 {
		fmt.Fprintln(w, "no products you may see")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTITLE\tVISIBILITY\tCATEGORY\tVERSIONS")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Title, p.Visibility, p.Category, versionsOf(p))
	}
	return tw.Flush()
}

func renderProduct(w io.Writer, p *catalog.Product) {
	fmt.Fprintf(w, "ID:          %s\nTitle:       %s\nVisibility:  %s\n", p.ID, p.Title, p.Visibility)
	if len(p.TestAccounts) > 0 {
		fmt.Fprintf(w, "Test:        %s\n", strings.Join(p.TestAccounts, ", "))
	}
	fmt.Fprintf(w, "Category:    %s\nSupport:     %s\nSummary:     %s\n", p.Category, p.SupportContact, p.ShortDescription)
	if p.EULAURL != "" {
		fmt.Fprintf(w, "EULA:        %s\n", p.EULAURL)
	}
	for _, h := range p.Highlights {
		fmt.Fprintf(w, "Highlight:   %s\n", h)
	}
	fmt.Fprintf(w, "Updated:     %s\nVersions:\n", when(&p.Updated))
	if len(p.Versions) == 0 {
		fmt.Fprintln(w, "  none you may see")
	}
	for _, v := range p.Versions {
		test := ""
		if len(v.TestAccounts) > 0 {
			test = "; test accounts " + strings.Join(v.TestAccounts, ", ")
		}
		fmt.Fprintf(w, "  %s  %s  (%s%s)  %s\n", v.ID, v.Title, v.Visibility, test, firstLine(v.ReleaseNotes))
		for _, o := range v.Options {
			switch o.Kind {
			case catalog.PackageGroup:
				fmt.Fprintf(w, "    %s  package group %s (%s)\n", o.ID, o.GroupName, o.Platform)
			default:
				fmt.Fprintf(w, "    %s  image %s\n", o.ID, o.ImageID)
			}
		}
	}
}

//go:build linux

package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/privatebuilds"
)

func newPrivateImagesCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "private-images", Aliases: []string{"private-image"},
		Short: "Build private images: a product installed onto your gold image (buyer, C1–C6; a seller on its own product, F2)"}
	cmd.AddCommand(newPrivateImagesBuildCommand(g), newPrivateImagesListCommand(g), newPrivateImagesShowCommand(g),
		newPrivateImagesLogCommand(g), newPrivateImagesReportCommand(g))
	return cmd
}

func newPrivateImagesBuildCommand(g *globals) *cobra.Command {
	var req privatebuilds.Request
	var tags []string
	var wait, asJSON bool
	cmd := &cobra.Command{
		Use:   "build --product P --version V [--fulfillment OPTION] --gold-image ID --name NAME [--description D] [--tag k=v]… [--client-token T] [--wait]",
		Short: "Install a product version onto one of your images, then scan the result",
		Long: `Install a product version's package group onto one of your images (the gold
image) in the same sandbox as a seller's test build (I1–I8), then scan it
(S1–S4). The result is a private image only your account sees, tagged with the
fulfillment, product, version and gold image (C5).

Refused before anything runs (C4): SubscriptionNotFound (subscribe first with
pib subscriptions add), InstallerMismatch (the gold image's OS is not one the
package group supports, C2), InvalidSourceImage (the gold image carries this
fulfillment already, C5), BuildLimitExceeded (too many of your builds are
running), IdempotentParameterMismatch (--client-token reused with other
parameters; the same token and parameters give the same build back).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, t := range tags {
				k, v, ok := strings.Cut(t, "=")
				if !ok || k == "" {
					return fmt.Errorf("--tag %q: write KEY=VALUE", t)
				}
				if req.Tags == nil {
					req.Tags = map[string]string{}
				}
				req.Tags[k] = v
			}
			c := g.client()
			pb, err := c.CreatePrivateBuild(cmd.Context(), req)
			if err != nil {
				return err
			}
			if wait {
				err := client.Wait(cmd.Context(), time.Second, func() (bool, error) {
					pb, err = c.PrivateBuild(cmd.Context(), pb.ID)
					return err == nil && pb.Build != nil && pb.Build.State.Ended(), err
				})
				if err != nil {
					return err
				}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), pb)
			}
			printPrivateBuild(cmd.OutOrStdout(), pb)
			if !wait {
				fmt.Fprintf(cmd.ErrOrStderr(), "follow it with: pib private-images show %s\n", pb.ID)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Product, "product", "", "product ID (pib subscriptions ls)")
	f.StringVar(&req.Version, "version", "", "version title or ID")
	f.StringVar(&req.Fulfillment, "fulfillment", "", "fulfillment option ID (default: the version's package group for the gold image's platform)")
	f.StringVar(&req.GoldImage, "gold-image", "", "your image to install onto: ID or alias (pib image ls)")
	f.StringVar(&req.Name, "name", "", "name of the new image")
	f.StringVar(&req.Description, "description", "", "description of the new image")
	f.StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE for the new image (repeat)")
	f.StringVar(&req.ClientToken, "client-token", "", "idempotency token: repeating the request with it gives the same build")
	f.BoolVar(&wait, "wait", false, "wait until the build ends")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	for _, n := range []string{"product", "version", "gold-image", "name"} {
		cmd.MarkFlagRequired(n)
	}
	return cmd
}

func newPrivateImagesListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List your private image builds, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().PrivateBuilds(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tPRODUCT\tVERSION\tGOLD IMAGE\tIMAGE\tSTATE\tSUBMITTED")
			for _, pb := range list {
				state, image := "-", "-"
				if pb.Build != nil {
					state, image = string(pb.Build.State), dash(pb.Build.ImageID)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", pb.ID, pb.Name, pb.ProductID, pb.VersionID, pb.GoldImageID, image, state, when(&pb.Created))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newPrivateImagesShowCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a private image build: state, image, tags, troubleshooting and history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			pb, err := c.PrivateBuild(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), pb)
			}
			printPrivateBuild(cmd.OutOrStdout(), pb)
			ev, err := c.PrivateBuildHistory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, "History:")
			for _, e := range ev {
				fmt.Fprintf(w, "  %s  %-13s %s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.State, e.Reason)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printPrivateBuild prints a private image build for people.
func printPrivateBuild(w io.Writer, pb *privatebuilds.PrivateBuild) {
	fmt.Fprintf(w, "ID:           %s\nName:         %s\n", pb.ID, pb.Name)
	if pb.Description != "" {
		fmt.Fprintf(w, "Description:  %s\n", pb.Description)
	}
	fmt.Fprintf(w, "Product:      %s\nVersion:      %s\nFulfillment:  %s\nGold image:   %s\n", pb.ProductID, pb.VersionID, pb.FulfillmentID, pb.GoldImageID)
	if b := pb.Build; b != nil {
		fmt.Fprintf(w, "OS version:   %s\nState:        %s\nImage:        %s\nSubmitted:    %s\nEnded:        %s\n",
			b.OSName, b.State, dash(b.ImageID), when(&b.Submitted), when(b.Ended))
	}
	if len(pb.Tags) > 0 {
		fmt.Fprintln(w, "Tags:")
		for _, k := range slices.Sorted(maps.Keys(pb.Tags)) {
			fmt.Fprintf(w, "  %s=%s\n", k, pb.Tags[k])
		}
	}
	if b := pb.Build; b != nil && b.Troubleshooting != "" {
		fmt.Fprintf(w, "Troubleshooting:\n  %s\n", strings.ReplaceAll(b.Troubleshooting, "\n", "\n  "))
	}
}

func newPrivateImagesLogCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "log ID",
		Short: "The build log: installer stdout and stderr (I8)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.client().PrivateBuildLog(cmd.Context(), args[0], cmd.OutOrStdout())
		},
	}
}

func newPrivateImagesReportCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "report ID",
		Short: "The build report: findings, vulnerabilities, policy checks and changed files",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := g.client().PrivateBuildReport(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			renderReport(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

//go:build linux

package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/osversions"
)

func newOSCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "os", Short: "Supported OS versions: the base images builds run on"}
	var image string
	var addJSON, lsJSON bool
	var bootTest, backend string
	add := &cobra.Command{
		Use:   "add NAME --image ID|ALIAS",
		Short: "Register a base image as a supported OS version (operator); the platform is the image's",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.AddOSVersionRequest{Name: args[0], Image: image}
			switch bootTest {
			case "":
			case "on", "off":
				on := bootTest == "on"
				req.BootTest = &on
			default:
				return fmt.Errorf("--boot-test %q: use on or off", bootTest)
			}
			if backend != "" {
				if err := osversions.CheckBackend("", false, backend); err != nil {
					return fmt.Errorf("--backend: %w", err)
				}
				req.Backend = &backend
			}
			v, err := g.client().AddOSVersionWith(cmd.Context(), req)
			if err != nil {
				return err
			}
			if addJSON {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (%s) builds on %s\n", v.Name, v.Platform, v.ImageID)
			if v.BootTest {
				fmt.Fprintf(cmd.OutOrStdout(), "%s builds are boot-tested (V1–V3)\n", v.Name)
			}
			if v.Backend == osversions.VM {
				fmt.Fprintf(cmd.OutOrStdout(), "%s builds run in a virtual machine (backend vm)\n", v.Name)
			}
			return nil
		},
	}
	add.Flags().StringVar(&image, "image", "", "base image ID or alias")
	add.MarkFlagRequired("image")
	add.Flags().BoolVar(&addJSON, "json", false, "print JSON")
	add.Flags().StringVar(&bootTest, "boot-test", "", "on: boot every build's image and check rules V1–V3 before the scan (a QEMU boot, ~15–40 s without KVM); off: don't; default: keep as it is (off for a new OS version)")
	add.Flags().StringVar(&backend, "backend", "", "where builds run: sandbox (pib's Linux sandbox, ~1 s) or vm (a QEMU machine booted from the base image with the guest agent: a running systemd, ~30–60 s without KVM); default: keep as it is (sandbox for a new Linux OS version; Windows and disk images are always vm)")
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
			fmt.Fprintln(tw, "NAME\tPLATFORM\tIMAGE\tBACKEND\tREGISTERED")
			for _, v := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, v.Platform, v.ImageID, v.Backend, v.Created.Local().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "print JSON")
	cmd.AddCommand(add, ls)
	return cmd
}

//go:build linux

package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
)

func newGroupsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "groups", Aliases: []string{"group"}, Short: "Create, list and show package groups (seller)"}
	cmd.AddCommand(newGroupsCreateCommand(g), newGroupsListCommand(g), newGroupsShowCommand(g), newGroupsSubmitCommand(g))
	return cmd
}

// packageRef uploads ref if it names a file, else takes it as a package ID.
func (g *globals) packageRef(cmd *cobra.Command, ref string) (string, error) {
	if fi, err := os.Stat(ref); err == nil && !fi.IsDir() {
		p, err := g.upload(cmd, ref)
		if err != nil {
			return "", err
		}
		return p.ID, nil
	}
	if strings.HasPrefix(ref, "pkg-") {
		return ref, nil
	}
	return "", fmt.Errorf("%s is neither a file nor a package ID (pkg-…)", ref)
}

func newGroupsCreateCommand(g *globals) *cobra.Command {
	var spec groups.Spec
	var installer string
	var pkgs []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create --name N --platform linux|windows --os OS [--os OS]… --installer FILE|PKG_ID [--package FILE|PKG_ID]… [--software-version V]",
		Short: "Create a package group; files given are uploaded first",
		Long: `Create a package group. Rules (SPEC.md): N1 the name is 1–99 characters of
A–Z a–z 0–9 _ -, N2 a name can be used only once per account, forever; N3 the
convention is <product><version><platform><revision>, e.g. MyApp1_0Linux1. P1 one
installer; P2 linux installers are .exe .rpm .deb .sh .run, windows ones .msi .ps1
.bat .exe; P3 one platform; P4 registered OS versions of that platform (pib os ls).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if spec.InstallerID, err = g.packageRef(cmd, installer); err != nil {
				return err
			}
			for _, p := range pkgs {
				id, err := g.packageRef(cmd, p)
				if err != nil {
					return err
				}
				spec.PackageIDs = append(spec.PackageIDs, id)
			}
			out, err := g.client().CreateGroup(cmd.Context(), spec)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created package group %s (%s); submit it with: pib groups submit %s\n", out.Name, out.ID, out.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Name, "name", "", "group name (N1, N2; convention N3: <product><version><platform><revision>)")
	f.StringVar(&spec.Platform, "platform", "linux", "linux or windows")
	f.StringSliceVar(&spec.OSVersions, "os", nil, "OS version to build on (repeat)")
	f.StringVar(&installer, "installer", "", "installer file or package ID")
	f.StringSliceVar(&pkgs, "package", nil, "other file or package ID (repeat)")
	f.StringVar(&spec.SoftwareVersion, "software-version", "", "version of the software the group installs, e.g. 2.4.1; optional now, needed to publish the group: it must equal the catalog version's title (F1)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("installer")
	return cmd
}

func newGroupsListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List your package groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list := []*groups.Group{} // JSON: [] when there are none, as every listing
			for cursor := ""; ; {
				page, err := g.client().ListGroups(cmd.Context(), client.Page{Cursor: cursor, Limit: 1000})
				if err != nil {
					return err
				}
				list = append(list, page.Items...)
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tPLATFORM\tCREATED\tSUBMITTED")
			for _, x := range list {
				sub := "-"
				if x.Submitted != nil {
					sub = x.Submitted.Local().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", x.ID, x.Name, x.Platform, x.Created.Local().Format("2006-01-02 15:04"), sub)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGroupsShowCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show NAME|ID",
		Short: "Show a package group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			x, err := g.client().Group(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), x)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "ID:        %s\nName:      %s\nPlatform:  %s\nOS:        %s\n", x.ID, x.Name, x.Platform, strings.Join(x.OSVersions, ", "))
			if x.SoftwareVersion != "" {
				fmt.Fprintf(w, "Software:  %s\n", x.SoftwareVersion)
			}
			fmt.Fprintf(w, "Created:   %s\nPackages:\n", x.Created.Local().Format("2006-01-02 15:04"))
			for _, p := range x.Packages {
				mark := ""
				if p.ID == x.InstallerID {
					mark = "  (installer)"
				}
				fmt.Fprintf(w, "  %s  %s  %s%s\n", p.ID, p.Name, humanSize(p.Size), mark)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGroupsSubmitCommand(g *globals) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "submit NAME|ID",
		Short: "Submit a group: one test build and scan per OS version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			builds, err := g.client().SubmitGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, b := range builds {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", b.ID, b.OSName, b.State)
			}
			if !watch {
				fmt.Fprintf(cmd.ErrOrStderr(), "follow it with: pib status %s --watch\n", args[0])
				return nil
			}
			st := newStatusCommand(g)
			st.SetArgs([]string{args[0], "--watch", "--interval", "500ms"})
			st.SetOut(cmd.OutOrStdout())
			return st.ExecuteContext(cmd.Context())
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the builds until they end")
	return cmd
}

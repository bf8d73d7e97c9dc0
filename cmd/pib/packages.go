//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pib-dev/pib/internal/packages"
)

func newPackagesCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "packages", Aliases: []string{"package"}, Short: "Upload and list your packages (seller)"}
	var upJSON, lsJSON bool
	upload := &cobra.Command{
		Use:   "upload FILE...",
		Short: "Upload files as packages, with a progress bar; prints each package ID",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out []*packages.Package
			for _, f := range args {
				p, err := g.upload(cmd, f)
				if err != nil {
					return err
				}
				out = append(out, p)
				if !upJSON {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", p.ID, p.Name, humanSize(p.Size))
				}
			}
			if upJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			return nil
		},
	}
	upload.Flags().BoolVar(&upJSON, "json", false, "print JSON")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List your packages",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().ListPackages(cmd.Context())
			if err != nil {
				return err
			}
			if lsJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSIZE\tDIGEST\tUPLOADED")
			for _, p := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, humanSize(p.Size), shortDigest(p.Digest), p.Uploaded.Local().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "print JSON")
	cmd.AddCommand(upload, ls)
	return cmd
}

// upload sends one file, streaming it with a progress bar on a terminal.
func (g *globals) upload(cmd *cobra.Command, file string) (*packages.Package, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory; upload files", file)
	}
	r, done := withProgress(cmd.ErrOrStderr(), f, fi.Size(), "uploading "+filepath.Base(file))
	defer done()
	p, err := g.client().UploadPackage(context.WithoutCancel(cmd.Context()), filepath.Base(file), r, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", file, err)
	}
	return p, nil
}

// withProgress returns r read through a progress bar of size bytes on w
// when w is a terminal, else r itself; done closes the bar.
func withProgress(w io.Writer, r io.Reader, size int64, what string) (_ io.Reader, done func()) {
	tf, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(tf.Fd())) {
		return r, func() {}
	}
	bar := progressbar.DefaultBytes(size, what)
	return io.TeeReader(r, bar), func() { bar.Close() }
}

// shortDigest shows the start of a digest ("sha256:0123456789ab…"); a
// shorter string (a server that answers something unexpected) as it is.
func shortDigest(d string) string {
	if len(d) <= 19 {
		return d
	}
	return d[:19] + "…"
}

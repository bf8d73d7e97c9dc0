//go:build linux

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/vulndb"
)

func newVulnDBCommand(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "vulndb",
		Short: "Manage the local OSV vulnerability database scans match against (rule S2)",
	}
	c.AddCommand(newVulnDBImportCommand(g), newVulnDBUpdateCommand(g), newVulnDBStatusCommand(g))
	return c
}

func (g *globals) openVulnDB(ctx context.Context) (*vulndb.DB, *store.DB, error) {
	db, _, err := g.openStores(ctx)
	if err != nil {
		return nil, nil, err
	}
	return vulndb.New(db), db, nil
}

func newVulnDBImportCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE|DIR",
		Short: "Import OSV records from a zip (osv.dev's all.zip layout) or a directory of .json files",
		Long: `Import OSV records. A record replaces the stored one with the same ID only
when its "modified" time is newer, so importing the same data twice changes
nothing. Withdrawn records are ignored; a record that does not parse is
reported by ID and skipped, and the rest are imported.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			db, sdb, err := g.openVulnDB(ctx)
			if err != nil {
				return err
			}
			defer sdb.Close()
			start := time.Now()
			res, err := db.Import(ctx, args[0])
			if err != nil {
				return err
			}
			printImport(cmd, args[0], res, time.Since(start))
			return nil
		},
	}
}

func printImport(cmd *cobra.Command, what string, res *vulndb.ImportResult, took time.Duration) {
	w := cmd.ErrOrStderr()
	// Each malformed record is named with its reason; the rest were used.
	for _, s := range res.Skipped {
		fmt.Fprintf(w, "skipped %s\n", s)
	}
	noModified := ""
	if res.NoModified > 0 {
		noModified = fmt.Sprintf(" (%d with no modified time)", res.NoModified)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %d records read%s, %d imported, %d unchanged, %d withdrawn, %d skipped as malformed (%.1fs)\n",
		what, res.Read, noModified, res.Imported, res.Unchanged, res.Withdrawn, len(res.Skipped), took.Seconds())
}

func newVulnDBUpdateCommand(g *globals) *cobra.Command {
	var ecosystems []string
	var baseURL string
	c := &cobra.Command{
		Use:   "update",
		Short: "Download osv.dev's per-ecosystem all.zip files and import them",
		Long: `Download each ecosystem's all.zip from osv.dev (or --base-url), using
conditional requests so unchanged data is not fetched again, and import it.
Without --ecosystem, the ecosystems of the stored images are updated.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			sdb, bs, err := g.openStores(ctx)
			if err != nil {
				return err
			}
			defer sdb.Close()
			db := vulndb.New(sdb)
			if len(ecosystems) == 0 {
				if ecosystems, err = imageEcosystems(ctx, images.NewStore(sdb, bs, filepath.Join(g.dataDir, "cache"))); err != nil {
					return err
				}
				if len(ecosystems) == 0 {
					return fmt.Errorf("no stored images to take ecosystems from; name them, e.g. pib vulndb update --ecosystem Debian")
				}
			}
			start := time.Now()
			results, err := db.Update(ctx, vulndb.UpdateOptions{
				BaseURL:    baseURL,
				Ecosystems: ecosystems,
				Dir:        filepath.Join(g.dataDir, "vulndb"),
				Progress:   cmd.ErrOrStderr(),
			})
			for _, r := range results {
				if r.NotModified {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: unchanged\n", r.Ecosystem)
					continue
				}
				printImport(cmd, r.Ecosystem, r.Import, time.Since(start))
			}
			return err
		},
	}
	c.Flags().StringArrayVar(&ecosystems, "ecosystem", nil, "OSV ecosystem to update (Debian, Ubuntu, Alpine, PyPI, …); repeatable")
	c.Flags().StringVar(&baseURL, "base-url", vulndb.DefaultBaseURL, "where <Ecosystem>/all.zip files are served")
	return c
}

// imageEcosystems lists the OSV ecosystems of the stored images'
// distributions.
func imageEcosystems(ctx context.Context, is *images.Store) ([]string, error) {
	distros, err := is.Distros(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, d := range distros {
		eco, _, _ := strings.Cut(scan.Ecosystem(d.ID, d.Version), ":")
		if eco != "" && !seen[eco] {
			seen[eco] = true
			out = append(out, eco)
		}
	}
	sort.Strings(out)
	return out, nil
}

func newVulnDBStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show records per ecosystem, the newest modification and when they were imported",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			db, sdb, err := g.openVulnDB(ctx)
			if err != nil {
				return err
			}
			defer sdb.Close()
			st, err := db.Status(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if st.Records == 0 {
				fmt.Fprintln(out, "the vulnerability database is empty; run pib vulndb import FILE or pib vulndb update")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ECOSYSTEM\tRECORDS\tNEWEST MODIFIED\tIMPORTED")
			for _, e := range st.Ecosystems {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", e.Ecosystem, e.Records, e.NewestModified.Format(time.RFC3339), e.ImportedAt.Format(time.RFC3339))
			}
			tw.Flush()
			fmt.Fprintf(out, "%d records in all, newest modified %s\n", st.Records, st.NewestModified.Format(time.RFC3339))
			for _, s := range st.Sources {
				fmt.Fprintf(out, "source %s: last downloaded %s", s.Source, s.ImportedAt.Format(time.RFC3339))
				if s.ETag != "" {
					fmt.Fprintf(out, ", ETag %s", s.ETag)
				}
				if s.LastModified != "" {
					fmt.Fprintf(out, ", Last-Modified %s", s.LastModified)
				}
				fmt.Fprintln(out)
			}
			return nil
		},
	}
}

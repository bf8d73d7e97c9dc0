package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/scan"
)

func init() {
	commands = append(commands, newStatusCommand, newBuildsCommand, newInvestigationsCommand, newWebhookCommand)
}

func newStatusCommand(g *globals) *cobra.Command {
	var watch, asJSON bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "status [GROUP]",
		Short: "The scan status view: your groups with their state, each expanded into its builds",
		Long: `The scan status view: each package group (name, submitted date, state) expanded
into its builds (OS version, image ID, submitted date, state and, for "Issues
found", what to fix). With --watch it refreshes until every build shown has ended.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			q := client.StatusQuery{Page: client.Page{Limit: 1000}}
			if len(args) == 1 {
				q = client.StatusQuery{Group: args[0]}
			}
			tty := false
			if f, ok := cmd.OutOrStdout().(*os.File); ok {
				tty = term.IsTerminal(int(f.Fd()))
			}
			var last string
			return client.Wait(cmd.Context(), interval, func() (bool, error) {
				page, err := c.Status(cmd.Context(), q)
				if err != nil {
					return false, err
				}
				var buf bytes.Buffer
				if asJSON {
					writeJSON(&buf, page.Items)
				} else {
					renderStatus(&buf, page.Items)
				}
				if out := buf.String(); out != last {
					if tty && watch && last != "" {
						fmt.Fprint(cmd.OutOrStdout(), "\033[H\033[2J")
					}
					fmt.Fprint(cmd.OutOrStdout(), out)
					last = out
				}
				return !watch || allEnded(page.Items), nil
			})
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "refresh until every build shown has ended")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "refresh interval with --watch")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func allEnded(list []*api.GroupStatus) bool {
	for _, g := range list {
		for _, b := range g.Builds {
			if b.State == pipeline.Building || b.State == pipeline.Scanning {
				return false
			}
		}
	}
	return true
}

func renderStatus(w io.Writer, list []*api.GroupStatus) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no package groups yet (pib groups create)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP / OS\tIMAGE\tSUBMITTED\tSTATE")
	for _, g := range list {
		fmt.Fprintf(tw, "%s\t\t%s\t%s\n", g.Name, when(g.Submitted), g.State)
		for i, b := range g.Builds {
			branch := "├─"
			if i == len(g.Builds)-1 {
				branch = "└─"
			}
			fmt.Fprintf(tw, "  %s %s\t%s\t%s\t%s\n", branch, b.OSName, dash(b.ImageID), when(&b.Submitted), b.State)
		}
	}
	tw.Flush()
	// Troubleshooting text under the table, so long lines do not stretch
	// the columns.
	for _, g := range list {
		for _, b := range g.Builds {
			if b.Troubleshooting == "" || (b.State != pipeline.IssuesFound && b.State != pipeline.Investigating) {
				continue
			}
			fmt.Fprintf(w, "\n%s on %s (%s) — %s:\n", g.Name, b.OSName, b.ID, b.State)
			for _, line := range strings.Split(strings.TrimRight(b.Troubleshooting, "\n"), "\n") {
				fmt.Fprintln(w, "  "+line)
			}
		}
	}
}

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func newBuildsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "builds", Aliases: []string{"build-log"}, Short: "Logs and reports of your builds"}
	log := &cobra.Command{
		Use:   "log BUILD",
		Short: "The build log: installer stdout and stderr with timestamps (I8)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.client().BuildLog(cmd.Context(), args[0], cmd.OutOrStdout())
		},
	}
	var asJSON bool
	report := &cobra.Command{
		Use:   "report BUILD",
		Short: "The build report: findings, vulnerabilities, policy checks and changed files",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := g.client().BuildReport(cmd.Context(), args[0])
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
	report.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var format, out string
	sbom := &cobra.Command{
		Use:   "sbom BUILD [--format cyclonedx-json|spdx-json] [-o FILE]",
		Short: "The SBOM of the image a build made (rule S1)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return g.client().BuildSBOM(cmd.Context(), args[0], format, cmd.OutOrStdout())
			}
			f, err := os.CreateTemp(filepath.Dir(out), ".sbom-*")
			if err != nil {
				return err
			}
			defer os.Remove(f.Name())
			err = g.client().BuildSBOM(cmd.Context(), args[0], format, f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Chmod(f.Name(), 0o644)
			}
			if err != nil {
				return err
			}
			return os.Rename(f.Name(), out)
		},
	}
	sbom.Flags().StringVar(&format, "format", "cyclonedx-json", "cyclonedx-json or spdx-json")
	sbom.Flags().StringVarP(&out, "output", "o", "", "write to FILE instead of standard output")
	cmd.AddCommand(log, report, sbom)
	return cmd
}

func renderReport(w io.Writer, rep *pipeline.Report) {
	fmt.Fprintf(w, "Build %s: %s\n", rep.BuildID, rep.State)
	if len(rep.Findings) == 0 {
		fmt.Fprintln(w, "\nFindings: none")
	} else {
		fmt.Fprintln(w, "\nFindings:")
		for _, f := range rep.Findings {
			fmt.Fprintf(w, "  [%s] %s\n", f.Rule, f.Message)
			if f.Detail != "" {
				fmt.Fprintf(w, "        %s\n", f.Detail)
			}
		}
	}
	if len(rep.Scan) > 0 {
		renderScan(w, rep.Scan)
	}
	fmt.Fprintf(w, "\nChanged files (%d):\n", len(rep.ChangedFiles))
	for _, f := range rep.ChangedFiles {
		fmt.Fprintln(w, "  "+f)
	}
}

// renderScan shows the scan part of a build report the way pib scan shows
// a scan.
func renderScan(w io.Writer, raw []byte) {
	var rep scan.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		fmt.Fprintf(w, "\nScan report: unreadable (%v); see --json\n", err)
		return
	}
	fmt.Fprintln(w, "\nScan:")
	printReport(w, &rep)
}

func newInvestigationsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "investigations", Short: "The operator's queue of builds the platform failed"}
	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List open investigations; those open more than 4 business days are flagged OVERDUE",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().ListInvestigations(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			if len(list) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no open investigations")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "BUILD\tGROUP\tOS\tOPENED\tFLAG\tREASON")
			for _, i := range list {
				flag := ""
				if i.Overdue {
					flag = "OVERDUE"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", i.BuildID, i.GroupName, i.OSName, when(&i.Opened), flag, firstLine(i.Reason))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	retry := &cobra.Command{
		Use:   "retry BUILD",
		Short: "Run a build under investigation again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := g.client().Retry(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s queued again (attempt %d)\n", b.ID, b.Attempt)
			return nil
		},
	}
	var note string
	resolve := &cobra.Command{
		Use:   "resolve BUILD --note TEXT",
		Short: "Close an investigation with a note for the seller",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := g.client().Resolve(cmd.Context(), args[0], note)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s resolved: %s\n", b.ID, b.State)
			return nil
		},
	}
	resolve.Flags().StringVar(&note, "note", "", "what was found and done")
	resolve.MarkFlagRequired("note")
	cmd.AddCommand(ls, retry, resolve)
	return cmd
}

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

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

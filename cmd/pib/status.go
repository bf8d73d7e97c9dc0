//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/pipeline"
)

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
	// the columns; then the vulnerability data of each monitored verdict
	// (S5).
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
	renderMonitoring(w, list)
}

// renderMonitoring lists, for each build whose image is monitored, the
// date of the data its verdict was made with, flagging one that newer
// data would change (S5).
func renderMonitoring(w io.Writer, list []*api.GroupStatus) {
	first := true
	for _, g := range list {
		for _, b := range g.Builds {
			v := g.Monitoring[b.ID]
			if v == nil {
				continue
			}
			if first {
				fmt.Fprintln(w, "\nVulnerability data (S5):")
				first = false
			}
			flag := ""
			if v.Outdated {
				flag = "NEWER DATA CHANGES IT: "
			}
			fmt.Fprintf(w, "  %s on %s (%s): %s%s\n", g.Name, b.OSName, b.ID, flag, v.Note)
		}
	}
}

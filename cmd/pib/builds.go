//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/testbuild"
)

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
		Use:   "sbom BUILD [--format cyclonedx-json|spdx-json|syft-json] [-o FILE]",
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
	sbom.Flags().StringVar(&format, "format", "cyclonedx-json", "cyclonedx-json, spdx-json or syft-json (syft's own JSON, which the others are made from)")
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
	if len(rep.Build) > 0 {
		renderReproducibility(w, rep.Build)
	}
}

// renderReproducibility shows how the build's layer compares with the
// previous build's of the same inputs, when the builder's report says.
func renderReproducibility(w io.Writer, raw []byte) {
	var b testbuild.BuildReport
	if err := json.Unmarshal(raw, &b); err != nil || b.Reproducible == nil {
		return
	}
	r := b.Reproducible
	fmt.Fprintln(w, "\nReproducibility:")
	fmt.Fprintf(w, "  layer %s (file times clamped to %s)\n", r.Layer, time.Unix(r.SourceDateEpoch, 0).UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  %s\n", r.Note)
	for _, d := range r.Differences {
		fmt.Fprintf(w, "    %s: %s\n", d.Path, strings.Join(d.What, ", "))
	}
	if r.MoreDifferences > 0 {
		fmt.Fprintf(w, "    … %d more\n", r.MoreDifferences)
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

//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/vulndb"
)

// scanExit carries `pib scan`'s exit status: 1 when the image has issues,
// 2 when the scan itself failed.
type scanExit struct {
	code int
	err  error
}

func (e *scanExit) Error() string { return e.err.Error() }
func (e *scanExit) Unwrap() error { return e.err }
func (e *scanExit) ExitCode() int { return e.code }
func scanError(err error) error   { return &scanExit{code: 2, err: err} }
func scanIssues(r *scan.Report) error {
	return &scanExit{code: 1, err: fmt.Errorf("issues found: %d policy violation(s)", len(r.Violations))}
}

func newScanCommand(g *globals) *cobra.Command {
	var rootfs, policyFile, sbomFormat, sbomOut string
	var asJSON bool
	c := &cobra.Command{
		Use:   "scan ID|ALIAS | --rootfs DIR",
		Short: "Scan an image: inventory and SBOM, known vulnerabilities, image policy checks (rules S1–S4)",
		Long: `Scan an image (or a root filesystem directory) and decide its verdict.

The default policy fails on any Critical or High vulnerability that has a
fix available and on any failed image policy check (S3.1–S3.7); --policy
takes a JSON or YAML file with min_severity, fail_on_unfixed,
unknown_severity (ignore, the default, or low|medium|high|critical: how a
vulnerability no source rates is judged), fail_on_checks and an allow
list (id, package, reason, expires). Records of one vulnerability in one
package (aliases, a shared CVE) count once.

Exit status: 0 successful, 1 issues found, 2 the scan could not be done.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (rootfs != "") {
				return scanError(fmt.Errorf("give either an image (ID or alias) or --rootfs DIR"))
			}
			if (sbomFormat == "") != (sbomOut == "") {
				return scanError(fmt.Errorf("--sbom FORMAT and -o FILE go together"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			err := runScan(cmd, g, args, rootfs, policyFile, sbomFormat, sbomOut, asJSON)
			var se *scanExit
			if err != nil && !errors.As(err, &se) {
				err = scanError(err)
			}
			return err
		},
	}
	// Usage errors are errors too (exit 2), never "issues found".
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return scanError(err) })
	f := c.Flags()
	f.StringVar(&rootfs, "rootfs", "", "scan this root filesystem directory instead of a stored image")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.StringVar(&policyFile, "policy", "", "policy file (JSON or YAML); default: fail on Critical/High with a fix and on any S3 failure")
	f.StringVar(&sbomFormat, "sbom", "", "also write the SBOM: cyclonedx-json or spdx-json (with -o)")
	f.StringVarP(&sbomOut, "output", "o", "", "file the SBOM is written to")
	return c
}

func runScan(cmd *cobra.Command, g *globals, args []string, rootfs, policyFile, sbomFormat, sbomOut string, asJSON bool) error {
	ctx := cmd.Context()
	policy := scan.DefaultPolicy()
	if policyFile != "" {
		p, err := scan.LoadPolicy(policyFile)
		if err != nil {
			return err
		}
		policy = p
	}
	if sbomFormat != "" && sbomFormat != scan.CycloneDXJSON && sbomFormat != scan.SPDXJSON {
		return fmt.Errorf("--sbom %q: want %s or %s", sbomFormat, scan.CycloneDXJSON, scan.SPDXJSON)
	}
	db, bs, err := g.openStores(ctx)
	if err != nil {
		return err
	}
	defer db.Close()

	img := scan.Image{}
	if rootfs == "" {
		is := images.NewStore(db, bs, filepath.Join(g.dataDir, "cache"))
		im, err := is.Get(ctx, args[0])
		if err != nil {
			return err
		}
		dir, release, err := is.Rootfs(ctx, im)
		if err != nil {
			return err
		}
		defer release()
		rootfs, img.ID = dir, im.ID
	} else if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
		return fmt.Errorf("--rootfs %s: not a directory", rootfs)
	}

	s := scan.New(vulndb.New(db), scan.Options{Policy: policy, ToolVersion: version})
	r, err := s.Scan(ctx, rootfs, img)
	if err != nil {
		return err
	}
	if sbomOut != "" {
		if err := writeSBOM(r, sbomFormat, sbomOut); err != nil {
			return err
		}
	}
	out := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printReport(out, r)
	}
	if r.Status == scan.IssuesFound {
		return scanIssues(r)
	}
	return nil
}

// writeSBOM writes through a temporary file so a failed scan never leaves
// half an SBOM behind.
func writeSBOM(r *scan.Report, format, file string) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".sbom-*")
	if err != nil {
		return fmt.Errorf("write SBOM: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := r.EncodeSBOM(tmp, format); err != nil {
		tmp.Close()
		return fmt.Errorf("write SBOM: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// locations shows where a package was found: its first location, and how
// many more there are.
func locations(ls []string) string {
	switch len(ls) {
	case 0:
		return ""
	case 1:
		return ls[0]
	}
	return fmt.Sprintf("%s (+%d more)", ls[0], len(ls)-1)
}

func printReport(w io.Writer, r *scan.Report) {
	name := r.ImageID
	if name == "" {
		name = "root filesystem"
	}
	fmt.Fprintf(w, "%s: %s (%s), %d packages\n", name, dash(r.OS.Name), dash(r.OS.Ecosystem), r.Packages)
	fmt.Fprintf(w, "vulnerability database: %d records, newest modified %s\n", r.VulnDB.Records, r.VulnDB.NewestModified.Format(time.DateOnly))
	// Vulnerabilities are counted once per group (records of one
	// vulnerability in one package); a report stored before reports had
	// groups gets them here.
	groups, c := r.Groups, r.Counts
	if groups == nil && len(r.Vulnerabilities) > 0 {
		groups = scan.Grouped(r.Vulnerabilities)
		c = scan.Counts{Records: len(r.Vulnerabilities), Vulnerabilities: len(groups)}
		for _, g := range groups {
			switch g.Severity {
			case scan.Critical:
				c.Critical++
			case scan.High:
				c.High++
			case scan.Medium:
				c.Medium++
			case scan.Low:
				c.Low++
			default:
				c.Unknown++
			}
			if g.FixedVersion != "" {
				c.Fixable++
			}
		}
	}
	records := ""
	if c.Records != len(groups) {
		records = fmt.Sprintf(" from %d records", c.Records)
	}
	fmt.Fprintf(w, "\nvulnerabilities: %d (Critical %d, High %d, Medium %d, Low %d, Unknown %d)%s; %d with a fix available\n",
		len(groups), c.Critical, c.High, c.Medium, c.Low, c.Unknown, records, c.Fixable)
	if len(groups) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tSEVERITY\tPACKAGE\tSOURCE\tINSTALLED\tFIXED\tLOCATION")
		for _, g := range groups {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", strings.Join(g.IDs, ", "), g.Severity, g.Package, g.SourcePackage, g.InstalledVersion, dash(g.FixedVersion), dash(locations(g.Locations)))
		}
		tw.Flush()
	}
	if len(r.Upgrades) > 0 {
		fmt.Fprintln(w, "\nupgrades:")
		for _, u := range r.Upgrades {
			where := ""
			if len(u.Locations) > 0 {
				where = " (" + locations(u.Locations) + ")"
			}
			if u.FixedVersion != "" {
				fmt.Fprintf(w, "  %s %s%s: upgrade to %s to fix all %d\n", u.Package, u.InstalledVersion, where, u.FixedVersion, u.Vulnerabilities)
			} else {
				fmt.Fprintf(w, "  %s %s%s: no single version fixes all %d (some have no fix yet)\n", u.Package, u.InstalledVersion, where, u.Vulnerabilities)
			}
		}
	}
	fmt.Fprintln(w, "\nimage policy checks:")
	for _, c := range r.Policy {
		mark := "pass"
		if !c.Passed {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s  %s\n", mark, c.Rule, c.Message)
		for _, e := range c.Evidence {
			fmt.Fprintf(w, "         %s\n", e)
		}
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if len(r.Allowed) > 0 {
		fmt.Fprintln(w, "\naccepted by the policy's allow list:")
		for _, a := range r.Allowed {
			fmt.Fprintf(w, "  %s %s: %s (until %s)\n", a.Rule, a.ID, a.AllowReason, a.Expires)
		}
	}
	if len(r.Violations) > 0 {
		fmt.Fprintln(w, "\npolicy violations:")
		for _, v := range r.Violations {
			if v.ID == v.Rule {
				fmt.Fprintf(w, "  %s: %s\n", v.Rule, v.Reason)
			} else {
				fmt.Fprintf(w, "  %s %s: %s\n", v.Rule, v.ID, v.Reason)
			}
		}
	}
	if c.UnknownIgnored > 0 {
		fmt.Fprintf(w, "\nnot judged: %d vulnerability group(s) of Unknown severity that the policy would otherwise fail on (unknown_severity: ignore; set it to low, medium, high or critical to judge them)\n",
			c.UnknownIgnored)
	}
	status := "Successful"
	if r.Status == scan.IssuesFound {
		status = "Issues found"
	}
	fmt.Fprintf(w, "\nstatus: %s\n", status)
}

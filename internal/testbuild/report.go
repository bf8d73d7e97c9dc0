//go:build linux

package testbuild

import (
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/scan"
)

// BuildReport is the report a test build keeps (the "build" of GET
// /v1/builds/{id}/report): what the installer did. Sellers read it, so it
// names no host path — not the log's (the log is stored with the build and
// served by GET /v1/builds/{id}/log) nor a kept upper directory's.
type BuildReport struct {
	// ExitCode is the installer's exit status, -1 when it did not exit on
	// its own (killed, timed out, reboot).
	ExitCode int               `json:"exit_code"`
	Signal   string            `json:"signal,omitempty"`
	Findings []sandbox.Finding `json:"findings"`
	Changes  sandbox.Changes   `json:"changed_files"`
	// Reproducible compares the layer the build made with the previous
	// build's of the same inputs; absent when the build made no image
	// (and in pib build's local reports, which have no earlier builds).
	Reproducible *Reproducibility `json:"reproducible,omitempty"`
	// BootTest is the boot test's result (V1–V3), when the OS version has
	// it on and the install passed.
	BootTest *BootReport `json:"boot_test,omitempty"`
	// Backend is "vm" for a build that ran in a machine (absent: the
	// sandbox); MachineBootSeconds is how long its machine took to boot
	// to the agent.
	Backend            string  `json:"backend,omitempty"`
	MachineBootSeconds float64 `json:"machine_boot_seconds,omitempty"`
}

// NewBuildReport is the report of a sandbox run.
func NewBuildReport(res *sandbox.Result) *BuildReport {
	r := &BuildReport{ExitCode: res.ExitCode, Signal: res.Signal, Findings: res.Findings, Changes: res.Changes}
	if r.Findings == nil {
		r.Findings = []sandbox.Finding{}
	}
	return r
}

// ScanReport is the scan report a build keeps (the "scan" of GET
// /v1/builds/{id}/report): the scanner's report plus the digests of its
// SBOMs in the blob store, by format, which GET /v1/builds/{id}/sbom
// serves. Scans keep scan.SyftJSON only (package sboms makes the others
// from it); builds scanned before that kept scan.CycloneDXJSON and
// scan.SPDXJSON.
type ScanReport struct {
	*scan.Report
	SBOMs map[string]string `json:"sboms"`
}

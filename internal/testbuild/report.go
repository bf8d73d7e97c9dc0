package testbuild

import (
	"github.com/pib-dev/pib/internal/scan"
)

// ScanReport is the scan report a build keeps (the "scan" of GET
// /v1/builds/{id}/report): the scanner's report plus the digests of its
// SBOMs in the blob store, by format (scan.CycloneDXJSON, scan.SPDXJSON),
// which GET /v1/builds/{id}/sbom serves.
type ScanReport struct {
	*scan.Report
	SBOMs map[string]string `json:"sboms"`
}

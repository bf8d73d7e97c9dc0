package testbuild_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/testbuild"
)

// TestScanReportShape: the stored scan report is the scanner's report
// with "sboms" beside its fields, and reads back the same.
func TestScanReportShape(t *testing.T) {
	in := testbuild.ScanReport{
		Report: &scan.Report{ImageID: "img-00000000000000001", Status: scan.Successful, Packages: 3},
		SBOMs:  map[string]string{scan.CycloneDXJSON: "sha256:" + strings.Repeat("1", 64)},
	}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"image_id", "status", "sboms"} {
		if _, ok := fields[name]; !ok {
			t.Errorf("no %q at the top level of %s", name, data)
		}
	}
	var back testbuild.ScanReport
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(data), string(again)); diff != "" || back.ImageID != in.ImageID || len(back.SBOMs) != 1 {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

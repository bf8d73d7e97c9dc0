package loadform_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/problem"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite the seed corpus in testdata/fuzz/FuzzParse")

// fuzzLimits keep one input's cost small: a fuzzer mutating a zip mostly
// produces damaged zips, and the limits are what bound the rest.
var fuzzLimits = loadform.Limits{MaxBytes: 64 << 10, MaxUncompressed: 1 << 20, MaxEntries: 64, MaxRows: 20, MaxCells: 2000}

// FuzzParse: no input panics Parse, and every refusal is a *problem.Error
// (the caller's to fix), never a plain error that would read as pib failing.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		form, err := loadform.Parse(bytes.NewReader(b), int64(len(b)), fuzzLimits)
		if err == nil {
			if form == nil || len(form.Rows) == 0 {
				t.Fatalf("accepted a form without rows: %+v", form)
			}
			return
		}
		var pe *problem.Error
		if !errors.As(err, &pe) || pe.Code == "" || pe.Code == problem.Internal {
			t.Fatalf("Parse error is not the caller's: %v", err)
		}
	})
}

// TestWriteSeeds writes the seed corpus with -write-seeds: small valid and
// invalid forms, so that the fuzzer starts inside the format.
func TestWriteSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to rewrite testdata/fuzz/FuzzParse")
	}
	seeds := map[string][]byte{
		"valid":      fill(t, []row{newProduct(), newVersion(), addOption()}, nil),
		"template":   template(t),
		"bad-fields": fill(t, []row{newProduct().with(loadform.ColVersionTitle, ""), addOption().with(loadform.ColPlatform, "mac")}, nil),
		"text":       []byte("Request type,Product ID\n"),
		"ole":        append([]byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}, make([]byte, 512)...),
		"empty-zip":  []byte("PK\x05\x06" + string(make([]byte, 18))),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	must(t, os.MkdirAll(dir, 0o755))
	for name, b := range seeds {
		must(t, os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644))
	}
}

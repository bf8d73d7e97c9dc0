package loadform_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/loadform"
)

// soffice runs LibreOffice headless on file with a private profile, writing
// into outdir; it skips without LibreOffice (scripts/deps.sh test installs
// Debian's libreoffice-calc-nogui), and fails in CI, where it must run.
func soffice(t *testing.T, outdir, file string, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("soffice")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("LibreOffice (soffice) is not installed; scripts/deps.sh test installs libreoffice-calc-nogui")
		}
		t.Skip("LibreOffice (soffice) is not installed: run scripts/deps.sh test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	profile := "file://" + filepath.Join(t.TempDir(), "profile")
	argv := append([]string{"-env:UserInstallation=" + profile, "--headless", "--norestore"}, args...)
	argv = append(argv, "--outdir", outdir, file)
	out, err := exec.CommandContext(ctx, bin, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("soffice %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// LibreOffice reads the form as a spreadsheet: each sheet to CSV (filter
// option 12 = -1: every sheet, one file each), then the Instructions text
// and the Products header row are what pib wrote.
func TestLibreOfficeReadsTemplate(t *testing.T) {
	dir := t.TempDir()
	form := filepath.Join(dir, "form.xlsx")
	must(t, os.WriteFile(form, template(t), 0o600))
	soffice(t, dir, form, "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1")

	products := readCSV(t, filepath.Join(dir, "form-Products.csv"))
	var want []string
	for _, c := range loadform.Columns {
		want = append(want, string(c))
	}
	if len(products) == 0 {
		t.Fatal("Products sheet is empty in LibreOffice")
	}
	if diff := cmp.Diff(want, products[0]); diff != "" {
		t.Errorf("Products header in LibreOffice (-want +got):\n%s", diff)
	}
	instr := readCSV(t, filepath.Join(dir, "form-Instructions.csv"))
	if len(instr) == 0 || instr[0][0] != "pib product load form" {
		t.Fatalf("Instructions start with %q", instr)
	}
	var text strings.Builder
	for _, r := range instr {
		text.WriteString(strings.Join(r, "|") + "\n")
	}
	for _, s := range []string{
		"Fill in the Products sheet, one row per request",
		"D|Version title|",
		"|1–100 characters|required|required|required",
		"new product|A new product with its first version",
		"Example row (a new product)",
	} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("Instructions in LibreOffice lack %q:\n%s", s, text.String())
		}
	}
	groups := readCSV(t, filepath.Join(dir, "form-Package groups.csv"))
	if len(groups) != 3 || groups[1][0] != "AcmeShipper241linux1" {
		t.Errorf("Package groups in LibreOffice = %q", groups)
	}
}

// A form filled in and saved again by LibreOffice is accepted, with the
// same rows.
func TestLibreOfficeSavedFormParses(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	filled := fill(t, []row{newProduct(), newVersion(), addOption()}, nil)
	form := filepath.Join(dir, "form.xlsx")
	must(t, os.WriteFile(form, filled, 0o600))
	soffice(t, out, form, "--convert-to", "xlsx:Calc MS Excel 2007 XML")
	saved, err := os.ReadFile(filepath.Join(out, "form.xlsx"))
	must(t, err)
	if bytes.Equal(saved, filled) {
		t.Fatal("LibreOffice did not rewrite the form")
	}
	want, err := parse(filled)
	must(t, err)
	got, err := parse(saved)
	if err != nil {
		t.Fatalf("Parse of the form saved by LibreOffice: %v %+v", err, details(err))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("form saved by LibreOffice (-excelize +LibreOffice):\n%s", diff)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	must(t, err)
	return recs
}

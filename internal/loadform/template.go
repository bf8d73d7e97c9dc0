//go:build linux

package loadform

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/xuri/excelize/v2"
)

// example is the example row of the Instructions sheet, by column.
var example = map[Column]string{
	ColRequest:          string(NewProduct),
	ColProductTitle:     "Acme Log Shipper",
	ColVersionTitle:     "2.4.1",
	ColReleaseNotes:     "Adds TLS 1.3 and a smaller memory footprint.",
	ColUsage:            "Edit /etc/acme/shipper.conf, then run systemctl start acme-shipper.",
	ColPackageGroup:     "AcmeLogShipper241linux1",
	ColPlatform:         "linux",
	ColShortDescription: "Ships system and application logs to your collector.",
	ColLongDescription:  "Acme Log Shipper tails system and application logs and ships them, compressed and encrypted, to your log collector.",
	ColHighlights:       "Small footprint\nTLS 1.3\nNo agent to manage",
	ColCategory:         "Monitoring",
	ColSupportContact:   "support@acme.example",
	ColEULAURL:          "https://acme.example/eula",
	ColLogoURL:          "https://acme.example/logo.png",
	ColTestAccounts:     "acme-qa, acme-sales",
}

// Template writes an empty load form (SPEC L1): the Instructions sheet
// first, then Products (header, drop-downs, comments, a frozen header) and
// the Package groups reference sheet listing groups. categories fills the
// category drop-down; nil means Categories, and any other list must be
// part of Categories, the list Parse accepts.
func Template(w io.Writer, groups []GroupRef, categories []string) error {
	if len(categories) == 0 {
		categories = Categories
	}
	for _, k := range categories {
		if !slices.Contains(Categories, k) {
			return fmt.Errorf("load form template: category %q is not one Parse accepts (loadform.Categories)", k)
		}
	}
	xf := excelize.NewFile()
	defer xf.Close()
	t := &templ{f: xf}
	t.rename("Sheet1", InstructionsSheet)
	t.newSheet(ProductsSheet)
	t.newSheet(GroupsSheet)
	t.instructions()
	t.products(len(groups), categories)
	t.groups(groups)
	xf.SetActiveSheet(0)
	if t.err != nil {
		return fmt.Errorf("load form template: %w", t.err)
	}
	if err := xf.Write(w); err != nil {
		return fmt.Errorf("load form template: %w", err)
	}
	return nil
}

// templ keeps the first error of a run of excelize calls, so that the
// sheets read as the lists of cells they are.
type templ struct {
	f   *excelize.File
	err error
}

func (t *templ) do(err error) {
	if t.err == nil {
		t.err = err
	}
}

func (t *templ) rename(from, to string) { t.do(t.f.SetSheetName(from, to)) }

func (t *templ) newSheet(name string) {
	_, err := t.f.NewSheet(name)
	t.do(err)
}

func (t *templ) style(s *excelize.Style) int {
	id, err := t.f.NewStyle(s)
	t.do(err)
	return id
}

func (t *templ) set(sheet string, col, row int, v any, style int) {
	ref, err := excelize.CoordinatesToCellName(col, row)
	t.do(err)
	t.do(t.f.SetCellValue(sheet, ref, v))
	if style != 0 {
		t.do(t.f.SetCellStyle(sheet, ref, ref, style))
	}
}

func (t *templ) header(sheet string, cols ...string) {
	bold := t.style(&excelize.Style{
		Font:      &excelize.Font{Bold: true, Color: "FFFFFF"},
		Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"1F4E79"}},
		Alignment: &excelize.Alignment{Vertical: "center", WrapText: true},
	})
	for i, c := range cols {
		t.set(sheet, i+1, 1, c, bold)
	}
	t.do(t.f.SetPanes(sheet, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}))
}

func (t *templ) instructions() {
	s := InstructionsSheet
	title := t.style(&excelize.Style{Font: &excelize.Font{Bold: true, Size: 14}})
	bold := t.style(&excelize.Style{Font: &excelize.Font{Bold: true}, Alignment: &excelize.Alignment{Vertical: "top", WrapText: true}})
	wrap := t.style(&excelize.Style{Alignment: &excelize.Alignment{Vertical: "top", WrapText: true}})
	row := 1
	line := func(text string, style int) {
		t.set(s, 1, row, text, style)
		row++
	}
	line("pib product load form", title)
	line("Fill in the "+ProductsSheet+" sheet, one row per request, from row 2 on; keep its header row and column order. Type values, not formulas. "+
		"Upload the form with pib load-form submit form.xlsx: every row becomes one change request that an operator reviews (rule L2). "+
		"A form with mistakes is refused as a whole, with every mistake named by its cell (e.g. Products!D7).", wrap)
	line("Only the "+ProductsSheet+" sheet is read; other sheets are ignored, with a warning. Save as Excel Workbook (.xlsx): macro-enabled, encrypted or .xls files are refused.", wrap)
	row++

	line("Request types", bold)
	for _, q := range Requests {
		t.set(s, 1, row, string(q), bold)
		t.set(s, 2, row, requestInfo[q], wrap)
		t.do(t.f.MergeCell(s, fmt.Sprintf("B%d", row), fmt.Sprintf("G%d", row)))
		row++
	}
	row++

	line("Columns", bold)
	heads := []string{"Column", "Header", "Meaning", "Allowed values and limits"}
	for _, q := range Requests {
		heads = append(heads, string(q))
	}
	for i, h := range heads {
		t.set(s, i+1, row, h, bold)
	}
	row++
	for _, f := range fields {
		vals := []string{f.col.Letter(), string(f.col), f.meaning, f.allowed}
		for _, q := range Requests {
			vals = append(vals, f.need[q].String())
		}
		for i, v := range vals {
			t.set(s, i+1, row, v, wrap)
		}
		row++
	}
	row++

	line("Example row (a new product)", bold)
	for i, col := range Columns {
		t.set(s, i+1, row, string(col), bold)
		t.set(s, i+1, row+1, example[col], wrap)
	}
	for i, width := range []float64{24, 22, 60, 44, 16, 16, 22} {
		c, _ := excelize.ColumnNumberToName(i + 1)
		t.do(t.f.SetColWidth(s, c, c, width))
	}
	c, _ := excelize.ColumnNumberToName(len(Columns))
	t.do(t.f.SetColWidth(s, "H", c, 18))
}

func (t *templ) products(groups int, categories []string) {
	s := ProductsSheet
	heads := make([]string, len(Columns))
	for i, c := range Columns {
		heads[i] = string(c)
	}
	t.header(s, heads...)
	t.do(t.f.SetRowHeight(s, 1, 30))
	// Text format keeps "1.10" a version, not the number 1.1.
	text := t.style(&excelize.Style{NumFmt: 49, Alignment: &excelize.Alignment{Vertical: "top"}})
	textWrap := t.style(&excelize.Style{NumFmt: 49, Alignment: &excelize.Alignment{Vertical: "top", WrapText: true}})
	for _, f := range fields {
		l := f.col.Letter()
		t.do(t.f.SetColWidth(s, l, l, f.width))
		st := text
		if f.multiline {
			st = textWrap
		}
		t.do(t.f.SetColStyle(s, l, st))
		var need []string
		for _, q := range Requests {
			need = append(need, fmt.Sprintf("%s: %s", q, f.need[q]))
		}
		t.do(t.f.AddComment(s, excelize.Comment{Author: "pib", Cell: l + "1",
			Text:  fmt.Sprintf("%s\n%s.\n%s", f.meaning, capitalise(f.allowed), strings.Join(need, "; ")),
			Width: 320, Height: 160}))
	}
	// Re-style the header over the column styles.
	t.header(s, heads...)

	last := DefaultLimits.MaxRows + 1
	list := func(col Column, values []string, style excelize.DataValidationErrorStyle, msg string) {
		dv := excelize.NewDataValidation(true)
		dv.Sqref = fmt.Sprintf("%s2:%s%d", col.Letter(), col.Letter(), last)
		t.do(dv.SetDropList(values))
		dv.SetError(style, string(col), msg)
		t.do(t.f.AddDataValidation(s, dv))
	}
	reqs := make([]string, len(Requests))
	for i, q := range Requests {
		reqs[i] = string(q)
	}
	list(ColRequest, reqs, excelize.DataValidationErrorStyleStop, "Pick new product, new version or add fulfillment option.")
	list(ColPlatform, Platforms, excelize.DataValidationErrorStyleStop, "Pick linux or windows.")
	list(ColCategory, categories, excelize.DataValidationErrorStyleStop, "Pick a category from the list.")
	if groups > 0 {
		// A warning, not a stop: a group that became Successful after the
		// download may be typed in.
		dv := excelize.NewDataValidation(true)
		g := ColPackageGroup.Letter()
		dv.Sqref = fmt.Sprintf("%s2:%s%d", g, g, last)
		dv.SetSqrefDropList(fmt.Sprintf("'%s'!$A$2:$A$%d", GroupsSheet, groups+1))
		dv.SetError(excelize.DataValidationErrorStyleWarning, string(ColPackageGroup), "This package group is not on the Package groups sheet: check the name.")
		t.do(t.f.AddDataValidation(s, dv))
	}
}

func (t *templ) groups(groups []GroupRef) {
	s := GroupsSheet
	t.header(s, "Name", "Platform", "OS versions", "Software version")
	for i, g := range groups {
		t.set(s, 1, i+2, g.Name, 0)
		t.set(s, 2, i+2, g.Platform, 0)
		t.set(s, 3, i+2, strings.Join(g.OSVersions, ", "), 0)
		t.set(s, 4, i+2, g.SoftwareVersion, 0)
	}
	if len(groups) == 0 {
		t.set(s, 1, 2, "(no Successful package groups yet: create one with pib groups create and wait for its builds)", 0)
	}
	for col, width := range map[string]float64{"A": 32, "B": 12, "C": 40, "D": 18} {
		t.do(t.f.SetColWidth(s, col, col, width))
	}
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

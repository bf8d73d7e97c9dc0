//go:build linux

package loadform

import (
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"

	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/problem"
)

// xmlInMemory is what excelize keeps of one worksheet in memory; a larger
// one goes to a temporary file while it is read.
const xmlInMemory = 16 << 20

// Parse reads an uploaded load form: the checks of checkArchive first, then
// the Products sheet, field by field (doc.go lists what is and is not
// checked here). A form with any field error returns ErrInvalid with one
// problem.Detail per cell and no Form; other failures return the
// ErrNotWorkbook, ErrEncrypted, ErrMacroEnabled or ErrTooLarge kinds. An
// error without a problem code means pib failed (a temporary file).
func Parse(r io.ReaderAt, size int64, lim Limits) (*Form, error) {
	lim = lim.orDefault()
	if err := checkArchive(r, size, lim); err != nil {
		return nil, err
	}
	xf, err := excelize.OpenReader(io.NewSectionReader(r, 0, size), excelize.Options{
		UnzipSizeLimit:    lim.MaxUncompressed,
		UnzipXMLSizeLimit: min(xmlInMemory, lim.MaxUncompressed),
	})
	if err != nil {
		e := ErrNotWorkbook.Errorf("not a readable .xlsx workbook: save the form as Excel Workbook (.xlsx) and upload it again")
		e.Err = err
		return nil, e
	}
	defer xf.Close()

	form := &Form{}
	sheet := ""
	for _, name := range xf.GetSheetList() {
		switch {
		case name == ProductsSheet || sheet == "" && strings.EqualFold(name, ProductsSheet):
			sheet = name
		case strings.EqualFold(name, InstructionsSheet) || strings.EqualFold(name, GroupsSheet) || strings.EqualFold(name, ProductsSheet):
		default:
			form.Warnings = append(form.Warnings, fmt.Sprintf("sheet %q is not part of the load form and was ignored: only the %s sheet is read", name, ProductsSheet))
		}
	}
	if sheet == "" {
		return nil, invalid([]problem.Detail{{Field: ProductsSheet, Rule: "L1",
			Message: fmt.Sprintf("the workbook has no %s sheet: download a fresh form (pib load-form download) and fill in its %s sheet", ProductsSheet, ProductsSheet)}})
	}
	cells, err := readCells(xf, sheet, lim)
	if err != nil {
		return nil, err
	}
	var c checker
	c.formulas(xf, sheet, cells)
	if c.header(cells) {
		c.rows(form, cells)
	}
	if len(c.details) > 0 {
		return nil, invalid(c.details)
	}
	return form, nil
}

func invalid(details []problem.Detail) error {
	msg := fmt.Sprintf("%d problems in the load form; each is listed in details", len(details))
	if len(details) == 1 {
		msg = "1 problem in the load form; it is listed in details"
	}
	e := ErrInvalid.Errorf("%s", msg)
	e.Details = details
	return e
}

// sheetCells is the Products sheet as read: lines[i] is sheet row i+1, its
// values for columns A..P (formatted as the spreadsheet shows them), and
// extra the first non-empty cell past P per row, if any.
type sheetCells struct {
	lines [][]string
	width []int // how many cells excelize returned per row, formulas included
	extra map[int]int
}

func readCells(xf *excelize.File, sheet string, lim Limits) (*sheetCells, error) {
	rows, err := xf.Rows(sheet)
	if err != nil {
		return nil, notReadable(err)
	}
	defer rows.Close()
	sc := &sheetCells{extra: map[int]int{}}
	for line := 1; rows.Next(); line++ {
		vals, err := rows.Columns()
		if err != nil {
			return nil, notReadable(err)
		}
		if line > lim.MaxRows+1 {
			if slices.ContainsFunc(vals, func(v string) bool { return strings.TrimSpace(v) != "" }) {
				return nil, ErrTooLarge.Errorf("%s!A%d: a load form takes at most %d rows: split the rows over several forms", ProductsSheet, line, lim.MaxRows)
			}
			continue
		}
		for i := len(Columns); i < len(vals); i++ {
			if strings.TrimSpace(vals[i]) != "" {
				sc.extra[line] = i
				break
			}
		}
		for len(sc.lines) < line-1 {
			sc.lines, sc.width = append(sc.lines, nil), append(sc.width, 0)
		}
		w := min(len(vals), len(Columns))
		vals = append(vals[:w:w], make([]string, len(Columns)-w)...)
		sc.lines, sc.width = append(sc.lines, vals), append(sc.width, w)
	}
	if err := rows.Error(); err != nil {
		return nil, notReadable(err)
	}
	return sc, nil
}

func notReadable(err error) error {
	e := ErrNotWorkbook.Errorf("the %s sheet cannot be read: save the form as Excel Workbook (.xlsx) and upload it again", ProductsSheet)
	e.Err = err
	return e
}

type checker struct{ details []problem.Detail }

func (c *checker) add(field, rule, format string, args ...any) {
	c.details = append(c.details, problem.Detail{Field: field, Rule: rule, Message: fmt.Sprintf(format, args...)})
}

// formulas refuses a formula in any cell of A..P: the form takes values,
// and a cached formula result is whatever the last program to save the
// file wrote there.
func (c *checker) formulas(xf *excelize.File, sheet string, sc *sheetCells) {
	for i, w := range sc.width {
		for col := range w {
			ref := fmt.Sprintf("%c%d", 'A'+col, i+1)
			formula, err := xf.GetCellFormula(sheet, ref)
			if err != nil || formula == "" {
				continue
			}
			formula = strings.TrimPrefix(formula, "=") // as stored, unlike some writers
			if utf8.RuneCountInString(formula) > 40 {
				formula = string([]rune(formula)[:40]) + "…"
			}
			c.add(ProductsSheet+"!"+ref, "L1", "a formula (=%s) where a value is expected: type the value itself (copy the cell, then paste values only)", formula)
		}
	}
}

// header checks row 1 and reports whether it is the form's.
func (c *checker) header(sc *sheetCells) bool {
	n := len(c.details)
	var got []string
	if len(sc.lines) > 0 {
		got = sc.lines[0]
	}
	for i, col := range Columns {
		v := ""
		if got != nil {
			v = strings.TrimSpace(got[i])
		}
		switch {
		case headerKey(v) == headerKey(string(col)):
		case v == "":
			c.add(cell(1, col), "L1", "expected the header %q here; the cell is empty: download a fresh form (pib load-form download) and copy your rows into it", col)
		default:
			c.add(cell(1, col), "L1", "expected the header %q here, found %q: columns must stay in the form's order; download a fresh form (pib load-form download) and copy your rows into it", col, v)
		}
	}
	return len(c.details) == n
}

func (c *checker) rows(form *Form, sc *sheetCells) {
	seen := map[string]int{}
	for i := 1; i < len(sc.lines); i++ {
		line := i + 1
		if col, ok := sc.extra[line]; ok {
			ref, _ := excelize.CoordinatesToCellName(col+1, line)
			c.add(ProductsSheet+"!"+ref, "L1", "a value past the last column (%s, %s): the form has columns A to P only; move or delete it",
				Columns[len(Columns)-1].Letter(), Columns[len(Columns)-1])
		}
		vals := sc.lines[i]
		if !slices.ContainsFunc(vals, func(v string) bool { return strings.TrimSpace(v) != "" }) {
			continue
		}
		row, ok := c.row(line, vals)
		if !ok {
			continue
		}
		if key, col, what := row.key(); key != "" {
			if first, dup := seen[key]; dup {
				c.add(cell(line, col), "L1", "duplicates row %d (the same %s): delete one of the two rows", first, what)
				continue
			}
			seen[key] = line
		}
		form.Rows = append(form.Rows, row)
	}
	if len(form.Rows) == 0 && len(c.details) == 0 {
		c.add(cell(2, ColRequest), "L1", "the form has no rows: fill in at least one row from row 2 on")
	}
}

// key identifies what a row adds, for the duplicate check.
func (r Row) key() (key string, at Column, what string) {
	lower := strings.ToLower
	switch r.Request {
	case NewProduct:
		return "p\x00" + lower(r.ProductTitle), ColProductTitle, "product title"
	case NewVersion:
		return "v\x00" + r.ProductID + "\x00" + lower(r.VersionTitle), ColVersionTitle, "product ID and version title"
	case AddOption:
		return "o\x00" + r.ProductID + "\x00" + lower(r.VersionTitle) + "\x00" + lower(r.PackageGroup), ColPackageGroup, "product ID, version title and package group"
	}
	return "", "", ""
}

var (
	productIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	// The pattern of internal/accounts (Store.Create), which does not
	// export it.
	accountPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// row checks one non-empty row; ok is false if any of its cells is wrong.
func (c *checker) row(line int, vals []string) (Row, bool) {
	n := len(c.details)
	get := func(col Column) string {
		v := strings.ReplaceAll(vals[slices.Index(Columns, col)], "\r\n", "\n")
		return strings.TrimSpace(v)
	}
	r := Row{Line: line}

	req := get(ColRequest)
	for _, q := range Requests {
		if strings.EqualFold(req, string(q)) {
			r.Request = q
		}
	}
	switch {
	case req == "":
		c.add(cell(line, ColRequest), "L1", "request type is required: pick new product, new version or add fulfillment option")
	case r.Request == "":
		c.add(cell(line, ColRequest), "L1", "request type %q is not one of new product, new version, add fulfillment option: pick one from the drop-down", req)
	}

	for _, f := range fields[1:] {
		v := get(f.col)
		at := cell(line, f.col)
		if r.Request != "" {
			switch nd := f.need[r.Request]; {
			case nd == required && v == "":
				c.add(at, "L1", "%s is required (%s)", f.name, f.allowed)
				continue
			case nd == unused && v != "":
				c.add(at, "L1", "%s is not used in a %q row: leave the cell empty", f.name, r.Request)
				continue
			}
		}
		if v == "" {
			continue
		}
		if msg := c.value(&r, f, v); msg != "" {
			c.add(at, ruleOf(f.col), "%s", msg)
		}
	}
	return r, len(c.details) == n
}

func ruleOf(col Column) string {
	if col == ColPackageGroup {
		return "N1"
	}
	return "L1"
}

// value checks one non-empty cell and stores it in r; it returns what is
// wrong, or "".
func (c *checker) value(r *Row, f field, v string) string {
	if !utf8.ValidString(v) {
		return fmt.Sprintf("%s is not valid text: type it again", f.name)
	}
	if bad := strings.IndexFunc(v, func(ch rune) bool {
		return unicode.IsControl(ch) && !(f.multiline && (ch == '\n' || ch == '\t'))
	}); bad >= 0 {
		if f.multiline {
			return fmt.Sprintf("%s holds a control character (%U): delete it", f.name, []rune(v[bad:])[0])
		}
		return fmt.Sprintf("%s must be one line, without control characters (%s)", f.name, f.allowed)
	}
	length := func(limit int) string {
		if n := utf8.RuneCountInString(v); n > limit {
			return fmt.Sprintf("%s is %d characters; the limit is %s: shorten it", f.name, n, thousands(limit))
		}
		return ""
	}
	switch f.col {
	case ColProductID:
		if utf8.RuneCountInString(v) > MaxProductID || !productIDPattern.MatchString(v) {
			return fmt.Sprintf("product ID %q is not a product ID (%s): copy it from pib products ls", v, f.allowed)
		}
		r.ProductID = v
	case ColProductTitle:
		r.ProductTitle = v
		return length(MaxProductTitle)
	case ColVersionTitle:
		r.VersionTitle = v
		return length(MaxVersionTitle)
	case ColReleaseNotes:
		r.ReleaseNotes = v
		return length(MaxReleaseNotes)
	case ColUsage:
		r.UsageInstructions = v
		return length(MaxUsage)
	case ColPackageGroup:
		if err := groups.ValidName(v); err != nil {
			return fmt.Sprintf("package group %s", err.Message)
		}
		r.PackageGroup = v
	case ColPlatform:
		lv := strings.ToLower(v)
		if !slices.Contains(Platforms, lv) {
			return fmt.Sprintf("platform %q is not linux or windows: pick one from the drop-down", v)
		}
		r.Platform = lv
	case ColShortDescription:
		r.ShortDescription = v
		return length(MaxShortDescription)
	case ColLongDescription:
		r.LongDescription = v
		return length(MaxLongDescription)
	case ColHighlights:
		for l := range strings.SplitSeq(v, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				r.Highlights = append(r.Highlights, l)
			}
		}
		if len(r.Highlights) > MaxHighlights {
			return fmt.Sprintf("highlights has %d lines; give at most %d, one per line", len(r.Highlights), MaxHighlights)
		}
		for i, h := range r.Highlights {
			if n := utf8.RuneCountInString(h); n > MaxHighlight {
				return fmt.Sprintf("highlight %d is %d characters; the limit is %d: shorten it", i+1, n, MaxHighlight)
			}
		}
	case ColCategory:
		i := slices.IndexFunc(Categories, func(k string) bool { return strings.EqualFold(k, v) })
		if i < 0 {
			return fmt.Sprintf("category %q is not in the list: pick one from the drop-down (%s)", v, strings.Join(Categories, ", "))
		}
		r.Category = Categories[i]
	case ColSupportContact:
		a, err := mail.ParseAddress(v)
		if err != nil || a.Name != "" || a.Address != v || len(v) > MaxEmail {
			return fmt.Sprintf("support contact %q is not an email address: give one like support@example.com (up to %d characters)", v, MaxEmail)
		}
		r.SupportContact = v
	case ColEULAURL, ColLogoURL:
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(v, " \t\n") || len(v) > MaxURL {
			return fmt.Sprintf("%s must be an http:// or https:// address, up to %s characters", f.name, thousands(MaxURL))
		}
		if f.col == ColEULAURL {
			r.EULAURL = v
		} else {
			r.LogoURL = v
		}
	case ColTestAccounts:
		for a := range strings.SplitSeq(v, ",") {
			a = strings.TrimSpace(a)
			if a == "" || slices.Contains(r.TestAccounts, a) {
				continue
			}
			if !accountPattern.MatchString(a) {
				return fmt.Sprintf("test account %q is not an account name (1–63 lower-case letters, digits, _ or -): separate names with commas", a)
			}
			r.TestAccounts = append(r.TestAccounts, a)
		}
		if len(r.TestAccounts) > MaxTestAccounts {
			return fmt.Sprintf("test accounts lists %d accounts; at most %d are allowed", len(r.TestAccounts), MaxTestAccounts)
		}
	}
	return ""
}

// thousands writes n as the messages do: 5,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

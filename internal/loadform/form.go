//go:build linux

package loadform

import (
	"fmt"
	"strings"

	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/problem"
)

// Request is what a row of the Products sheet asks for (SPEC F1–F3).
type Request string

// The three requests, as the seller picks them in column A.
const (
	NewProduct Request = "new product"            // F3
	NewVersion Request = "new version"            // F2
	AddOption  Request = "add fulfillment option" // F1
)

// Requests lists the requests in the order the form offers them.
var Requests = []Request{NewProduct, NewVersion, AddOption}

// Column is a column of the Products sheet, by its header text. Each has a
// fixed letter (Letter): the columns are A to P in the order below.
type Column string

// The columns of the Products sheet, A to P.
const (
	ColRequest          Column = "Request type"       // A
	ColProductID        Column = "Product ID"         // B
	ColProductTitle     Column = "Product title"      // C
	ColVersionTitle     Column = "Version title"      // D
	ColReleaseNotes     Column = "Release notes"      // E
	ColUsage            Column = "Usage instructions" // F
	ColPackageGroup     Column = "Package group"      // G
	ColPlatform         Column = "Platform"           // H
	ColShortDescription Column = "Short description"  // I
	ColLongDescription  Column = "Long description"   // J
	ColHighlights       Column = "Highlights"         // K
	ColCategory         Column = "Category"           // L
	ColSupportContact   Column = "Support contact"    // M
	ColEULAURL          Column = "EULA URL"           // N
	ColLogoURL          Column = "Logo URL"           // O
	ColTestAccounts     Column = "Test accounts"      // P
)

// Columns lists the columns in sheet order: Columns[0] is column A.
var Columns = []Column{
	ColRequest, ColProductID, ColProductTitle, ColVersionTitle, ColReleaseNotes, ColUsage,
	ColPackageGroup, ColPlatform, ColShortDescription, ColLongDescription, ColHighlights,
	ColCategory, ColSupportContact, ColEULAURL, ColLogoURL, ColTestAccounts,
}

// Letter is the column's letter on the Products sheet ("D"), or "" for a
// string that is not one of Columns.
func (c Column) Letter() string {
	for i, col := range Columns {
		if col == c {
			return string(rune('A' + i))
		}
	}
	return ""
}

// Sheet names of the form. Only ProductsSheet is read back by Parse.
const (
	InstructionsSheet = "Instructions"
	ProductsSheet     = "Products"
	GroupsSheet       = "Package groups"
)

// Platforms are the values column H takes (SPEC P3).
var Platforms = []string{"linux", "windows"}

// Categories is the fixed list of product categories (column L): the
// catalog's, so the form offers exactly what a change request accepts.
var Categories = catalog.Categories

// Field limits, in characters (Unicode code points), after surrounding
// spaces are trimmed. Where the catalog checks the same field, the limit is
// the catalog's (one source of truth); the form is stricter only where it
// checks a format (a support contact must be an email address).
const (
	MaxProductID        = 64
	MaxProductTitle     = catalog.MaxTitle
	MaxVersionTitle     = catalog.MaxTitle
	MaxReleaseNotes     = catalog.MaxReleaseNotes
	MaxUsage            = catalog.MaxUsage
	MaxShortDescription = catalog.MaxShortDescription
	MaxLongDescription  = catalog.MaxLongDescription
	MaxHighlights       = catalog.MaxHighlights
	MaxHighlight        = catalog.MaxHighlight
	MaxEmail            = 254
	MaxURL              = catalog.MaxURL
	MaxTestAccounts     = catalog.MaxTestAccounts
)

// Row is one filled row of the Products sheet, trimmed and checked field by
// field. Which fields are set depends on Request (see the Instructions
// sheet); a field the request does not take is empty.
type Row struct {
	Line                                          int // the sheet row (header is row 1, data from row 2)
	Request                                       Request
	ProductID, ProductTitle                       string
	VersionTitle, ReleaseNotes, UsageInstructions string
	PackageGroup, Platform                        string // platform: linux | windows
	ShortDescription, LongDescription             string
	Highlights                                    []string // up to 3, one per line in the cell
	Category                                      string
	SupportContact, EULAURL, LogoURL              string
	TestAccounts                                  []string // account names allowed to test-fulfil (comma separated in the cell)
}

// Form is a parsed load form: its rows in sheet order, and what Parse
// ignored but the seller should know (an extra sheet).
type Form struct {
	Rows     []Row
	Warnings []string
}

// Cell names a cell of the Products sheet as errors show it: "Products!D7".
func (f *Form) Cell(line int, c Column) string { return cell(line, c) }

func cell(line int, c Column) string {
	return fmt.Sprintf("%s!%s%d", ProductsSheet, c.Letter(), line)
}

// GroupRef is a package group listed on the Package groups reference sheet.
type GroupRef struct {
	Name, Platform, SoftwareVersion string
	OSVersions                      []string
}

// Limits bound what Parse reads of an upload, before and while parsing. A
// zero field takes its value from DefaultLimits.
type Limits struct {
	MaxBytes        int64 // the upload itself
	MaxUncompressed int64 // all zip entries together, unpacked
	MaxEntries      int   // zip entries
	MaxRows         int   // data rows of the Products sheet (header not counted)
	MaxCells        int   // <row> and <c> elements in all worksheets together
}

// DefaultLimits fit a form of MaxRows rows at every field's limit with room
// to spare, and bound the memory Parse uses to a few hundred MiB.
var DefaultLimits = Limits{
	MaxBytes:        16 << 20,
	MaxUncompressed: 128 << 20,
	MaxEntries:      1000,
	MaxRows:         1000,
	MaxCells:        200_000,
}

func (l Limits) orDefault() Limits {
	d := DefaultLimits
	if l.MaxBytes > 0 {
		d.MaxBytes = l.MaxBytes
	}
	if l.MaxUncompressed > 0 {
		d.MaxUncompressed = l.MaxUncompressed
	}
	if l.MaxEntries > 0 {
		d.MaxEntries = l.MaxEntries
	}
	if l.MaxRows > 0 {
		d.MaxRows = l.MaxRows
	}
	if l.MaxCells > 0 {
		d.MaxCells = l.MaxCells
	}
	return d
}

// Errors callers test with errors.Is. Parse returns them with the detail of
// one upload (Errorf).
var (
	// ErrInvalid is a form with field errors: Details lists each, by cell.
	ErrInvalid = &problem.Error{Code: problem.Invalid, Rule: "L1", Message: "the load form has problems; each is listed in details"}
	// ErrNotWorkbook is an upload that is not an .xlsx workbook at all.
	ErrNotWorkbook = &problem.Error{Code: problem.Invalid, Rule: "L1", Message: "not an .xlsx workbook: save the form as Excel Workbook (.xlsx) and upload it again"}
	// ErrEncrypted is an OLE container: a password-protected workbook or
	// a legacy .xls.
	ErrEncrypted = &problem.Error{Code: problem.Invalid, Rule: "L1", Message: "encrypted or legacy .xls: save as .xlsx without a password"}
	// ErrMacroEnabled is a workbook that carries macros (.xlsm, a VBA
	// project, Excel 4 macro sheets).
	ErrMacroEnabled = &problem.Error{Code: problem.Invalid, Rule: "L1", Message: "macro-enabled workbook: save the form as Excel Workbook (.xlsx), without macros"}
	// ErrTooLarge is an upload over Limits (bytes, entries, unpacked
	// size, rows, cells).
	ErrTooLarge = &problem.Error{Code: problem.TooLarge, Rule: "L1", Message: "the load form is too large"}
)

// header texts in lower case, for a comparison that forgives case.
func headerKey(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

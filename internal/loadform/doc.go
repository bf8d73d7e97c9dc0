//go:build linux

// Package loadform is the product load form of SPEC L1: the Excel workbook
// (.xlsx) a seller downloads (Template), fills in and uploads (Parse) to
// ask for a new product (F3), a new version (F2) or a package group added
// as a fulfillment option to an existing version (F1).
//
// Why a package of its own: an uploaded workbook is hostile data (T2 in
// spirit: a zip of XML the seller controls), and reading it safely is a job
// apart from deciding what it asks for. This package checks each cell on
// its own; internal/catalog checks the rows against what is stored (the
// product exists and is the seller's, the group is Successful, F1's
// software version, one group per platform…).
//
// The form. Sheet 1, Instructions: each column's meaning, allowed values
// and limits, which request needs it, the request types and an example row.
// Sheet 2, Products: a header row (A Request type, B Product ID, C Product
// title, D Version title, E Release notes, F Usage instructions, G Package
// group, H Platform, I Short description, J Long description, K Highlights,
// L Category, M Support contact, N EULA URL, O Logo URL, P Test accounts),
// drop-downs for A, H and L (and G when groups are listed), a comment on
// each header, frozen header, columns formatted as text so that "1.10"
// stays a version. Sheet 3, Package groups: the seller's groups, for
// reference. The limits are the Max* constants; the fields table in
// fields.go is the one source for the instructions, the header comments
// and the error messages.
//
// What Parse refuses before parsing: an upload over Limits.MaxBytes; an
// OLE container (an encrypted workbook or a legacy .xls: ErrEncrypted);
// anything that is not a zip with an Excel main part (ErrNotWorkbook); a
// macro-enabled workbook, by its content types, a vbaProject part or Excel
// 4 macro sheets (ErrMacroEnabled); more than MaxEntries parts, more than
// MaxUncompressed bytes declared, an entry over 1 MiB that unpacks more
// than 100:1 (ErrTooLarge). Every entry is then streamed to its end through
// archive/zip (which refuses more bytes than declared and a bad CRC), and
// the worksheets' <row> and <c> elements are counted against MaxCells,
// because excelize holds a whole worksheet in memory to read formulas.
// excelize itself opens the file with UnzipSizeLimit = MaxUncompressed and
// UnzipXMLSizeLimit = 16 MiB.
//
// What Parse refuses in the Products sheet, every mistake at once, each as
// a problem.Detail whose Field is the cell ("Products!D7") and whose
// Message says what to do; the whole form then fails as ErrInvalid (rule
// L1; N1 for a bad package group name): a missing, renamed or reordered
// header (named by the header expected; the rows are not checked then); a
// formula in A–P, found by the cell's formula, not its cached value; a
// value past column P; a field a request needs left empty, or one it does
// not take filled in; text over its limit or with control characters;
// an unknown request type, platform or category (compared without regard
// to case, stored as the form spells them); a product ID, package group
// name, email, URL (http or https only) or account name that is not one;
// more than 3 highlights or 20 test accounts; a row that repeats an
// earlier one (the same new product title; the same product and version;
// the same product, version and package group); a form with no rows.
// Empty rows are skipped; a row has as many data rows as MaxRows allows
// (ErrTooLarge past it, naming the first cell beyond).
//
// Extra sheets are ignored, with a warning in Form.Warnings: only Products
// is read, so nothing on another sheet can change what the form asks for,
// and sellers keep notes or working copies beside it. The Instructions and
// Package groups sheets are the form's own and raise no warning.
//
// Limits, candidly:
//   - Values are read as the spreadsheet formats them (what the seller
//     sees), so a number typed into a column the seller re-formatted as a
//     number reads as the number's display ("1.1" for "1.10").
//   - An empty <f/> element (a formula with no text) is not told apart
//     from no formula: excelize returns "" for both.
//   - Hidden rows and columns are read like visible ones; merged cells
//     yield their top-left value only.
//   - Values that start with =, +, - or @ are accepted as text: whoever
//     exports catalog text to a spreadsheet must escape it there.
//   - The upload is held in memory whole, and excelize unpacks every part
//     but large worksheets and the shared strings into memory: Parse's
//     memory is a small multiple of MaxUncompressed.
package loadform

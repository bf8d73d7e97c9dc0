//go:build linux

package loadform

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/dustin/go-humanize"
	"golang.org/x/net/html/charset"
)

// oleMagic starts a Compound File Binary container: a legacy .xls, or an
// .xlsx encrypted with a password (the zip sits inside, encrypted).
var oleMagic = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}

// An entry over ratioFloor bytes unpacked may unpack at most maxRatio times
// its packed size. Real worksheets pack 5–30:1; a zip bomb packs 1000:1.
const (
	maxRatio   = 100
	ratioFloor = 1 << 20
	// contentTypesCap bounds the one part read into memory here.
	contentTypesCap = 1 << 20
)

// checkArchive reads the upload as the hostile zip it may be, before
// excelize sees it: the magic number, the zip directory (entries, declared
// sizes, ratios), the content types (macros), and then every entry
// streamed through a counter, so that a directory that lies about sizes is
// caught too (archive/zip also refuses more bytes than an entry declares,
// and a bad CRC). Worksheets are tokenised on the way to count their rows
// and cells: excelize loads a whole worksheet into memory to read formulas.
func checkArchive(r io.ReaderAt, size int64, lim Limits) error {
	if size > lim.MaxBytes {
		return ErrTooLarge.Errorf("the upload is %s; a load form may be at most %s: split the rows over several forms",
			humanize.IBytes(uint64(size)), humanize.IBytes(uint64(lim.MaxBytes)))
	}
	magic := make([]byte, len(oleMagic))
	if n, _ := r.ReadAt(magic, 0); n == len(magic) && bytes.Equal(magic, oleMagic) {
		return ErrEncrypted.Errorf("encrypted or legacy .xls: save as .xlsx without a password")
	}
	if !bytes.HasPrefix(magic, []byte("PK")) {
		return ErrNotWorkbook.Errorf("not an .xlsx workbook (it is not a zip archive): save the form as Excel Workbook (.xlsx) and upload it again")
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		e := ErrNotWorkbook.Errorf("not an .xlsx workbook (a damaged or unusual zip archive): save the form as Excel Workbook (.xlsx) and upload it again")
		e.Err = err
		return e
	}
	if len(zr.File) > lim.MaxEntries {
		return ErrTooLarge.Errorf("the workbook has %d parts; a load form may have at most %d: save the form again without pictures or extra sheets",
			len(zr.File), lim.MaxEntries)
	}
	var declared uint64
	var contentTypes *zip.File
	for _, f := range zr.File {
		name := strings.ToLower(f.Name)
		declared += f.UncompressedSize64
		if declared > uint64(lim.MaxUncompressed) {
			return ErrTooLarge.Errorf("the workbook unpacks to more than %s; a load form may unpack to at most that: save the form again without pictures or extra sheets",
				humanize.IBytes(uint64(lim.MaxUncompressed)))
		}
		if f.UncompressedSize64 > ratioFloor && f.UncompressedSize64/maxRatio > f.CompressedSize64 {
			return ErrTooLarge.Errorf("workbook part %q unpacks %d times its packed size (at most %d is accepted): refused as a zip bomb",
				f.Name, f.UncompressedSize64/max(f.CompressedSize64, 1), maxRatio)
		}
		if strings.Contains(name, "vbaproject") || strings.HasPrefix(name, "xl/macrosheets/") {
			return ErrMacroEnabled.Errorf("macro-enabled workbook (it holds %q): save the form as Excel Workbook (.xlsx), without macros", f.Name)
		}
		if name == "[content_types].xml" {
			contentTypes = f
		}
	}
	if contentTypes == nil {
		return ErrNotWorkbook.Errorf("not an .xlsx workbook (a zip archive without [Content_Types].xml): save the form as Excel Workbook (.xlsx) and upload it again")
	}
	ct, err := readCapped(contentTypes, contentTypesCap)
	if err != nil {
		return notWorkbook(contentTypes, err)
	}
	// The parts' types are in the Override entries; a Default entry only
	// maps a file extension to a type (excelize's Save maps "bin" to the
	// VBA project type in every workbook it writes) and says nothing about
	// which parts exist — a VBA part itself is refused by name above.
	var types struct {
		Overrides []struct {
			PartName    string `xml:"PartName,attr"`
			ContentType string `xml:"ContentType,attr"`
		} `xml:"Override"`
	}
	if err := xml.Unmarshal(ct, &types); err != nil {
		return notWorkbook(contentTypes, err)
	}
	workbook := false
	for _, o := range types.Overrides {
		t := strings.ToLower(o.ContentType)
		if strings.Contains(t, "macroenabled") || strings.Contains(t, "vbaproject") {
			return ErrMacroEnabled.Errorf("macro-enabled workbook (.xlsm): part %q has a macro content type; save the form as Excel Workbook (.xlsx), without macros", o.PartName)
		}
		workbook = workbook || strings.HasSuffix(t, "spreadsheetml.sheet.main+xml") || strings.HasSuffix(t, "spreadsheetml.template.main+xml")
	}
	if !workbook {
		return ErrNotWorkbook.Errorf("not an Excel workbook (a zip archive of another kind of document): save the form as Excel Workbook (.xlsx) and upload it again")
	}

	cells := 0
	for _, f := range zr.File {
		if f == contentTypes {
			continue
		}
		worksheet := path.Dir(strings.ToLower(f.Name)) == "xl/worksheets" && strings.HasSuffix(strings.ToLower(f.Name), ".xml")
		n, err := drain(f, worksheet, lim.MaxCells-cells)
		cells += n
		if errors.Is(err, errTooManyCells) {
			return ErrTooLarge.Errorf("the worksheets hold more than %d rows and cells; a load form has at most %d rows: delete unused rows and columns, or split the rows over several forms",
				lim.MaxCells, lim.MaxRows)
		}
		if err != nil {
			return notWorkbook(f, err)
		}
	}
	return nil
}

func notWorkbook(f *zip.File, err error) error {
	e := ErrNotWorkbook.Errorf("not a readable .xlsx workbook (part %q is damaged): save the form as Excel Workbook (.xlsx) and upload it again", f.Name)
	e.Err = err
	return e
}

func readCapped(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", f.Name, limit)
	}
	return b, nil
}

var errTooManyCells = errors.New("too many cells")

// drain reads an entry to its end (archive/zip checks its size and CRC
// there) and, for a worksheet, counts its <row> and <c> elements, failing
// past budget.
func drain(f *zip.File, worksheet bool, budget int) (int, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	// archive/zip stops at the declared size; the extra byte proves it.
	lr := io.LimitReader(rc, int64(f.UncompressedSize64)+1)
	if !worksheet {
		_, err := io.Copy(io.Discard, lr)
		return 0, err
	}
	d := xml.NewDecoder(lr)
	d.CharsetReader = charset.NewReaderLabel // as excelize reads it
	n := 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if se, ok := tok.(xml.StartElement); ok && (se.Name.Local == "c" || se.Name.Local == "row") {
			if n++; n > budget {
				return n, errTooManyCells
			}
		}
	}
}

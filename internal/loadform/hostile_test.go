package loadform_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/problem"
)

// rezip copies a zip, passing each entry through edit (which may rename
// it, change it, or drop it by returning ""), then appends extra entries.
func rezip(t testing.TB, b []byte, edit func(name string, data []byte) (string, []byte), extra ...func(*zip.Writer)) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	must(t, err)
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, err := f.Open()
		must(t, err)
		var data bytes.Buffer
		_, err = data.ReadFrom(rc)
		must(t, err)
		rc.Close()
		name, content := f.Name, data.Bytes()
		if edit != nil {
			name, content = edit(name, content)
		}
		if name == "" {
			continue
		}
		w, err := zw.Create(name)
		must(t, err)
		_, err = w.Write(content)
		must(t, err)
	}
	for _, x := range extra {
		x(zw)
	}
	must(t, zw.Close())
	return out.Bytes()
}

func addEntry(t testing.TB, name string, data []byte) func(*zip.Writer) {
	return func(zw *zip.Writer) {
		w, err := zw.Create(name)
		must(t, err)
		_, err = w.Write(data)
		must(t, err)
	}
}

// lyingEntry declares declared bytes but holds actual zeros, deflated.
func lyingEntry(t testing.TB, name string, declared uint64, actual int) func(*zip.Writer) {
	return func(zw *zip.Writer) {
		zeros := make([]byte, actual)
		var packed bytes.Buffer
		fw, err := flate.NewWriter(&packed, flate.BestCompression)
		must(t, err)
		_, err = fw.Write(zeros)
		must(t, err)
		must(t, fw.Close())
		w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(zeros),
			CompressedSize64: uint64(packed.Len()), UncompressedSize64: declared})
		must(t, err)
		_, err = w.Write(packed.Bytes())
		must(t, err)
	}
}

func TestHostile(t *testing.T) {
	good := fill(t, []row{newProduct(), newVersion(), addOption()}, nil)
	contentTypes := func(from, to string) func(string, []byte) (string, []byte) {
		return func(name string, data []byte) (string, []byte) {
			if name == "[Content_Types].xml" {
				data = []byte(strings.ReplaceAll(string(data), from, to))
			}
			return name, data
		}
	}
	for _, tc := range []struct {
		name   string
		upload []byte
		lim    loadform.Limits
		kind   *problem.Error
		code   problem.Code
		says   string
	}{
		{"text file", []byte("Request type,Product ID\nnew product,\n"), loadform.Limits{}, loadform.ErrNotWorkbook, problem.Invalid,
			"not an .xlsx workbook (it is not a zip archive)"},
		{"empty upload", nil, loadform.Limits{}, loadform.ErrNotWorkbook, problem.Invalid, "not an .xlsx workbook"},
		{"encrypted or .xls", append([]byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}, make([]byte, 4096)...), loadform.Limits{},
			loadform.ErrEncrypted, problem.Invalid, "encrypted or legacy .xls: save as .xlsx without a password"},
		{"truncated zip", good[:len(good)/2], loadform.Limits{}, loadform.ErrNotWorkbook, problem.Invalid, "damaged or unusual zip"},
		{"zip of something else", rezip(t, good, func(string, []byte) (string, []byte) { return "", nil }, addEntry(t, "notes.txt", []byte("hi"))),
			loadform.Limits{}, loadform.ErrNotWorkbook, problem.Invalid, "without [Content_Types].xml"},
		{"a Word document", rezip(t, good, contentTypes("spreadsheetml.sheet.main+xml", "wordprocessingml.document.main+xml")),
			loadform.Limits{}, loadform.ErrNotWorkbook, problem.Invalid, "another kind of document"},
		{"macro-enabled content type", rezip(t, good, contentTypes("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml", "application/vnd.ms-excel.sheet.macroEnabled.main+xml")),
			loadform.Limits{}, loadform.ErrMacroEnabled, problem.Invalid, "macro-enabled workbook (.xlsm)"},
		{"VBA project part", rezip(t, good, nil, addEntry(t, "xl/vbaProject.bin", []byte("attribute VB_Name"))),
			loadform.Limits{}, loadform.ErrMacroEnabled, problem.Invalid, `macro-enabled workbook (it holds "xl/vbaProject.bin")`},
		{"Excel 4 macro sheet", rezip(t, good, nil, addEntry(t, "xl/macrosheets/sheet1.xml", []byte("<xm/>"))),
			loadform.Limits{}, loadform.ErrMacroEnabled, problem.Invalid, "macro-enabled"},
		{"zip bomb by ratio", rezip(t, good, nil, addEntry(t, "xl/media/image1.png", make([]byte, 8<<20))),
			loadform.Limits{}, loadform.ErrTooLarge, problem.TooLarge, "refused as a zip bomb"},
		{"entry lying about its size", rezip(t, good, nil, lyingEntry(t, "xl/media/image1.png", 1000, 4<<20)),
			loadform.Limits{}, loadform.ErrNotWorkbook, problem.Invalid, `part "xl/media/image1.png" is damaged`},
		{"worksheet lying about its size", rezip(t, good, func(n string, d []byte) (string, []byte) {
			if n == "xl/worksheets/sheet2.xml" {
				return "", nil
			}
			return n, d
		}, lyingEntry(t, "xl/worksheets/sheet2.xml", 100, 1<<20)),
			loadform.Limits{}, loadform.ErrNotWorkbook, problem.Invalid, "is damaged"},
		{"over MaxBytes", good, loadform.Limits{MaxBytes: 1000}, loadform.ErrTooLarge, problem.TooLarge, "a load form may be at most 1000 B"},
		{"over MaxEntries", good, loadform.Limits{MaxEntries: 5}, loadform.ErrTooLarge, problem.TooLarge, "a load form may have at most 5"},
		{"over MaxUncompressed", good, loadform.Limits{MaxUncompressed: 20 << 10}, loadform.ErrTooLarge, problem.TooLarge, "unpacks to more than 20 KiB"},
		{"over MaxCells", good, loadform.Limits{MaxCells: 40}, loadform.ErrTooLarge, problem.TooLarge, "more than 40 rows and cells"},
		{"over MaxRows", good, loadform.Limits{MaxRows: 2}, loadform.ErrTooLarge, problem.TooLarge, "Products!A4: a load form takes at most 2 rows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form, err := loadform.Parse(bytes.NewReader(tc.upload), int64(len(tc.upload)), tc.lim)
			if form != nil || !errors.Is(err, tc.kind) || !errors.Is(err, tc.code) {
				t.Fatalf("Parse = %v, %v; want %v (%s)", form, err, tc.kind, tc.code)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
	if _, err := loadform.Parse(bytes.NewReader(good), int64(len(good)), loadform.Limits{MaxRows: 3}); err != nil {
		t.Errorf("a form of exactly MaxRows rows: %v", err)
	}
}

// TestSavedByExcelize: a form saved with excelize's SaveAs is accepted.
// SaveAs maps the "bin" extension to the VBA project type in every
// workbook it writes, without any VBA part: only a part with that type, or
// a part named like one, is a macro.
func TestSavedByExcelize(t *testing.T) {
	xf, err := excelize.OpenReader(bytes.NewReader(fill(t, []row{newProduct()}, func(*excelize.File) {})))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "form.xlsx")
	if err := xf.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadform.Parse(bytes.NewReader(data), int64(len(data)), loadform.Limits{}); err != nil {
		t.Fatalf("a form saved by excelize is refused: %v", err)
	}
}

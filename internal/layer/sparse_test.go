package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/layer"
)

// TestSparseRefused (T2): a PAX sparse file (GNU.sparse.*) reads back as a
// regular file with its holes filled: a 2 KB layer that would make Unpack
// write a terabyte of zeros. Check and Unpack refuse it.
func TestSparseRefused(t *testing.T) {
	// archive/tar writes no GNU.sparse records, so write a comment record
	// of the same length and swap the bytes.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	sparseMap := "1\n0\n0\n" // one segment of zero bytes: all hole
	body := sparseMap + strings.Repeat("\x00", 512-len(sparseMap))
	comment := strings.Repeat("V", 91)
	tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)),
		Format: tar.FormatPAX, PAXRecords: map[string]string{"comment": comment}})
	tw.Write([]byte(body))
	tw.Close()
	records := "22 GNU.sparse.major=1\n22 GNU.sparse.minor=0\n23 GNU.sparse.name=big\n37 GNU.sparse.realsize=1000000000000\n"
	b := bytes.Replace(buf.Bytes(), []byte("104 comment="+comment+"\n"), []byte(records), 1)
	if hdr, err := tar.NewReader(bytes.NewReader(b)).Next(); err != nil || hdr.Size != 1e12 {
		t.Fatalf("the test layer is not a 1 TB sparse file: %+v %v", hdr, err)
	}
	if err := layer.Check(context.Background(), bytes.NewReader(b), nil, nil); err == nil || !strings.Contains(err.Error(), "sparse") {
		t.Errorf("Check: want the sparse file refused, got %v", err)
	}
	if err := layer.Unpack(context.Background(), bytes.NewReader(b), t.TempDir(), layer.UnpackOptions{}); err == nil || !strings.Contains(err.Error(), "sparse") {
		t.Errorf("Unpack: want the sparse file refused, got %v", err)
	}
}

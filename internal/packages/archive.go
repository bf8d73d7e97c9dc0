//go:build linux

package packages

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/xi2/xz"

	"github.com/pib-dev/pib/internal/layer"
)

// Limits bound the work CheckArchive does on one upload, whatever it
// claims: a hostile archive can make it read at most MaxUnpacked bytes
// (twice, see CheckArchive) and hold one MaxWindow decompression window.
type Limits struct {
	MaxEntries  int   // entries of one archive
	MaxUnpacked int64 // uncompressed bytes of one tar stream
	MaxWindow   int   // xz dictionary or zstd window, bytes
}

// DefaultLimits are what uploads get: far above any real installer
// bundle, and the window of xz -9 and zstd --ultra -22.
var DefaultLimits = Limits{MaxEntries: 1 << 20, MaxUnpacked: 64 << 30, MaxWindow: 128 << 20}

// kind is an archive format told by its first bytes.
type kind string

const (
	kindTar   kind = "tar"
	kindZip   kind = "zip"
	kindGzip  kind = "gzip"
	kindXz    kind = "xz"
	kindBzip2 kind = "bzip2"
	kindZstd  kind = "zstd"
)

// sniff tells an archive by its magic bytes; "" is anything else.
func sniff(head []byte) kind {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return kindGzip
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return kindXz
	case len(head) >= 4 && bytes.HasPrefix(head, []byte("BZh")) && head[3] >= '1' && head[3] <= '9':
		return kindBzip2
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return kindZstd
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return kindZip
	case isTarHeader(head):
		return kindTar
	}
	return ""
}

// isTarHeader reports whether block is a tar header block: its checksum
// field matches its bytes. That holds for every tar flavour, V7 ones
// without the "ustar" magic included, and almost never by chance.
func isTarHeader(block []byte) bool {
	if len(block) < 512 {
		return false
	}
	field := strings.TrimRight(strings.TrimLeft(string(block[148:156]), " "), " \x00")
	if field == "" {
		return false
	}
	var want int64
	for _, c := range field {
		if c < '0' || c > '7' {
			return false
		}
		want = want*8 + int64(c-'0')
	}
	var unsigned, signed int64
	for i, b := range block[:512] {
		if i >= 148 && i < 156 {
			b = ' '
		}
		unsigned += int64(b)
		signed += int64(int8(b))
	}
	return want == unsigned || want == signed
}

// CheckArchive refuses an archive whose entries escape their root (rule
// P5) with a *problem.Error. Archives are told by content, never by name: tar,
// tar compressed with gzip, xz, bzip2 or zstd, and zip (also with data in
// front, as self-extracting archives have). Anything else, and a
// compressed file that does not hold a tar, is not an archive and passes.
//
// A tar stream is read twice: once with archive/tar to enforce lim
// (entries, unpacked size, no sparse entries, whose holes cost nothing
// to send and everything to expand), then by layer.Check for the same
// rules image layers follow (absolute paths, "..", writes through
// symlinks, hard links out of the root). Archives inside archives are
// not opened.
func CheckArchive(ctx context.Context, r io.ReaderAt, size int64, lim Limits) error {
	head := make([]byte, 512)
	n, err := r.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return fmt.Errorf("read the upload: %w", err)
	}
	head = head[:n]
	switch k := sniff(head); k {
	case "":
		// Self-extracting zip archives keep their directory at the end.
		if zr, err := zip.NewReader(r, size); err == nil {
			return checkZip(zr, lim)
		}
		return nil
	case kindZip:
		zr, err := zip.NewReader(r, size)
		if err != nil {
			return refuse(kindZip, err)
		}
		return checkZip(zr, lim)
	case kindTar:
		return checkTar(ctx, func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(r, 0, size)), nil }, lim, kindTar)
	default:
		open := func() (io.ReadCloser, error) { return decompress(k, io.NewSectionReader(r, 0, size), lim) }
		rc, err := open()
		if err != nil {
			return refuse(k, err)
		}
		inner := make([]byte, 512)
		n, err := io.ReadFull(rc, inner)
		rc.Close()
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && err != io.EOF {
			return refuse(k, err)
		}
		if !isTarHeader(inner[:n]) {
			return nil // a compressed file, not a compressed tar
		}
		return checkTar(ctx, open, lim, k+"-compressed tar")
	}
}

func refuse(k kind, err error) error {
	e := rejected("file", "%s archive is unsafe or corrupt: %v; remove the entry or upload a well-formed archive", k, err)
	e.Err = err
	return e
}

func decompress(k kind, r io.Reader, lim Limits) (io.ReadCloser, error) {
	switch k {
	case kindGzip:
		return gzip.NewReader(r)
	case kindXz:
		zr, err := xz.NewReader(r, uint32(min(lim.MaxWindow, 1<<31)))
		if err != nil {
			return nil, err
		}
		return io.NopCloser(zr), nil
	case kindBzip2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	case kindZstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(uint64(lim.MaxWindow)), zstd.WithDecoderMaxMemory(uint64(lim.MaxWindow)))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("no decompressor for %s", k)
}

// errTooBig is what a capped stream returns past its limit.
var errTooBig = errors.New("archive unpacks to more than the limit")

type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errTooBig
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func checkTar(ctx context.Context, open func() (io.ReadCloser, error), lim Limits, k kind) error {
	rc, err := open()
	if err != nil {
		return refuse(k, err)
	}
	err = scanTar(ctx, &cappedReader{r: rc, left: lim.MaxUnpacked}, lim)
	rc.Close()
	if err != nil {
		return refuse(k, err)
	}
	if rc, err = open(); err != nil {
		return refuse(k, err)
	}
	defer rc.Close()
	if err := layer.Check(ctx, &cappedReader{r: rc, left: lim.MaxUnpacked}, nil, nil); err != nil {
		return refuse(k, err)
	}
	return nil
}

// scanTar enforces lim on a tar stream before layer.Check reads it.
func scanTar(ctx context.Context, r io.Reader, lim Limits) error {
	tr := tar.NewReader(r)
	var total int64
	for entries := 1; ; entries++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return err
		}
		if entries > lim.MaxEntries {
			return fmt.Errorf("more than %d entries", lim.MaxEntries)
		}
		if hdr.Typeflag == tar.TypeGNUSparse {
			return fmt.Errorf("entry %q is a sparse file, which is not supported", hdr.Name)
		}
		for key := range hdr.PAXRecords {
			if strings.HasPrefix(key, "GNU.sparse.") {
				return fmt.Errorf("entry %q is a sparse file, which is not supported", hdr.Name)
			}
		}
		if total += max(hdr.Size, 0); total > lim.MaxUnpacked || hdr.Size < 0 {
			return fmt.Errorf("entry %q: %w of %d bytes", hdr.Name, errTooBig, lim.MaxUnpacked)
		}
	}
}

// checkZip applies the tar rules to zip entry names: nothing absolute,
// nothing escaping, no entry through an earlier symlink entry, and "\"
// read as the separator it is to Windows extractors.
func checkZip(zr *zip.Reader, lim Limits) error {
	if len(zr.File) > lim.MaxEntries {
		return refuse(kindZip, fmt.Errorf("more than %d entries", lim.MaxEntries))
	}
	links := map[string]bool{}
	for _, zf := range zr.File {
		name := strings.ReplaceAll(zf.Name, `\`, "/")
		if err := layer.CheckName(name); err != nil {
			return refuse(kindZip, err)
		}
		p := path.Clean(strings.TrimPrefix(name, "./"))
		for dir := path.Dir(p); dir != "." && dir != "/"; dir = path.Dir(dir) {
			if links[dir] {
				return refuse(kindZip, fmt.Errorf("entry %q: path traverses the symlink entry %q", zf.Name, dir))
			}
		}
		if zf.Mode()&fs.ModeSymlink != 0 {
			links[p] = true
		}
	}
	return nil
}

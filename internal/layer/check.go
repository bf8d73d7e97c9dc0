//go:build linux

package layer

import (
	"archive/tar"
	"context"
	"io"
)

// Check reads the whole uncompressed tar stream r and applies exactly
// Unpack's safety rules without writing anything. It returns nil only if
// Unpack would accept the stream (file system errors aside).
//
// For each entry whose cleaned path (no leading "./", no trailing "/") is in
// want, e.g. "etc/os-release", Check calls found(path, hdr, content) with up to
// 1 MiB of the entry's content; content is nil for anything but a regular file
// (a symlink's target is hdr.Linkname, a hard link's hdr.Linkname names the
// earlier entry). An entry that appears twice is reported twice; the later one
// is what Unpack leaves behind. found is called before the rest of the stream
// is checked, so its caller must not trust what it saw until Check returns nil.
func Check(ctx context.Context, r io.Reader, want map[string]bool, found func(path string, hdr *tar.Header, content []byte)) error {
	s := newStream(r)
	v := newValidator()
	var buf []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := s.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		a, reason := v.next(hdr)
		if reason != "" {
			return s.refuse(hdr, reason)
		}
		var content []byte
		wanted := a.op == opCreate && want[a.path] && found != nil
		if wanted && hdr.Typeflag == tar.TypeReg {
			if buf == nil {
				buf = make([]byte, maxFoundContent)
			}
			n, err := io.ReadFull(s.tr, buf[:min(hdr.Size, maxFoundContent)])
			if err != nil {
				return s.readErr(err)
			}
			content = append([]byte(nil), buf[:n]...)
		}
		// Read every byte: a stream truncated inside an entry must fail here
		// just as it fails Unpack.
		if _, err := io.Copy(io.Discard, s.tr); err != nil {
			return s.readErr(err)
		}
		if wanted {
			found(a.path, hdr, content)
		}
	}
}

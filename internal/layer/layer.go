//go:build linux

package layer

import (
	"fmt"
	"io/fs"
	"syscall"
)

// OCI whiteout names (image-spec layer.md, "Whiteouts").
const (
	// WhiteoutPrefix starts the name of an entry that deletes its sibling
	// <name> from the layers below: ".wh.<name>".
	WhiteoutPrefix = ".wh."
	// OpaqueMarker is the entry "<dir>/.wh..wh..opq" that hides everything the
	// layers below have in <dir>.
	OpaqueMarker = ".wh..wh..opq"
	// whiteoutMetaPrefix starts AUFS bookkeeping names (".wh..wh.plnk", ...),
	// which carry no meaning for an OCI layer and are ignored.
	whiteoutMetaPrefix = ".wh..wh."
)

// Overlayfs xattrs. The kernel uses the trusted.* names, or the user.* names
// when the overlay is mounted with "userxattr" (rootless).
const (
	xattrOpaque     = "trusted.overlay.opaque"
	xattrUserOpaque = "user.overlay.opaque"
	overlayTrusted  = "trusted.overlay."
	overlayUser     = "user.overlay."
	paxXattrPrefix  = "SCHILY.xattr."
	maxFoundContent = 1 << 20
)

// IsWhiteout reports whether fi describes an overlayfs whiteout: a character
// device with device number 0:0.
func IsWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 || fi.Mode()&fs.ModeDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

// EntryError says which tar entry was refused and why.
type EntryError struct {
	// Entry is the entry's name exactly as the tar stream spells it; empty
	// when the stream broke before a name could be read (see Index).
	Entry string
	// Reason is a short lowercase explanation, e.g. "path escapes the layer root".
	Reason string
	// Index is the 1-based position of the entry in the stream.
	Index int
	// Err is the underlying error, if any (io.ErrUnexpectedEOF, tar.ErrHeader, ...).
	Err error
}

func (e *EntryError) Error() string {
	msg := e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Entry == "" {
		return fmt.Sprintf("tar entry #%d: %s", e.Index, msg)
	}
	return fmt.Sprintf("tar entry %q: %s", e.Entry, msg)
}

func (e *EntryError) Unwrap() error { return e.Err }

//go:build linux

package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"path"
	"strings"
)

// osRelease holds the fields of os-release(5) pib uses.
type osRelease struct{ ID, VersionID string }

// parseOSRelease reads KEY=value lines, with optional shell-style quoting.
func parseOSRelease(content []byte) osRelease {
	var r osRelease
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			r.ID = v
		case "VERSION_ID":
			r.VersionID = v
		}
	}
	return r
}

// merged returns the probe files as the top of a layer stack sees them.
func merged(layers []*ingested) map[string]probed {
	files := map[string]probed{}
	for _, l := range layers {
		for p, f := range l.files {
			files[p] = f
		}
	}
	return files
}

// releaseOf resolves /etc/os-release (often a symlink to
// ../usr/lib/os-release), falling back to /usr/lib/os-release as
// os-release(5) says.
func releaseOf(files map[string]probed) osRelease {
	p := "etc/os-release"
	for range 4 { // a short symlink chain at most
		f, ok := files[p]
		if !ok {
			break
		}
		if f.hdr.Typeflag == tar.TypeReg {
			return parseOSRelease(f.content)
		}
		if f.hdr.Typeflag != tar.TypeSymlink {
			break
		}
		target := f.hdr.Linkname
		if strings.HasPrefix(target, "/") {
			p = strings.TrimPrefix(path.Clean(target), "/")
		} else {
			p = strings.TrimPrefix(path.Clean(path.Join(path.Dir(p), target)), "/")
		}
	}
	if f, ok := files["usr/lib/os-release"]; ok && f.hdr.Typeflag == tar.TypeReg {
		return parseOSRelease(f.content)
	}
	return osRelease{}
}

// elfMachines maps ELF e_machine values to OCI architecture names.
var elfMachines = map[uint16]string{
	0x03: "386", 0x28: "arm", 0x3E: "amd64", 0xB7: "arm64",
	0xF3: "riscv64", 0x15: "ppc64le", 0x16: "s390x",
}

// archOf reads the architecture from the ELF header of a binary every
// Linux root file system has; "" when none is found.
func archOf(files map[string]probed) string {
	for _, p := range []string{"usr/bin/env", "bin/busybox", "bin/sh"} {
		f, ok := files[p]
		if !ok || f.hdr.Typeflag != tar.TypeReg || len(f.content) < 20 || string(f.content[:4]) != "\x7fELF" {
			continue
		}
		var order binary.ByteOrder = binary.LittleEndian
		if f.content[5] == 2 {
			order = binary.BigEndian
		}
		if a, ok := elfMachines[order.Uint16(f.content[18:20])]; ok {
			return a
		}
	}
	return ""
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

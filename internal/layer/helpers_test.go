package layer_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// node describes one file of a test tree.
type node struct {
	path    string
	typ     byte // tar.TypeReg, TypeDir, TypeSymlink, TypeLink, TypeChar, TypeBlock, TypeFifo
	mode    uint32
	uid     int
	gid     int
	content string
	link    string // symlink target, or hard link target path
	major   uint32
	minor   uint32
	xattrs  map[string]string
	mtime   int64 // unix seconds; 0 means a fixed default
}

const defaultMtime = 1700000000

// makeTree creates nodes under dir. With reverse, files are created in the
// opposite order (parents made on demand), to vary inode numbers and
// directory order; atime is set to atime.
func makeTree(t testing.TB, dir string, nodes []node, reverse bool, atime time.Time) {
	t.Helper()
	order := make([]node, 0, len(nodes))
	order = append(order, nodes...)
	if reverse {
		for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
			order[i], order[j] = order[j], order[i]
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range order {
		p := filepath.Join(dir, n.path)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		switch n.typ {
		case tar.TypeDir:
			if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				t.Fatal(err)
			}
		case tar.TypeReg:
			must(os.WriteFile(p, []byte(n.content), 0o600))
		case tar.TypeSymlink:
			must(os.Symlink(n.link, p))
		case tar.TypeChar:
			must(unix.Mknod(p, unix.S_IFCHR, int(unix.Mkdev(n.major, n.minor))))
		case tar.TypeBlock:
			must(unix.Mknod(p, unix.S_IFBLK, int(unix.Mkdev(n.major, n.minor))))
		case tar.TypeFifo:
			must(unix.Mkfifo(p, 0o600))
		}
	}
	for _, n := range order {
		if n.typ == tar.TypeLink {
			must(os.Link(filepath.Join(dir, n.link), filepath.Join(dir, n.path)))
		}
	}
	for _, n := range order {
		if n.typ == tar.TypeLink {
			continue
		}
		p := filepath.Join(dir, n.path)
		must(os.Lchown(p, n.uid, n.gid))
		if n.typ != tar.TypeSymlink {
			must(unix.Chmod(p, n.mode))
		}
		for k, v := range n.xattrs {
			must(unix.Lsetxattr(p, k, []byte(v), 0))
		}
	}
	// Times last, deepest first, so that nothing touches them afterwards.
	sorted := append([]node(nil), order...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return strings.Count(sorted[i].path, "/") > strings.Count(sorted[j].path, "/")
	})
	for _, n := range sorted {
		if n.typ == tar.TypeLink {
			continue
		}
		m := n.mtime
		if m == 0 {
			m = defaultMtime
		}
		ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), {Sec: m}}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, n.path), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	// Parents made on demand get whole-second mtimes too.
	named := make(map[string]bool)
	for _, n := range nodes {
		named[filepath.Join(dir, n.path)] = true
	}
	must(filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir || !d.IsDir() || named[p] {
			return err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), {Sec: defaultMtime}}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
}

// fileState is what a round trip must preserve.
type fileState struct {
	Type     string
	Mode     uint32
	UID, GID uint32
	Size     int64
	SHA256   string
	Link     string
	Dev      string
	Mtime    time.Time
	Xattrs   map[string]string
	HardLink string // earlier path (walk order) of the same inode
}

// snapshot describes every file under dir except dir itself.
func snapshot(t testing.TB, dir string) map[string]fileState {
	t.Helper()
	out := make(map[string]fileState)
	inodes := make(map[uint64]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fileState{
			Mode:  st.Mode & 0o7777,
			UID:   st.Uid,
			GID:   st.Gid,
			Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC(),
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			s.Type = "dir"
		case unix.S_IFREG:
			s.Type, s.Size = "file", st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			s.SHA256 = hex.EncodeToString(sum[:8])
		case unix.S_IFLNK:
			s.Type = "symlink"
			s.Link, _ = os.Readlink(p)
		case unix.S_IFCHR, unix.S_IFBLK:
			s.Type = "char"
			if st.Mode&unix.S_IFMT == unix.S_IFBLK {
				s.Type = "block"
			}
			s.Dev = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			s.Type = "fifo"
		default:
			s.Type = fmt.Sprintf("%#o", st.Mode&unix.S_IFMT)
		}
		if st.Nlink > 1 && s.Type != "dir" {
			if first, ok := inodes[st.Ino]; ok {
				s.HardLink = first
			} else {
				inodes[st.Ino] = rel
			}
		}
		s.Xattrs = xattrs(t, p)
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func xattrs(t testing.TB, p string) map[string]string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	var m map[string]string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		val := make([]byte, 64<<10)
		vn, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			t.Fatalf("lgetxattr %s %s: %v", p, name, err)
		}
		if m == nil {
			m = make(map[string]string)
		}
		m[name] = string(val[:vn])
	}
	return m
}

// entry is one tar entry a test writes or expects.
type entry struct {
	Name     string
	Type     byte
	Linkname string `json:",omitempty"`
	Body     string `json:"-"`
	Mode     int64
	Xattrs   map[string]string
}

// buildTar writes entries; without end, the end-of-archive marker is left out.
func buildTar(t testing.TB, entries []entry, end bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:     e.Name,
			Typeflag: e.Type,
			Linkname: e.Linkname,
			Mode:     e.Mode,
			Size:     int64(len(e.Body)),
			ModTime:  time.Unix(defaultMtime, 0),
			Format:   tar.FormatPAX,
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if e.Type != tar.TypeReg {
			hdr.Size = 0
		}
		for k, v := range e.Xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = make(map[string]string)
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("write header %s: %v", e.Name, err)
		}
		if _, err := io.WriteString(tw, e.Body); err != nil {
			t.Fatal(err)
		}
	}
	if end {
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
	} else if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readEntries lists the entries of a tar stream.
func readEntries(t testing.TB, b []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		e := entry{Name: hdr.Name, Type: hdr.Typeflag, Linkname: hdr.Linkname, Body: string(body), Mode: hdr.Mode}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if e.Xattrs == nil {
					e.Xattrs = make(map[string]string)
				}
				e.Xattrs[name] = v
			}
		}
		out = append(out, e)
	}
}

func names(es []entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

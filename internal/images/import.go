//go:build linux

package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/pib-dev/pib/internal/disk"
	"github.com/pib-dev/pib/internal/problem"
)

// Format is an on-disk image representation pib reads or writes.
type Format string

const (
	OCILayout     Format = "oci-layout"     // a directory (import only)
	OCIArchive    Format = "oci-archive"    // a tar of an OCI layout
	DockerArchive Format = "docker-archive" // what `docker save` writes
	RootfsTar     Format = "rootfs-tar"     // a root file system as a (compressed) tar
)

// ImportOptions names the new image.
type ImportOptions struct {
	Alias string
	Owner string // defaults to Operator
	// OS is a qcow2 disk's OS family, one of DiskOSes (required for a
	// disk, refused for an archive: an archive's config says its OS).
	OS string
}

// Import reads an image from path in any supported Format (detected from
// the content, not the name) and stores it. Every layer is checked entry by
// entry before the image is recorded; on any error nothing is left behind.
//
// An archive that is corrupt, unsupported or refused entry by entry is a
// problem.Invalid whose message does not name file (the API's caller never
// saw that path); ErrAliasTaken and ErrNotFound are as they say; any other
// error is the store's own failure.
func (s *Store) Import(ctx context.Context, file string, opts ImportOptions) (*Image, error) {
	im, err := s.importFile(ctx, file, opts)
	if err != nil {
		var bad archiveError
		var pe *problem.Error
		if errors.As(err, &bad) && !errors.As(err, &pe) {
			err = &problem.Error{Code: problem.Invalid, Message: err.Error(), Err: err}
		}
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	return im, nil
}

// archiveError marks a failure the archive caused, as opposed to one of
// the store's (a full disk, the database): Import turns the first kind
// into a problem.Invalid and leaves the second a plain error. Each is
// marked where it is still known which it is.
type archiveError struct{ err error }

func (e archiveError) Error() string { return e.err.Error() }
func (e archiveError) Unwrap() error { return e.err }

// archiveReader marks every read error of an archive's bytes (corrupt
// compression, a truncated stream) as the archive's.
type archiveReader struct{ r io.Reader }

func (a archiveReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF {
		err = archiveError{err}
	}
	return n, err
}

func (s *Store) importFile(ctx context.Context, file string, opts ImportOptions) (*Image, error) {
	if opts.Alias != "" {
		if err := ValidAlias(opts.Alias); err != nil {
			return nil, err
		}
		owner := opts.Owner
		if owner == "" {
			owner = Operator
		}
		if _, err := s.GetOwned(ctx, owner, opts.Alias); err == nil {
			return nil, ErrAliasTaken.Errorf("image alias is already taken: %q; choose another --alias or remove that image first (pib image rm %s)", opts.Alias, opts.Alias)
		}
	}
	fi, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(file, "oci-layout")); err != nil {
			return nil, archiveError{errors.New("directory is not an OCI image layout (it has no oci-layout file)")}
		}
		src, err := imageFromLayout(file)
		if err != nil {
			return nil, archiveError{err}
		}
		return s.importImage(ctx, src, opts)
	}
	if isDisk, err := disk.IsQCOW2(file); err != nil {
		return nil, err
	} else if isDisk {
		return s.importDisk(ctx, file, opts)
	}
	if opts.OS != "" {
		return nil, archiveError{fmt.Errorf("an OS family (--os) is given for qcow2 disks only: an image archive's config says its OS")}
	}
	format, compressed, err := detect(file)
	if err != nil {
		return nil, err
	}
	switch format {
	case DockerArchive:
		plain := file
		if compressed {
			if plain, err = s.decompressToTemp(file); err != nil {
				return nil, err
			}
			defer os.Remove(plain)
		}
		src, err := tarball.ImageFromPath(plain, nil)
		if err != nil {
			return nil, archiveError{fmt.Errorf("read docker archive: %w", err)}
		}
		return s.importImage(ctx, src, opts)
	case OCIArchive:
		dir, err := s.tempDir("oci-archive-*")
		if err != nil {
			return nil, err
		}
		defer removeTree(dir)
		if err := extractArchive(file, dir); err != nil {
			return nil, err
		}
		src, err := imageFromLayout(dir)
		if err != nil {
			return nil, archiveError{err}
		}
		return s.importImage(ctx, src, opts)
	default:
		return s.importRootfs(ctx, file, opts)
	}
}

// openTar returns the uncompressed tar stream of file, whatever its
// compression (none, gzip or zstd, told by magic bytes).
func openTar(file string) (io.ReadCloser, bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, false, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, false, archiveError{fmt.Errorf("corrupt gzip data: %w", err)}
		}
		return struct {
			io.Reader
			io.Closer
		}{archiveReader{zr}, f}, true, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			f.Close()
			return nil, false, archiveError{fmt.Errorf("corrupt zstd data: %w", err)}
		}
		zrc := zr.IOReadCloser()
		return closeFunc{struct {
			io.Reader
			io.Closer
		}{archiveReader{zrc}, zrc}, f}, true, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{archiveReader{br}, f}, false, nil
}

type closeFunc struct {
	io.ReadCloser
	f *os.File
}

func (c closeFunc) Close() error { c.ReadCloser.Close(); return c.f.Close() }

// archiveEntry matches the names image archives (docker save, OCI layout)
// hold at their top; anything else means a root file system tarball.
var archiveEntry = regexp.MustCompile(`^(oci-layout|index\.json|manifest\.json|repositories|blobs(/.*)?|(sha256:)?[0-9a-f]{64}(\.json|\.tar|\.tar\.gz|/.*)?)$`)

// detect tells the format of an archive file from its entries.
func detect(file string) (Format, bool, error) {
	rc, compressed, err := openTar(file)
	if err != nil {
		return "", false, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names = map[string]bool{}
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			if n == 0 {
				return "", false, archiveError{errors.New("archive is empty")}
			}
			break
		}
		if err != nil {
			if n == 0 {
				return "", false, archiveError{fmt.Errorf("not a tar archive (plain, gzip or zstd): %w", err)}
			}
			return "", false, archiveError{fmt.Errorf("corrupt or truncated tar after entry %d: %w", n, err)}
		}
		name := strings.TrimPrefix(path.Clean(strings.TrimPrefix(hdr.Name, "./")), "/")
		if name == "." {
			continue
		}
		if !archiveEntry.MatchString(name) {
			return RootfsTar, compressed, nil
		}
		names[name] = true
	}
	switch {
	case names["manifest.json"]:
		return DockerArchive, compressed, nil
	case names["oci-layout"] && names["index.json"]:
		return OCIArchive, compressed, nil
	}
	return RootfsTar, compressed, nil
}

func (s *Store) decompressToTemp(file string) (string, error) {
	rc, _, err := openTar(file)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	dir, err := s.tempDir("decompress-*")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "archive.tar")
	f, err := os.Create(out)
	if err == nil {
		_, err = io.Copy(f, rc)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		removeTree(dir)
		return "", fmt.Errorf("decompress: %w", err)
	}
	// The caller removes the file; the directory goes with the next clean.
	return out, nil
}

// extractArchive unpacks an OCI archive (only its layout files: regular
// files and directories under known names) into dir.
func extractArchive(file, dir string) error {
	rc, _, err := openTar(file)
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return archiveError{fmt.Errorf("corrupt or truncated archive: %w", err)}
		}
		name := strings.TrimPrefix(path.Clean(strings.TrimPrefix(hdr.Name, "./")), "/")
		if name == "." {
			continue
		}
		if !archiveEntry.MatchString(name) || strings.Contains(name, "..") {
			return archiveError{fmt.Errorf("tar entry %q: not part of an OCI image layout", hdr.Name)}
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if errors.Is(err, fs.ErrExist) {
				err = archiveError{err} // the archive holds the entry twice
			}
			if err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
			_, err = io.Copy(f, archiveReader{tr})
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
		default:
			return archiveError{fmt.Errorf("tar entry %q: type %q is not allowed in an OCI image layout", hdr.Name, hdr.Typeflag)}
		}
	}
}

// imageFromLayout picks the image in an OCI layout: the only one, or the
// one for this machine's platform.
func imageFromLayout(dir string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read OCI layout: %w", err)
	}
	for depth := 0; depth < 3; depth++ {
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("read OCI index: %w", err)
		}
		if len(im.Manifests) == 0 {
			return nil, errors.New("OCI layout holds no image")
		}
		desc := im.Manifests[0]
		if len(im.Manifests) > 1 {
			found := false
			for _, d := range im.Manifests {
				if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
					desc, found = d, true
					break
				}
			}
			if !found {
				return nil, fmt.Errorf("OCI layout holds %d images and none is for linux/%s; export just one", len(im.Manifests), runtime.GOARCH)
			}
		}
		if desc.MediaType.IsIndex() {
			if idx, err = idx.ImageIndex(desc.Digest); err != nil {
				return nil, fmt.Errorf("read nested OCI index: %w", err)
			}
			continue
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("read OCI image %s: %w", desc.Digest, err)
		}
		return img, nil
	}
	return nil, errors.New("OCI index nesting too deep")
}

// importImage stores an image read by go-containerregistry, layer by
// layer, keeping its config as it is (DiffIDs do not change: layers are
// only recompressed).
func (s *Store) importImage(ctx context.Context, src v1.Image, opts ImportOptions) (*Image, error) {
	cfgRaw, err := src.RawConfigFile()
	if err != nil {
		return nil, archiveError{fmt.Errorf("read image config: %w", err)}
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, archiveError{fmt.Errorf("parse image config: %w", err)}
	}
	srcLayers, err := src.Layers()
	if err != nil {
		return nil, archiveError{fmt.Errorf("read image layers: %w", err)}
	}
	if len(cfg.RootFS.DiffIDs) != len(srcLayers) {
		return nil, archiveError{fmt.Errorf("image config lists %d layers but the manifest has %d: corrupt image", len(cfg.RootFS.DiffIDs), len(srcLayers))}
	}
	var layers []*ingested
	fail := func(err error) (*Image, error) {
		for _, l := range layers {
			s.forget(l.desc.Digest)
		}
		return nil, err
	}
	for i, l := range srcLayers {
		// gzip layers are stored as they are; others (uncompressed, zstd)
		// are recompressed with gzip, which every consumer reads.
		mt, _ := l.MediaType()
		gzipped := mt == types.OCILayer || mt == types.DockerLayer
		open := l.Uncompressed
		if gzipped {
			open = l.Compressed
		}
		rc, err := open()
		if err != nil {
			return fail(archiveError{fmt.Errorf("layer %d: %w", i+1, err)})
		}
		in, err := s.ingest(ctx, rc, gzipped)
		rc.Close()
		if err != nil {
			return fail(fmt.Errorf("layer %d of %d: %w", i+1, len(srcLayers), err))
		}
		layers = append(layers, in)
		if in.diffID != cfg.RootFS.DiffIDs[i] {
			return fail(archiveError{fmt.Errorf("layer %d of %d: content digest %s does not match %s in the image config: corrupt archive", i+1, len(srcLayers), in.diffID, cfg.RootFS.DiffIDs[i])})
		}
	}
	im, err := s.record(ctx, cfgRaw, cfg, descriptors(layers), merged(layers), Image{Alias: opts.Alias, Owner: opts.Owner})
	if err != nil {
		return fail(err)
	}
	return im, nil
}

// importRootfs stores a root file system tarball as a one-layer image.
func (s *Store) importRootfs(ctx context.Context, file string, opts ImportOptions) (*Image, error) {
	rc, _, err := openTar(file)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	l, err := s.ingest(ctx, rc, false)
	if err != nil {
		return nil, err
	}
	im, err := s.recordNew(ctx, []*ingested{l}, Image{Alias: opts.Alias, Owner: opts.Owner}, "pib image import "+filepath.Base(file))
	if err != nil {
		s.forget(l.desc.Digest)
		return nil, err
	}
	return im, nil
}

// recordNew writes a fresh config for layers (a root file system without
// one) and records the image.
func (s *Store) recordNew(ctx context.Context, layers []*ingested, meta Image, createdBy string) (*Image, error) {
	files := merged(layers)
	arch := archOf(files)
	if arch == "" {
		arch = runtime.GOARCH
	}
	cfg := &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      v1.Time{Time: s.now()},
		Config: v1.Config{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"/bin/sh"},
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	if meta.Disk != "" {
		// A disk, not a file system: no shell to run, the OS is the
		// importer's word (one of DiskOSes).
		cfg.OS = meta.OS
		cfg.Config = v1.Config{Labels: map[string]string{DiskLabel: meta.Disk}}
	}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		cfg.History = append(cfg.History, v1.History{Created: cfg.Created, CreatedBy: createdBy})
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return s.record(ctx, raw, cfg, descriptors(layers), files, meta)
}

func descriptors(layers []*ingested) []v1.Descriptor {
	out := make([]v1.Descriptor, len(layers))
	for i, l := range layers {
		out[i] = l.desc
	}
	return out
}

// record stores the config and manifest blobs of an image whose layers
// are stored, and inserts its metadata. files are the probe files the
// layers hold (the distribution is read from them; meta's is kept when
// they have none).
func (s *Store) record(ctx context.Context, cfgRaw []byte, cfg *v1.ConfigFile, descs []v1.Descriptor, files map[string]probed, meta Image) (*Image, error) {
	cfgDigest, err := s.putJSON(ctx, cfgRaw)
	if err != nil {
		return nil, err
	}
	refs := []v1.Hash{cfgDigest}
	var size int64
	for _, d := range descs {
		refs = append(refs, d.Digest)
		size += d.Size
	}
	mRaw, err := newManifest(cfgRaw, cfgDigest, descs)
	if err != nil {
		return nil, err
	}
	mDigest, err := s.putJSON(ctx, mRaw)
	if err != nil {
		s.forget(cfgDigest)
		return nil, err
	}
	refs = append(refs, mDigest)
	rel := releaseOf(files)
	im := meta
	im.ID = newID()
	if im.Owner == "" {
		im.Owner = Operator
	}
	im.OS = cfg.OS
	if im.OS == "" {
		im.OS = "linux"
	}
	im.Architecture = cfg.Architecture
	im.DistroID, im.DistroVersion = rel.ID, rel.VersionID
	if im.DistroID == "" && meta.DistroID != "" { // inherited from a parent
		im.DistroID, im.DistroVersion = meta.DistroID, meta.DistroVersion
	}
	im.Manifest, im.Config, im.Size = mDigest, cfgDigest, size
	im.Created = s.now()
	if err := s.insert(ctx, &im, refs); err != nil {
		s.forget(cfgDigest, mDigest)
		return nil, err
	}
	return &im, nil
}

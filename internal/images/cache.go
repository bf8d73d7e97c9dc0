//go:build linux

package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/layer"
)

// layerDir is where the layer with this DiffID is unpacked.
func (s *Store) layerDir(diffID v1.Hash) string {
	return filepath.Join(s.cache, "layers", diffID.Algorithm, diffID.Hex)
}

var unpacking sync.Map // DiffID → *sync.Mutex: one unpack per layer at a time in this process

// LayerDirs returns the image's layers unpacked in the layer cache, bottom
// layer first, ready to be overlayfs lower directories (overlayfs lists
// them top first). Each layer is unpacked once — to a temporary name,
// renamed when complete — and then shared: callers must never write into
// these directories.
func (s *Store) LayerDirs(ctx context.Context, im *Image) ([]string, error) {
	m, err := s.manifest(im)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", im.ID, err)
	}
	cfg, err := s.config(im)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", im.ID, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: config and manifest disagree on the number of layers", im.ID)
	}
	dirs := make([]string, len(m.Layers))
	for i, d := range m.Layers {
		if dirs[i], err = s.unpack(ctx, d, cfg.RootFS.DiffIDs[i]); err != nil {
			return nil, fmt.Errorf("image %s: layer %d: %w", im.ID, i+1, err)
		}
	}
	return dirs, nil
}

func (s *Store) unpack(ctx context.Context, d v1.Descriptor, diffID v1.Hash) (string, error) {
	dir := s.layerDir(diffID)
	mu, _ := unpacking.LoadOrStore(diffID, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := s.privateDir(filepath.Dir(dir)); err != nil {
		return "", err
	}
	tmp, err := s.tempDir("unpack-" + diffID.Hex[:12] + "-*")
	if err != nil {
		return "", err
	}
	if err := s.unpackTo(ctx, d, tmp); err != nil {
		removeTree(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		removeTree(tmp)
		if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			return dir, nil // another process finished first
		}
		return "", err
	}
	return dir, nil
}

// openLayer opens the uncompressed tar stream of a stored layer.
func (s *Store) openLayer(d v1.Descriptor) (io.ReadCloser, error) {
	rc, err := s.blobs.Open(d.Digest)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(string(d.MediaType), "gzip") {
		return rc, nil
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, rc}, nil
}

func (s *Store) unpackTo(ctx context.Context, d v1.Descriptor, dir string) error {
	r, err := s.openLayer(d)
	if err != nil {
		return err
	}
	defer r.Close()
	// Unpack wants an empty directory; MkdirTemp made it 0700. It becomes
	// the image's "/", whose mode overlayfs shows inside the image: 0755,
	// as every image's root. No other local user reaches it: privateDir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return layer.Unpack(ctx, r, dir, layer.UnpackOptions{})
}

// Rootfs gives read-only access to an image's merged root file system:
// the cached layer itself for a one-layer image, else a read-only overlay
// mount of its layers. release undoes the mount.
func (s *Store) Rootfs(ctx context.Context, im *Image) (dir string, release func() error, err error) {
	dirs, err := s.LayerDirs(ctx, im)
	if err != nil {
		return "", nil, err
	}
	if len(dirs) == 1 {
		return dirs[0], func() error { return nil }, nil
	}
	mnt, err := s.tempDir(fmt.Sprintf("rootfs-%d-*", os.Getpid())) // UnmountStale reads the PID
	if err != nil {
		return "", nil, err
	}
	lower := make([]string, len(dirs))
	for i, d := range dirs {
		lower[len(dirs)-1-i] = d
	}
	// An overlay with only lower directories is read-only by construction.
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lower, ":")); err != nil {
		os.Remove(mnt)
		return "", nil, fmt.Errorf("mount image %s: %w", im.ID, err)
	}
	return mnt, func() error {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", mnt, err)
		}
		return os.Remove(mnt)
	}, nil
}

// AddLayerOptions describe the image AddLayer makes.
type AddLayerOptions struct {
	Alias     string
	Owner     string            // defaults to the base image's owner
	CreatedBy string            // history entry, e.g. "pib build --installer setup.sh"
	Exclude   func(string) bool // paths of the upper directory to leave out (pib's own transient files)
	// Tags are the new image's tags (C5), stored with it.
	Tags map[string]string
	// SourceDateEpoch is the clamp of the new layer's modification times
	// (layer.PackOptions.Clamp: later times become it, earlier ones stay)
	// and the creation time in the new image's config; nil means the
	// base image's creation time (see Epoch).
	SourceDateEpoch *time.Time
	// Disk, required on a disk image and refused on any other, is the
	// path in upperDir of the new qcow2 overlay: DiskName(number of
	// base's layers), whose header names the base's top disk file.
	Disk string
}

// Epoch is the time AddLayer clamps a layer on base to: epoch when set,
// else the base image's creation time (its config's "created"), else
// 1970-01-01.
//
// Why the base's time by default: it is fixed by the base image (a build's
// input), so two builds on one base agree on it without any setting; it
// is a real date, not 1970, which tools that reject or special-case early
// dates (ZIP's 1980 floor, "older than everything" make logic) handle as
// any other; and it keeps a build's files from looking older than the
// base they were installed on. A fixed SOURCE_DATE_EPOCH, as BuildKit and
// apko take, overrides it for every build.
func (s *Store) Epoch(base *Image, epoch *time.Time) (time.Time, error) {
	if epoch != nil {
		return epoch.Truncate(time.Second).UTC(), nil
	}
	cfg, err := s.config(base)
	if err != nil {
		return time.Time{}, fmt.Errorf("image %s: %w", base.ID, err)
	}
	if cfg.Created.IsZero() {
		return time.Unix(0, 0).UTC(), nil
	}
	return cfg.Created.Truncate(time.Second).UTC(), nil
}

// AddLayer packs upperDir (an overlayfs upper directory: whiteouts and
// opaque directories are converted to OCI form) as one new layer on top of
// base and stores the result as a new image whose parent is base.
//
// The layer is reproducible: its modification times are clamped to
// Epoch(base, opts.SourceDateEpoch), and the config's creation times are
// that time too, so the same upper directory contents on the same base,
// with the same CreatedBy, give the same layer and image digests (the
// image ID, tags and owner are the store's, not the image's).
//
// An upper directory holding device nodes, FIFOs or sockets (outside
// opts.Exclude) is refused with an error wrapping *layer.SpecialFilesError,
// which lists them for a T2 finding; nothing is stored.
func (s *Store) AddLayer(ctx context.Context, base *Image, upperDir string, opts AddLayerOptions) (*Image, error) {
	if opts.Alias != "" {
		if err := ValidAlias(opts.Alias); err != nil {
			return nil, err
		}
	}
	m, err := s.manifest(base)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", base.ID, err)
	}
	cfg, err := s.config(base)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", base.ID, err)
	}
	switch {
	case base.Disk != "" && opts.Disk != DiskName(len(m.Layers)):
		return nil, fmt.Errorf("image %s: %w, %s", base.ID, errDiskLayer, DiskName(len(m.Layers)))
	case base.Disk == "" && opts.Disk != "":
		return nil, ErrNotDisk.Errorf("image %s is a file-system image: a disk overlay cannot be layered on it", base.ID)
	case opts.Disk != "":
		cfg.Config.Labels = map[string]string{DiskLabel: opts.Disk}
	}
	epoch, err := s.Epoch(base, opts.SourceDateEpoch)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	packed := make(chan error, 1)
	go func() {
		err := layer.Pack(ctx, upperDir, pw, layer.PackOptions{Exclude: opts.Exclude, Clamp: epoch})
		packed <- err
		pw.CloseWithError(err)
	}()
	l, err := s.ingest(ctx, pr, false)
	pr.CloseWithError(errors.New("ingest stopped"))
	var special *layer.SpecialFilesError
	if packErr := <-packed; errors.As(packErr, &special) {
		// T2: the tree's device nodes, FIFOs or sockets, not the cut
		// stream they left ingest with, are what the caller reports.
		if err == nil {
			s.forget(l.desc.Digest)
		}
		return nil, fmt.Errorf("pack %s: %w", upperDir, packErr)
	}
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", upperDir, err)
	}
	cfg.Created = v1.Time{Time: epoch}
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
	cfg.History = append(cfg.History, v1.History{Created: cfg.Created, CreatedBy: opts.CreatedBy})
	raw, err := json.Marshal(cfg)
	if err != nil {
		s.forget(l.desc.Digest)
		return nil, err
	}
	meta := Image{
		Alias: opts.Alias, Owner: opts.Owner, ParentID: base.ID,
		DistroID: base.DistroID, DistroVersion: base.DistroVersion, Tags: opts.Tags, Disk: opts.Disk,
	}
	if meta.Owner == "" {
		meta.Owner = base.Owner
	}
	im, err := s.record(ctx, raw, cfg, append(m.Layers, l.desc), l.files, meta)
	if err != nil {
		s.forget(l.desc.Digest)
		return nil, err
	}
	return im, nil
}

// TopLayer returns the DiffID of im's top layer: for a build's image, the
// digest of what the build added.
func (s *Store) TopLayer(im *Image) (v1.Hash, error) {
	cfg, err := s.config(im)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image %s: %w", im.ID, err)
	}
	if len(cfg.RootFS.DiffIDs) == 0 {
		return v1.Hash{}, fmt.Errorf("image %s has no layers", im.ID)
	}
	return cfg.RootFS.DiffIDs[len(cfg.RootFS.DiffIDs)-1], nil
}

// DiffTopLayers compares the top layers of two images (layer.Diff), to
// tell why two builds of the same inputs made different layers. It reads
// the stored blobs, never the unpacked cache.
func (s *Store) DiffTopLayers(ctx context.Context, old, new *Image) ([]layer.Difference, error) {
	var rs [2]io.ReadCloser
	for i, im := range []*Image{old, new} {
		m, err := s.manifest(im)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", im.ID, err)
		}
		if len(m.Layers) == 0 {
			return nil, fmt.Errorf("image %s has no layers", im.ID)
		}
		if rs[i], err = s.openLayer(m.Layers[len(m.Layers)-1]); err != nil {
			return nil, fmt.Errorf("image %s: top layer: %w", im.ID, err)
		}
		defer rs[i].Close()
	}
	return layer.Diff(ctx, rs[0], rs[1])
}

func packTree(ctx context.Context, dir string, w io.Writer) error {
	return layer.Pack(ctx, dir, w, layer.PackOptions{})
}

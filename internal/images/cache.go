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

func (s *Store) unpackTo(ctx context.Context, d v1.Descriptor, dir string) error {
	rc, err := s.blobs.Open(d.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	var r io.Reader = rc
	if strings.HasSuffix(string(d.MediaType), "gzip") {
		zr, err := gzip.NewReader(rc)
		if err != nil {
			return fmt.Errorf("blob %s: %w", d.Digest, err)
		}
		defer zr.Close()
		r = zr
	}
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
	mnt, err := s.tempDir("rootfs-*")
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
}

// AddLayer packs upperDir (an overlayfs upper directory: whiteouts and
// opaque directories are converted to OCI form) as one new layer on top of
// base and stores the result as a new image whose parent is base.
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
	pr, pw := io.Pipe()
	packed := make(chan error, 1)
	go func() {
		err := layer.Pack(ctx, upperDir, pw, layer.PackOptions{Exclude: opts.Exclude})
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
	now := s.now()
	cfg.Created = v1.Time{Time: now}
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
	cfg.History = append(cfg.History, v1.History{Created: cfg.Created, CreatedBy: opts.CreatedBy})
	raw, err := json.Marshal(cfg)
	if err != nil {
		s.forget(l.desc.Digest)
		return nil, err
	}
	meta := Image{
		Alias: opts.Alias, Owner: opts.Owner, ParentID: base.ID,
		DistroID: base.DistroID, DistroVersion: base.DistroVersion, Tags: opts.Tags,
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

func packTree(ctx context.Context, dir string, w io.Writer) error {
	return layer.Pack(ctx, dir, w, layer.PackOptions{})
}

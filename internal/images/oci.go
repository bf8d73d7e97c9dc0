//go:build linux

package images

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image returns a stored image as a go-containerregistry v1.Image, reading
// its blobs lazily from the blob folder.
func (s *Store) Image(im *Image) (v1.Image, error) {
	raw, err := s.readBlob(im.Manifest)
	if err != nil {
		return nil, fmt.Errorf("image %s: read manifest: %w", im.ID, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("image %s: parse manifest: %w", im.ID, err)
	}
	return partial.CompressedToImage(&storedImage{s: s, raw: raw, m: m})
}

func (s *Store) readBlob(h v1.Hash) ([]byte, error) {
	rc, err := s.blobs.Open(h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (s *Store) manifest(im *Image) (*v1.Manifest, error) {
	raw, err := s.readBlob(im.Manifest)
	if err != nil {
		return nil, err
	}
	return v1.ParseManifest(bytes.NewReader(raw))
}

func (s *Store) config(im *Image) (*v1.ConfigFile, error) {
	raw, err := s.readBlob(im.Config)
	if err != nil {
		return nil, err
	}
	return v1.ParseConfigFile(bytes.NewReader(raw))
}

// storedImage is the small core partial.CompressedToImage needs.
type storedImage struct {
	s   *Store
	raw []byte
	m   *v1.Manifest
}

func (i *storedImage) RawManifest() ([]byte, error) { return i.raw, nil }
func (i *storedImage) MediaType() (types.MediaType, error) {
	if i.m.MediaType != "" {
		return i.m.MediaType, nil
	}
	return types.OCIManifestSchema1, nil
}
func (i *storedImage) RawConfigFile() ([]byte, error) { return i.s.readBlob(i.m.Config.Digest) }

func (i *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.m.Config.Digest {
		return &storedLayer{s: i.s, d: i.m.Config}, nil
	}
	for _, d := range i.m.Layers {
		if d.Digest == h {
			return &storedLayer{s: i.s, d: d}, nil
		}
	}
	return nil, fmt.Errorf("layer %s is not in this image", h)
}

type storedLayer struct {
	s *Store
	d v1.Descriptor
}

func (l *storedLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l *storedLayer) Compressed() (io.ReadCloser, error)  { return l.s.blobs.Open(l.d.Digest) }
func (l *storedLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l *storedLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }
func (l *storedLayer) Descriptor() (*v1.Descriptor, error) { d := l.d; return &d, nil }

var _ partial.Describable = (*storedLayer)(nil)

// newManifest builds the OCI manifest for a config and layers.
func newManifest(configRaw []byte, configDigest v1.Hash, layers []v1.Descriptor) ([]byte, error) {
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config: v1.Descriptor{
			MediaType: types.OCIConfigJSON,
			Size:      int64(len(configRaw)),
			Digest:    configDigest,
		},
		Layers: layers,
	}
	return json.Marshal(m)
}

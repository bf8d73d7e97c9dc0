//go:build linux

package images

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ExportFormats lists what Export writes.
var ExportFormats = []Format{DockerArchive, OCIArchive, RootfsTar}

// Export writes image ref to the file out in the given format. The file
// appears only when complete (written under a temporary name, then
// renamed), so a failed export leaves nothing.
func (s *Store) Export(ctx context.Context, ref string, format Format, out string) error {
	im, err := s.Get(ctx, ref)
	if err != nil {
		return err
	}
	if !slices.Contains(ExportFormats, format) {
		return fmt.Errorf("unknown format %q; use docker-archive, oci-archive or rootfs-tar", format)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("export %s: %w", im.ID, err)
	}
	defer os.Remove(tmp.Name())
	err = s.WriteArchive(im, format, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Chmod(0o644) // CreateTemp makes 0600; an export is meant to be shared
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		return fmt.Errorf("export %s as %s to %s: %w", im.ID, format, out, err)
	}
	return nil
}

// WriteArchive streams image im to w in the given format.
func (s *Store) WriteArchive(im *Image, format Format, w io.Writer) error {
	img, err := s.Image(im)
	if err != nil {
		return err
	}
	switch format {
	case DockerArchive:
		tag, err := name.NewTag("pib/" + refName(im) + ":latest")
		if err != nil {
			return err
		}
		return tarball.Write(tag, img, w)
	case OCIArchive:
		return s.writeOCIArchive(im, img, w)
	case RootfsTar:
		rc := mutate.Extract(img)
		defer rc.Close()
		_, err = io.Copy(w, rc)
		return err
	}
	return fmt.Errorf("unknown format %q; use docker-archive, oci-archive or rootfs-tar", format)
}

func refName(im *Image) string {
	if im.Alias != "" {
		return im.Alias
	}
	return im.ID
}

// writeOCIArchive streams an OCI image layout as a tar: oci-layout,
// index.json and the blobs, copied straight from the blob folder.
func (s *Store) writeOCIArchive(im *Image, img v1.Image, w io.Writer) error {
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	mSize, err := s.blobs.Size(im.Manifest)
	if err != nil {
		return err
	}
	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType:   types.OCIManifestSchema1,
			Size:        mSize,
			Digest:      im.Manifest,
			Annotations: map[string]string{"org.opencontainers.image.ref.name": refName(im)},
			Platform:    &v1.Platform{OS: im.OS, Architecture: im.Architecture},
		}},
	}
	indexRaw, err := json.Marshal(index)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	file := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if err := file("oci-layout", int64(len(`{"imageLayoutVersion":"1.0.0"}`)), bytesReader([]byte(`{"imageLayoutVersion":"1.0.0"}`))); err != nil {
		return err
	}
	if err := file("index.json", int64(len(indexRaw)), bytesReader(indexRaw)); err != nil {
		return err
	}
	blobs := []v1.Descriptor{{Digest: im.Manifest, Size: mSize}, m.Config}
	blobs = append(blobs, m.Layers...)
	for _, d := range blobs {
		rc, err := s.blobs.Open(d.Digest)
		if err != nil {
			return err
		}
		err = file("blobs/sha256/"+d.Digest.Hex, d.Size, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("blob %s: %w", d.Digest, err)
		}
	}
	return tw.Close()
}

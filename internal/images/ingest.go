//go:build linux

package images

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/pib-dev/pib/internal/layer"
)

// probeFiles are the files ingest keeps while it streams a layer: what
// Image metadata is read from.
var probeFiles = map[string]bool{
	"etc/os-release":     true,
	"usr/lib/os-release": true,
	"usr/bin/env":        true, // its ELF header tells the architecture
	"bin/busybox":        true,
	"bin/sh":             true,
}

// probed is what ingest saw of one probe file in one layer.
type probed struct {
	hdr     *tar.Header
	content []byte
}

// ingested is a layer stored as a blob.
type ingested struct {
	desc   v1.Descriptor // compressed, as stored
	diffID v1.Hash       // digest of the uncompressed tar
	files  map[string]probed
}

// ingest stores one layer given as a tar stream, uncompressed or (gzipped
// true) gzip-compressed: it checks every entry (layer.Check refuses escapes
// and corrupt streams), computes the DiffID, and writes the gzip-compressed
// blob, all in one pass. A gzipped stream is stored as it is, so imported
// layers keep their digests and are not recompressed. On error nothing new
// is left in the blob store.
func (s *Store) ingest(ctx context.Context, src io.Reader, gzipped bool) (*ingested, error) {
	out := &ingested{files: map[string]probed{}}

	blobR, blobW := io.Pipe()
	checkR, checkW := io.Pipe()
	var wg sync.WaitGroup
	var blobErr, checkErr error
	var stored v1.Hash
	var storedSize int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		stored, storedSize, blobErr = s.blobs.Put(ctx, blobR, v1.Hash{})
		blobR.CloseWithError(errOr(blobErr, io.EOF))
	}()
	go func() {
		defer wg.Done()
		checkErr = layer.Check(ctx, checkR, probeFiles, func(path string, hdr *tar.Header, content []byte) {
			out.files[path] = probed{hdr: hdr, content: content}
		})
		if checkErr == nil {
			// Whatever follows the end-of-archive marker is padding.
			_, checkErr = io.Copy(io.Discard, checkR)
		}
		checkR.CloseWithError(errOr(checkErr, io.EOF))
	}()

	diff := sha256.New()
	var copyErr error
	if gzipped {
		tee := io.TeeReader(src, blobW)
		var zr *gzip.Reader
		if zr, copyErr = gzip.NewReader(tee); copyErr == nil {
			_, copyErr = io.Copy(io.MultiWriter(diff, checkW), zr)
		}
		if copyErr == nil {
			_, copyErr = io.Copy(io.Discard, tee) // the rest of the blob, if any
		}
		if copyErr != nil && !errors.Is(copyErr, io.ErrClosedPipe) {
			copyErr = fmt.Errorf("corrupt gzip layer: %w", copyErr)
		}
	} else {
		gz, _ := gzip.NewWriterLevel(blobW, gzip.BestSpeed)
		if _, copyErr = io.Copy(io.MultiWriter(diff, gz, checkW), src); copyErr == nil {
			copyErr = gz.Close()
		}
	}
	blobW.CloseWithError(errOr(copyErr, io.EOF))
	checkW.CloseWithError(errOr(copyErr, io.EOF))
	wg.Wait()

	// The most telling error first: a refused entry explains a broken pipe.
	var ee *layer.EntryError
	for _, err := range []error{checkErr, copyErr, blobErr} {
		if errors.As(err, &ee) {
			s.forgetIf(blobErr, stored)
			return nil, archiveError{err}
		}
	}
	// A blob store that failed on its own (not on a read of the layer)
	// broke the copy: the failure is ours, not the layer's.
	if blobErr != nil && (copyErr == nil || errors.Is(copyErr, blobErr)) {
		return nil, blobErr
	}
	for _, err := range []error{copyErr, checkErr, blobErr} {
		if err != nil && !errors.Is(err, io.ErrClosedPipe) {
			s.forgetIf(blobErr, stored)
			return nil, archiveError{err}
		}
	}
	out.diffID = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))}
	out.desc = v1.Descriptor{MediaType: types.OCILayer, Size: storedSize, Digest: stored}
	return out, nil
}

func (s *Store) forgetIf(putErr error, h v1.Hash) {
	if putErr == nil && h != (v1.Hash{}) {
		s.forget(h)
	}
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// putJSON stores a small blob (config, manifest).
func (s *Store) putJSON(ctx context.Context, raw []byte) (v1.Hash, error) {
	h, _, err := s.blobs.Put(ctx, bytesReader(raw), v1.Hash{})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("store metadata blob: %w", err)
	}
	return h, nil
}

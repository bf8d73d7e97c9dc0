package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pib-dev/pib/internal/images"
)

// The pib image commands act through the API, as the token's account, when
// a server is named with --server or PIB_SERVER; otherwise on the local
// data directory.

func (g *globals) remoteImages() bool { return g.server != "" }

func (g *globals) remoteImageList(cmd *cobra.Command) ([]*images.Image, error) {
	return g.client().ListImages(cmd.Context())
}

func (g *globals) remoteImage(cmd *cobra.Command, ref string) (*images.Image, error) {
	return g.client().Image(cmd.Context(), ref)
}

func (g *globals) remoteImageRemove(cmd *cobra.Command, ref string) (*images.Image, error) {
	return g.client().RemoveImage(cmd.Context(), ref)
}

// remoteImageImport uploads an archive file (with a progress bar on a
// terminal) to be imported as the caller's image.
func (g *globals) remoteImageImport(cmd *cobra.Command, file, alias string) (*images.Image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, errors.New("a server imports archives, not directories: send an OCI layout directory as an oci-archive (tar -C DIR -cf image.tar .)")
	}
	var r io.Reader = f
	if tf, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(tf.Fd())) {
		bar := progressbar.DefaultBytes(fi.Size(), "uploading "+filepath.Base(file))
		defer bar.Close()
		r = io.TeeReader(f, bar)
	}
	im, err := g.client().ImportImage(cmd.Context(), r, fi.Size(), alias)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	return im, nil
}

// remoteImageExport downloads an export to out, complete or not at all.
func (g *globals) remoteImageExport(cmd *cobra.Command, ref, format, out string) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = g.client().ExportImage(cmd.Context(), ref, images.Format(format), tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", ref, err)
	}
	return os.Rename(tmp.Name(), out)
}

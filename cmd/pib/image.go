//go:build linux

package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/images"
)

func newImageCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage images: bootstrap, import, export, list, inspect, remove (the local data directory, or the server named by --server / PIB_SERVER)",
	}
	cmd.AddCommand(
		newImageBootstrapCommand(g),
		newImageImportCommand(g),
		newImageExportCommand(g),
		newImageListCommand(g),
		newImageInspectCommand(g),
		newImageRemoveCommand(g),
	)
	return cmd
}

// imageService is what the pib image commands act on: the local data
// directory (localImages), or, when a server is named with --server or
// PIB_SERVER, that server's API as the token's account (remoteImages).
// openImageService chooses, once per command.
type imageService interface {
	// List returns the images the caller may see.
	List(ctx context.Context) ([]*images.Image, error)
	// Inspect returns image ref (ID or alias) and, where known, its
	// layers: a server does not list them.
	Inspect(ctx context.Context, ref string) (*imageDetail, error)
	// Import stores the image in file under alias ("" for none) and
	// returns it.
	Import(ctx context.Context, file, alias, os string) (*images.Image, error)
	// Export writes image ref in format to the file out, complete or not
	// at all.
	Export(ctx context.Context, ref string, format images.Format, out string) error
	// ExportDisk writes image ref as a bootable disk (raw or qcow2) of
	// size bytes (0: big enough) to out: only on the data directory's
	// machine.
	ExportDisk(ctx context.Context, ref string, format images.Format, size int64, out string) error
	// Remove removes image ref and returns what it was.
	Remove(ctx context.Context, ref string) (*images.Image, error)
	// Bootstrap builds a Debian base image with debootstrap: only on the
	// machine of the data directory.
	Bootstrap(ctx context.Context, opts images.BootstrapOptions) (*images.Image, error)
	// Close releases what the service holds open.
	Close() error
}

// openImageService returns the server's images if one is named with
// --server or PIB_SERVER (not only by pib login: the local data directory
// stays the default), else the local data directory's.
func (g *globals) openImageService(cmd *cobra.Command) (imageService, error) {
	if g.server != "" {
		return &remoteImages{c: g.client(), progress: cmd.ErrOrStderr()}, nil
	}
	s, closeFn, err := g.openImages(cmd.Context())
	if err != nil {
		return nil, err
	}
	return &localImages{s: s, close: closeFn, warn: cmd.ErrOrStderr()}, nil
}

func newImageBootstrapCommand(g *globals) *cobra.Command {
	var opts images.BootstrapOptions
	cmd := &cobra.Command{
		Use:   "bootstrap NAME",
		Short: "Build a bootable Debian server base image with debootstrap (" + strings.Join(images.BootstrapNames(), ", ") + ")",
		Long: `Build a bootable Debian server base image from Debian's archive with debootstrap:
the minbase variant plus ` + strings.Join(images.ServerPackages, ", ") + `, ` + strings.Join(images.MachinePackages, ", ") + `
and cloud-init (NoCloud datasource) when the archive has it, a GRUB configuration,
an fstab mounting the root by its label (` + images.RootLabel + `) and DHCP with
systemd-networkd; --minimal leaves out the kernel and boot configuration. Like a cloud provider's image it has no SSH host keys (they are made
at first boot), a locked root account and SSH password logins off, so it passes
pib's image policy. The image is stored as one layer under the alias NAME (or
--alias). The image ID is the last line printed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageService(cmd)
			if err != nil {
				return err
			}
			defer s.Close()
			opts.Name = args[0]
			opts.Log = cmd.ErrOrStderr()
			start := time.Now()
			im, err := s.Bootstrap(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "pib: bootstrapped %s (%s %s, %s, %s compressed) in %s\n", im.Alias, im.DistroID, im.DistroVersion, im.Architecture, humanSize(im.Size), time.Since(start).Round(time.Second))
			fmt.Fprintln(cmd.OutOrStdout(), im.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Mirror, "mirror", "", "Debian archive URL (default: the one this machine's apt sources use)")
	cmd.Flags().StringVar(&opts.Alias, "alias", "", "alias for the new image (default: NAME)")
	cmd.Flags().BoolVar(&opts.Minimal, "minimal", false, "leave out the kernel, initramfs and boot configuration: a smaller image that builds and scans but cannot boot or be exported as a disk")
	return cmd
}

func newImageImportCommand(g *globals) *cobra.Command {
	var alias, osFamily string
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import an image: OCI layout directory, oci-archive, docker save archive, root file system tarball (.tar, .tar.gz, .tar.zst), or a qcow2 disk (--os)",
		Long: `Import an image into the local store. The format is told from the content:
an OCI image layout directory, an oci-archive tarball, a docker save / podman save
archive, or a root file system tarball (plain, gzip or zstd). Every layer is
checked entry by entry; an archive with entries escaping its root is refused and
nothing is stored. Prints the new image ID.

A standalone qcow2 disk (a Windows base with the pib agent installed as a
service, docs/agent.md) is imported whole as a disk image: give its OS family
with --os windows (or linux). A disk with a backing file, an external data
file or encryption is refused. Builds on a disk image always run in a machine
(backend vm) and keep what the installer changed as a qcow2 overlay; pib does
not read a disk image's files, so its scans list no packages and say so.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageService(cmd)
			if err != nil {
				return err
			}
			defer s.Close()
			im, err := s.Import(cmd.Context(), args[0], alias, osFamily)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), im.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&alias, "alias", "", "alias for the new image")
	cmd.Flags().StringVar(&osFamily, "os", "", "a qcow2 disk's OS family: windows or linux (required for a disk, refused for an archive)")
	return cmd
}

func newImageExportCommand(g *globals) *cobra.Command {
	var format, out, size string
	cmd := &cobra.Command{
		Use:   "export ID|ALIAS --format docker-archive|oci-archive|rootfs-tar|raw|qcow2 [--size 4G] -o FILE",
		Short: "Export an image as a docker-archive (docker/podman load), oci-archive, flattened root file system tar, or a bootable raw or qcow2 disk",
		Long: `Export an image. docker-archive, oci-archive and rootfs-tar are archives of its
layers. raw and qcow2 are bootable disks for an ordinary hypervisor: a GPT disk
with GRUB for BIOS and UEFI and an ext4 root (label pib-root) holding the image;
the image needs a kernel (images bootstrapped without --minimal, and images built
on them, have one). A disk is made once per image and size and kept in the cache;
the same image gives the same bytes. --size (e.g. 4G, 2048M) sets the disk size;
by default it is big enough for the image, at least 2 GiB.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("say where to write the export with -o FILE")
			}
			f := images.Format(format)
			disk := slices.Contains(images.DiskFormats, f)
			if size != "" && !disk {
				return fmt.Errorf("--size applies to the disk formats raw and qcow2 only")
			}
			var bytes int64
			if size != "" {
				var err error
				if bytes, err = parseDiskSize(size); err != nil {
					return err
				}
			}
			s, err := g.openImageService(cmd)
			if err != nil {
				return err
			}
			defer s.Close()
			if disk {
				start := time.Now()
				if err := s.ExportDisk(cmd.Context(), args[0], f, bytes, out); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "pib: wrote %s disk %s in %s\n", f, out, time.Since(start).Round(100*time.Millisecond))
				return nil
			}
			return s.Export(cmd.Context(), args[0], f, out)
		},
	}
	cmd.Flags().StringVar(&format, "format", string(images.DockerArchive), "docker-archive, oci-archive, rootfs-tar, raw or qcow2")
	cmd.Flags().StringVar(&size, "size", "", "disk size for raw and qcow2, e.g. 4G (binary units: K, M, G, T)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write")
	return cmd
}

// parseDiskSize reads 4G, 512M, 4GiB or a byte count, in binary units
// as qemu-img does.
func parseDiskSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			shift = 10
		case 'M':
			shift = 20
		case 'G':
			shift = 30
		case 'T':
			shift = 40
		}
		if shift > 0 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > 1<<(62-shift) {
		return 0, fmt.Errorf("--size %q: give a size like 4G or 2048M", s)
	}
	return n << shift, nil
}

func newImageListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List images",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageService(cmd)
			if err != nil {
				return err
			}
			defer s.Close()
			list, err := s.List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []*images.Image{}
				}
				return writeJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tALIAS\tOS\tDISTRO\tARCH\tSIZE\tCREATED\tPARENT")
			for _, im := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", im.ID, dash(im.Alias), im.OS, dash(strings.TrimSpace(im.DistroID+" "+im.DistroVersion)), im.Architecture, humanSize(im.Size), im.Created.Local().Format("2006-01-02 15:04"), dash(im.ParentID))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// imageDetail is what `pib image inspect` shows: the metadata plus the
// layers.
type imageDetail struct {
	*images.Image
	Layers []layerDetail `json:"layers"`
}

type layerDetail struct {
	Digest string `json:"digest"`
	DiffID string `json:"diff_id"`
	Size   int64  `json:"size"`
}

func newImageInspectCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect ID|ALIAS",
		Short: "Show an image's metadata and layers",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageService(cmd)
			if err != nil {
				return err
			}
			defer s.Close()
			d, err := s.Inspect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printImage(cmd, *d, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// layerDetails lists the manifest's layers with the content digests the
// config gives them; a layer the config does not list (a corrupt image)
// has none.
func layerDetails(m *v1.Manifest, cfg *v1.ConfigFile) []layerDetail {
	var out []layerDetail
	for i, l := range m.Layers {
		d := layerDetail{Digest: l.Digest.String(), Size: l.Size}
		if i < len(cfg.RootFS.DiffIDs) {
			d.DiffID = cfg.RootFS.DiffIDs[i].String()
		}
		out = append(out, d)
	}
	return out
}

func printImage(cmd *cobra.Command, d imageDetail, asJSON bool) error {
	im := d.Image
	if asJSON {
		return writeJSON(cmd.OutOrStdout(), d)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "ID:        %s\nAlias:     %s\nOwner:     %s\nOS:        %s\nDistro:    %s %s\nArch:      %s\nParent:    %s\nCreated:   %s\nSize:      %s\nManifest:  %s\nConfig:    %s\nLayers:\n",
		im.ID, dash(im.Alias), im.Owner, im.OS, im.DistroID, im.DistroVersion, im.Architecture, dash(im.ParentID), im.Created.Format(time.RFC3339), humanSize(im.Size), im.Manifest, im.Config)
	if len(d.Layers) == 0 {
		fmt.Fprintln(w, "  (not listed by the server)")
	}
	for _, l := range d.Layers {
		fmt.Fprintf(w, "  %s  %s\n", l.Digest, humanSize(l.Size))
	}
	return nil
}

func newImageRemoveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm ID|ALIAS",
		Aliases: []string{"remove"},
		Short:   "Remove an image; blobs and cached layers no other image uses are deleted",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageService(cmd)
			if err != nil {
				return err
			}
			defer s.Close()
			im, err := s.Remove(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "removed", im.ID)
			return nil
		},
	}
}

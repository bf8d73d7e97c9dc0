package layer_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/testenv"
)

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkPackUnpack packs and unpacks the tree named by PIB_BENCH_ROOTFS,
// e.g. a debootstrapped Debian: PIB_BENCH_ROOTFS=/var/tmp/pib-dev/rootfs-debian-12.
// Throughput is in bytes of tar stream.
func BenchmarkPackUnpack(b *testing.B) {
	root := os.Getenv("PIB_BENCH_ROOTFS")
	if root == "" {
		b.Skip("set PIB_BENCH_ROOTFS to a root filesystem directory to measure Pack and Unpack")
	}
	testenv.RequireRoot(b)
	ctx := context.Background()
	tarPath := filepath.Join(b.TempDir(), "layer.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		b.Fatal(err)
	}
	if err := layer.Pack(ctx, root, f, layer.PackOptions{}); err != nil {
		b.Fatal(err)
	}
	size, _ := f.Seek(0, io.SeekCurrent)
	f.Close()

	b.Run("pack", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			var w countWriter
			if err := layer.Pack(ctx, root, &w, layer.PackOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unpack", func(b *testing.B) {
		b.SetBytes(size)
		base := b.TempDir()
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			dir := filepath.Join(base, "root", string(rune('a'+i%26)))
			os.RemoveAll(dir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			r, err := os.Open(tarPath)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := layer.Unpack(ctx, r, dir, layer.UnpackOptions{}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			r.Close()
			os.RemoveAll(dir)
			b.StartTimer()
		}
	})
	b.Run("check", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			r, err := os.Open(tarPath)
			if err != nil {
				b.Fatal(err)
			}
			if err := layer.Check(ctx, r, nil, nil); err != nil {
				b.Fatal(err)
			}
			r.Close()
		}
	})
}

package scan

import (
	"context"
	"testing"

	"github.com/anchore/syft/syft/artifact"
	"github.com/anchore/syft/syft/file"
	"github.com/anchore/syft/syft/pkg"
	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/rootfs"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestFileIndexIsSyfts: the package-to-file relationships fileIndex makes
// for a whole image are the ones syft makes from its own index, on the
// scan fixtures and on the real debian-12 image (thousands of owned
// files, usr-merge links, alternatives pointing into skipped trees).
func TestFileIndexIsSyfts(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"dpkg fixture", func(*testing.T) string { return "testdata/rootfs" }},
		{"alpine fixture", func(*testing.T) string { return "testdata/rootfs-alpine" }},
		{"debian-12", func(t *testing.T) string { return testenv.Debian12(t).Rootfs }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, err := rootfs.Open(tc.dir(t))
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			doc, roots, err := New(nil, Options{}).catalog(context.Background(), root, "x")
			if err != nil {
				t.Fatal(err)
			}
			syfts := ownedRelations(doc.Relationships)
			if _, err := relateOwnedFiles(doc, root, roots, &state{}, &change{}); err != nil {
				t.Fatal(err)
			}
			ours := ownedRelations(doc.Relationships)
			if diff := cmp.Diff(syfts, ours); diff != "" {
				t.Errorf("package-to-file relationships (-syft +fileIndex):\n%s", diff)
			}
			t.Logf("%d package-to-file relationships", len(ours))
		})
	}
}

func ownedRelations(rels []artifact.Relationship) map[string]bool {
	m := map[string]bool{}
	for _, r := range rels {
		p, ok := r.From.(pkg.Package)
		c, ok2 := r.To.(file.Coordinates)
		if ok && ok2 && r.Type == artifact.ContainsRelationship {
			m[p.Name+" "+string(p.ID())+" "+c.RealPath+" "+c.FileSystemID] = true
		}
	}
	return m
}

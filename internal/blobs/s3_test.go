package blobs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/s3test"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// server is the package's one SeaweedFS, started by TestMain.
var server *s3test.Server

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pib-s3test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server, err = s3test.StartMain(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start SeaweedFS for the S3 blob store tests:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	for _, kv := range s3test.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	code := m.Run()
	server.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one pib node's view of a shared bucket: its own cache directory.
func node(t *testing.T, db *store.DB, bucketURL string, grace time.Duration) *blobs.S3 {
	t.Helper()
	s, err := blobs.OpenS3(context.Background(), bucketURL, t.TempDir(), blobs.S3Options{
		Leases: blobs.NewLeases(db), PartSize: 5 << 20, Grace: grace, MaxAttempts: 3, MaxBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func digest(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// objectKey is where a blob lands in the bucket of url.
func objectKey(t *testing.T, bucketURL string, h v1.Hash) (bucket, key string) {
	u, err := url.Parse(bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host, strings.Trim(u.Path, "/") + "/sha256/" + h.Hex
}

func TestS3RoundTrip(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		bucket := server.Bucket(t)
		a, b := node(t, db, bucket, time.Hour), node(t, db, bucket, time.Hour)
		for _, tc := range []struct {
			name string
			size int
		}{
			{"empty", 0},
			{"small", 1000},
			{"one part exactly", 5 << 20},
			{"multipart", 12<<20 + 17},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				content := random(t, tc.size)
				h, n, err := a.Put(ctx, bytes.NewReader(content), v1.Hash{})
				if err != nil {
					t.Fatal(err)
				}
				if h != digest(content) || n != int64(tc.size) {
					t.Fatalf("Put = %s, %d; want %s, %d", h, n, digest(content), tc.size)
				}
				// The object is in the bucket under its digest, whole.
				bk, key := objectKey(t, bucket, h)
				head, err := server.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bk, Key: &key})
				if err != nil {
					t.Fatalf("object %s not in the bucket: %v", key, err)
				}
				if got := aws.ToInt64(head.ContentLength); got != int64(tc.size) {
					t.Fatalf("object size %d, want %d", got, tc.size)
				}
				// Another node, with an empty cache, reads it from the bucket.
				if got, err := b.Size(h); err != nil || got != int64(tc.size) {
					t.Fatalf("Size on the other node = %d, %v", got, err)
				}
				rc, err := b.Open(h)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, content) {
					t.Fatalf("the other node read %d bytes (err %v), want the %d put", len(got), err, len(content))
				}
				// Putting it again with the expected digest is a no-op upload.
				if h2, _, err := b.Put(ctx, bytes.NewReader(content), h); err != nil || h2 != h {
					t.Fatalf("second Put = %s, %v", h2, err)
				}
			})
		}
	})
}

func TestS3Refuses(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	ctx := context.Background()
	bucket := server.Bucket(t)
	a, b := node(t, db, bucket, time.Hour), node(t, db, bucket, time.Hour)
	client := server.Client()

	t.Run("content that does not match the expected digest", func(t *testing.T) {
		content := []byte("what the caller expected")
		wrong := digest([]byte("something else"))
		if _, _, err := a.Put(ctx, bytes.NewReader(content), wrong); err == nil {
			t.Fatal("Put with a wrong digest succeeded")
		}
		bk, key := objectKey(t, bucket, digest(content))
		if _, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bk, Key: &key}); err == nil {
			t.Fatal("a refused blob was uploaded")
		}
	})
	t.Run("an object altered in the bucket", func(t *testing.T) {
		content := random(t, 3000)
		h, _, err := a.Put(ctx, bytes.NewReader(content), v1.Hash{})
		if err != nil {
			t.Fatal(err)
		}
		bk, key := objectKey(t, bucket, h)
		evil := append(bytes.Clone(content[:2999]), content[2999]^1)
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bk, Key: &key, Body: bytes.NewReader(evil)}); err != nil {
			t.Fatal(err)
		}
		_, err = b.Open(h)
		var de *blobs.DigestError
		if !errors.As(err, &de) || de.Want != h || de.Got != digest(evil) {
			t.Fatalf("Open of an altered object: err = %v, want a DigestError naming both digests", err)
		}
		// Nothing of it was kept: a second Open goes to the bucket again.
		if _, err := b.Open(h); !errors.As(err, &de) {
			t.Fatalf("second Open of an altered object: %v; the altered content reached the cache", err)
		}
	})
	t.Run("a missing blob", func(t *testing.T) {
		h := digest([]byte("never stored"))
		if _, err := b.Open(h); !errors.Is(err, blobs.ErrNotFound) {
			t.Fatalf("Open of a missing blob: %v, want ErrNotFound", err)
		}
		if _, err := b.Size(h); !errors.Is(err, blobs.ErrNotFound) {
			t.Fatalf("Size of a missing blob: %v, want ErrNotFound", err)
		}
	})
}

// TestS3Collect: garbage collection deletes only what no row references
// and is older than the grace period, and never a blob another node's
// writer holds a lease on.
func TestS3Collect(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const grace = 2 * time.Second
		bucket := server.Bucket(t)
		gc, writer := node(t, db, bucket, grace), node(t, db, bucket, grace)
		put := func(s *blobs.S3, content string) v1.Hash {
			h, _, err := s.Put(ctx, strings.NewReader(content), v1.Hash{})
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		referenced := put(gc, "referenced by a row")
		garbage := put(gc, "referenced by nothing")
		reused := put(gc, "old, unreferenced, and reused by a writer right now")
		time.Sleep(grace + 500*time.Millisecond)
		young := put(gc, "just written")
		// The writer on the other node finds the old blob and holds it.
		if h := put(writer, "old, unreferenced, and reused by a writer right now"); h != reused {
			t.Fatal(h)
		}
		refs := func(_ context.Context, h v1.Hash) (bool, error) { return h == referenced, nil }
		got, err := blobs.Collect(ctx, gc, grace, refs)
		if err != nil {
			t.Fatal(err)
		}
		want := blobs.Collected{Blobs: 4, Young: 1, Referenced: 2, Deleted: 1, DeletedBytes: int64(len("referenced by nothing"))}
		if got != want {
			t.Errorf("Collect = %+v, want %+v", got, want)
		}
		for h, wantThere := range map[v1.Hash]bool{referenced: true, garbage: false, reused: true, young: true} {
			bk, key := objectKey(t, bucket, h)
			_, err := server.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bk, Key: &key})
			if there := err == nil; there != wantThere {
				t.Errorf("blob %s in the bucket: %v, want %v (err %v)", h, there, wantThere, err)
			}
		}
		if _, err := gc.Open(garbage); !errors.Is(err, blobs.ErrNotFound) {
			t.Errorf("a collected blob still opens on the collecting node: %v", err)
		}
		// Once the writer's lease is past the grace period (its reference
		// would be committed by then), the blob can go.
		time.Sleep(grace)
		if got, err := blobs.Collect(ctx, gc, grace, refs); err != nil || got.Deleted != 2 {
			t.Errorf("second Collect = %+v, %v; want the reused and the young blob deleted", got, err)
		}
	})
}

// TestLeases: the lease protocol's two orders, on both engines.
func TestLeases(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := blobs.NewLeases(db)
		h := digest([]byte("x"))
		if err := l.Hold(ctx, h); err != nil {
			t.Fatal(err)
		}
		if ok, err := l.Mark(ctx, h, time.Hour); err != nil || ok {
			t.Fatalf("Mark under a fresh lease = %v, %v; want refused", ok, err)
		}
		time.Sleep(20 * time.Millisecond)
		if ok, err := l.Mark(ctx, h, 10*time.Millisecond); err != nil || !ok {
			t.Fatalf("Mark under an expired lease = %v, %v; want granted", ok, err)
		}
		// A writer waits for the deletion, then holds.
		held := make(chan error, 1)
		go func() { held <- l.Hold(ctx, h) }()
		select {
		case err := <-held:
			t.Fatalf("Hold returned (%v) while the blob was being deleted", err)
		case <-time.After(300 * time.Millisecond):
		}
		if err := l.Clear(ctx, h); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-held:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Hold still waiting after the deletion ended")
		}
	})
}

// stopAtEOF stops the server once the blob has been read to its end: the
// upload that follows starts against a store that is down.
type stopAtEOF struct {
	r       io.Reader
	stopped chan struct{}
	srv     *s3test.Server
}

func (s *stopAtEOF) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF && s.stopped != nil {
		s.srv.Stop()
		close(s.stopped)
		s.stopped = nil
	}
	return n, err
}

// TestS3Outage: the S3 server is down for 10 s while a multipart upload
// starts; the upload waits, retries and completes once the server is back,
// and the blob reads back whole.
func TestS3Outage(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	ctx := context.Background()
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	writer, reader := node(t, db, bucket, time.Hour), node(t, db, bucket, time.Hour)
	content := random(t, 23<<20)
	stopped := make(chan struct{})
	restarted := make(chan error, 1)
	go func() {
		<-stopped
		time.Sleep(10 * time.Second)
		restarted <- srv.Restart()
	}()
	start := time.Now()
	h, _, err := writer.Put(ctx, &stopAtEOF{r: bytes.NewReader(content), stopped: stopped, srv: srv}, v1.Hash{})
	if rerr := <-restarted; rerr != nil {
		t.Fatalf("restart SeaweedFS: %v", rerr)
	}
	if err != nil {
		t.Fatalf("Put across a 10 s outage: %v", err)
	}
	if took := time.Since(start); took < 10*time.Second {
		t.Fatalf("Put returned after %s, before the store was back: the outage did not happen", took)
	}
	rc, err := reader.Open(h)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, content) {
		t.Fatalf("read back %d bytes, want the %d put", len(got), len(content))
	}
}

package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// S3 keeps blobs in an S3-compatible bucket under PREFIX/sha256/<hex>,
// shared by every pib node, and a Dir on this node's disk as its cache.
//
// Why a local cache in the middle, both ways:
//   - Put: a blob's key is its digest, known only once the whole stream
//     is read, and S3 has no rename. Writing to the cache first (hashing
//     as it goes) and then uploading the file in parts keeps no blob in
//     memory, lets every part be retried (a file can be read again, a
//     stream cannot) and spares a server-side copy of every blob.
//   - Open: what comes back from the bucket is hostile data (SPEC T2) until
//     its digest is checked, so it is downloaded into the cache through
//     Dir.Put with the expected digest, which refuses anything else; only
//     then does a reader see a byte. The next Open on this node is local,
//     which is what a worker's layer cache needs anyway.
type S3 struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or "a/b/" (with the trailing slash)
	cache    *Dir
	leases   *Leases
	partSize int64
	grace    time.Duration
	retryFor time.Duration
}

// S3Options tune an S3 store; the zero value of each field means its default.
type S3Options struct {
	// Leases coordinate writers and deleters across nodes (required).
	Leases *Leases
	// PartSize is the multipart upload part size (default 16 MiB; S3's
	// minimum is 5 MiB). Blobs up to one part are sent in one request.
	PartSize int64
	// Grace is how old an unreferenced blob must be before Collect deletes
	// it, and how long a writer's lease protects a blob (default 1 h).
	Grace time.Duration
	// MaxAttempts bounds the SDK's attempts of one request (default 3),
	// with exponential backoff and jitter up to MaxBackoff (default 2 s).
	MaxAttempts int
	MaxBackoff  time.Duration
	// RetryFor is how long an operation (an upload, a download, a
	// deletion) is tried again, with backoff, while the store fails
	// (default 2 min): a store restarting or briefly unreachable delays
	// pib, it does not fail a build.
	RetryFor time.Duration
}

// Location is a parsed --blobs s3://BUCKET/PREFIX?endpoint=URL&region=R.
type Location struct {
	Bucket, Prefix, Endpoint, Region string
}

// ParseS3URL parses an s3:// blob store URL. The endpoint is for
// S3-compatible servers (SeaweedFS, MinIO, Ceph): it also switches to
// path-style addressing, which they expect; without it the SDK's AWS
// endpoints are used.
func ParseS3URL(raw string) (Location, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return Location{}, fmt.Errorf("blob store %q: want s3://BUCKET/PREFIX?endpoint=URL&region=R", raw)
	}
	loc := Location{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), Endpoint: u.Query().Get("endpoint"), Region: u.Query().Get("region")}
	for k := range u.Query() {
		if k != "endpoint" && k != "region" {
			return Location{}, fmt.Errorf("blob store %q: unknown parameter %q; only endpoint and region are understood", raw, k)
		}
	}
	if loc.Endpoint != "" {
		if e, err := url.Parse(loc.Endpoint); err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return Location{}, fmt.Errorf("blob store %q: endpoint %q must be an http:// or https:// URL", raw, loc.Endpoint)
		}
	}
	return loc, nil
}

// OpenS3 connects to the bucket of rawURL (ParseS3URL), with cacheDir as
// this node's cache. Credentials come from the standard AWS environment
// variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, …) or
// files (~/.aws/credentials, ~/.aws/config), as every AWS tool reads them.
// It checks that the bucket answers before returning.
func OpenS3(ctx context.Context, rawURL, cacheDir string, o S3Options) (*S3, error) {
	loc, err := ParseS3URL(rawURL)
	if err != nil {
		return nil, err
	}
	if o.Leases == nil {
		return nil, errors.New("s3 blob store: no leases (internal error)")
	}
	if o.PartSize == 0 {
		o.PartSize = 16 << 20
	}
	if o.PartSize < 5<<20 {
		return nil, fmt.Errorf("s3 blob store: part size %d is below S3's minimum of 5 MiB", o.PartSize)
	}
	if o.Grace == 0 {
		o.Grace = time.Hour
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 2 * time.Second
	}
	if o.RetryFor == 0 {
		o.RetryFor = 2 * time.Minute
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.MaxAttempts
				so.MaxBackoff = o.MaxBackoff
				// The default token bucket stops retrying after a burst of
				// failures; an outage of the store is exactly when pib must
				// keep trying (each request stays bounded by MaxAttempts).
				so.RateLimiter = ratelimit.None
			})
		}),
	}
	region := loc.Region
	if region == "" && loc.Endpoint != "" {
		region = "us-east-1" // S3-compatible servers ignore it, the signer needs one
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 blob store: load AWS configuration: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if loc.Endpoint != "" {
			so.BaseEndpoint = aws.String(loc.Endpoint)
			so.UsePathStyle = true
		}
		// Checksums only where S3 demands them: pib checks every blob's
		// sha256 itself, and S3-compatible servers differ in which of the
		// newer checksum headers they accept.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	cache, err := NewDir(cacheDir)
	if err != nil {
		return nil, err
	}
	s := &S3{client: client, bucket: loc.Bucket, cache: cache, leases: o.Leases, partSize: o.PartSize, grace: o.Grace, retryFor: o.RetryFor}
	if loc.Prefix != "" {
		s.prefix = loc.Prefix + "/"
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(loc.Bucket)}); err != nil {
		return nil, fmt.Errorf("s3 blob store: bucket %q at %s: %w; check the URL, that the bucket exists and the AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or ~/.aws/credentials)", loc.Bucket, endpointName(loc), err)
	}
	return s, nil
}

func endpointName(loc Location) string {
	if loc.Endpoint != "" {
		return loc.Endpoint
	}
	return "AWS"
}

var _ Store = (*S3)(nil)

func (s *S3) key(h v1.Hash) string { return s.prefix + path.Join(h.Algorithm, h.Hex) }

// Put stores the blob in the local cache, holds a lease on it so that no
// node deletes it while this one's caller records its reference (Leases),
// and uploads it unless the bucket has it already.
func (s *S3) Put(ctx context.Context, r io.Reader, want v1.Hash) (v1.Hash, int64, error) {
	h, n, err := s.cache.Put(ctx, r, want)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	if err := s.leases.Hold(ctx, h); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("store blob %s: %w", h, err)
	}
	err = s.retry(ctx, "upload blob "+h.String(), func() error {
		if size, err := s.remoteSize(ctx, h); err == nil && size == n {
			return nil
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return s.upload(ctx, h, n)
	})
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("store blob %s in bucket %s: %w; check that the S3 store is reachable, then retry", h, s.bucket, err)
	}
	return h, n, nil
}

// retry runs op until it succeeds, fails for good (a missing blob, a
// digest mismatch, a cancelled context) or s.retryFor has passed, with
// exponential backoff from 200 ms to 5 s between attempts.
func (s *S3) retry(ctx context.Context, what string, op func() error) error {
	deadline := time.Now().Add(s.retryFor)
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := op()
		var digestErr *DigestError
		if err == nil || errors.Is(err, ErrNotFound) || errors.As(err, &digestErr) || ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			return err
		}
		slog.Warn("s3: "+what+" failed; retrying", "attempt", attempt, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// upload sends the cached file of h: in one request up to one part,
// else as a multipart upload of parts read straight from the file (each
// part retried on its own by the SDK), aborted on failure so the bucket
// keeps no orphan parts.
func (s *S3) upload(ctx context.Context, h v1.Hash, n int64) error {
	f, err := os.Open(s.cache.Path(h))
	if err != nil {
		return err
	}
	defer f.Close()
	key := aws.String(s.key(h))
	if n <= s.partSize {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(s.bucket), Key: key, Body: io.NewSectionReader(f, 0, n), ContentLength: aws.Int64(n),
		})
		return err
	}
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(s.bucket), Key: key})
	if err != nil {
		return err
	}
	abort := func(cause error) error {
		// A fresh context: the upload's may be the one that was cancelled.
		actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.bucket), Key: key, UploadId: up.UploadId}); err != nil {
			slog.Warn("s3: abort of a failed multipart upload failed; the bucket keeps its parts until a lifecycle rule removes them", "key", *key, "err", err)
		}
		return cause
	}
	var parts []s3types.CompletedPart
	for off, num := int64(0), int32(1); off < n; off, num = off+s.partSize, num+1 {
		size := min(s.partSize, n-off)
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(s.bucket), Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(num),
			Body: io.NewSectionReader(f, off, size), ContentLength: aws.Int64(size),
		})
		if err != nil {
			return abort(fmt.Errorf("part %d: %w", num, err))
		}
		parts = append(parts, s3types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
	}
	if _, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: key, UploadId: up.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		return abort(err)
	}
	return nil
}

// Open returns the cached copy of h, downloading it first (checked
// against h) when this node has none.
func (s *S3) Open(h v1.Hash) (Reader, error) {
	if f, err := s.cache.Open(h); err == nil || !errors.Is(err, ErrNotFound) {
		return f, err
	}
	// Retried whole: the SDK retries a request that fails, not a body cut
	// off half way.
	if err := s.retry(context.Background(), "download blob "+h.String(), func() error { return s.download(context.Background(), h) }); err != nil {
		return nil, err
	}
	return s.cache.Open(h)
}

func (s *S3) download(ctx context.Context, h v1.Hash) error {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(h))})
	if err != nil {
		if isNotFound(err) {
			return ErrNotFound.Errorf("blob not found: %s (not in bucket %s)", h, s.bucket)
		}
		return fmt.Errorf("download blob %s from bucket %s: %w", h, s.bucket, err)
	}
	defer out.Body.Close()
	if _, _, err := s.cache.Put(ctx, out.Body, h); err != nil {
		var digestErr *DigestError
		if errors.As(err, &digestErr) {
			return fmt.Errorf("blob %s in bucket %s is corrupt or was altered (%w); it is not used: restore it from a backup or remove the images that need it", h, s.bucket, err)
		}
		return fmt.Errorf("download blob %s from bucket %s: %w", h, s.bucket, err)
	}
	return nil
}

// Size returns the size of h, from the cache when this node has it.
func (s *S3) Size(h v1.Hash) (int64, error) {
	if n, err := s.cache.Size(h); err == nil {
		return n, nil
	}
	var n int64
	err := s.retry(context.Background(), "size of blob "+h.String(), func() (err error) {
		n, err = s.remoteSize(context.Background(), h)
		return err
	})
	return n, err
}

func (s *S3) remoteSize(ctx context.Context, h v1.Hash) (int64, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(h))})
	if err != nil {
		if isNotFound(err) {
			return 0, ErrNotFound.Errorf("blob not found: %s", h)
		}
		return 0, err
	}
	return aws.ToInt64(out.ContentLength), nil
}

// Delete removes h from the bucket and the cache, unless another node
// holds a lease on it (it is writing the blob and about to reference it):
// then the blob stays, for Collect to look at again later.
func (s *S3) Delete(h v1.Hash) error {
	_, err := s.remove(context.Background(), h)
	return err
}

// remove is Delete, telling whether the blob went.
func (s *S3) remove(ctx context.Context, h v1.Hash) (bool, error) {
	ok, err := s.leases.Mark(ctx, h, s.grace)
	if err != nil {
		return false, fmt.Errorf("delete blob %s: %w", h, err)
	}
	if !ok {
		slog.Debug("s3: blob kept: a writer holds a lease on it", "digest", h)
		return false, nil
	}
	defer s.leases.Clear(context.WithoutCancel(ctx), h)
	if err := s.retry(ctx, "delete blob "+h.String(), func() error {
		_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(h))})
		if isNotFound(err) {
			return nil
		}
		return err
	}); err != nil {
		return false, fmt.Errorf("delete blob %s from bucket %s: %w", h, s.bucket, err)
	}
	return true, s.cache.Delete(h)
}

// List returns every blob in the bucket under the prefix.
func (s *S3) List(ctx context.Context) ([]Info, error) {
	var out []Info
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + "sha256/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list bucket %s: %w", s.bucket, err)
		}
		for _, o := range page.Contents {
			hexDigest := strings.TrimPrefix(aws.ToString(o.Key), s.prefix+"sha256/")
			h, err := v1.NewHash("sha256:" + hexDigest)
			if err != nil {
				continue // not pib's
			}
			out = append(out, Info{Digest: h, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

func isNotFound(err error) bool {
	var nsk *s3types.NoSuchKey
	var nf *s3types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && (api.ErrorCode() == "NotFound" || api.ErrorCode() == "NoSuchKey")
}

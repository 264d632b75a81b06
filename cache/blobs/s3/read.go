package s3

import (
	"context"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache/blobs"
)

// Open implements blobs.Tier with one GetObject, ranged when offset > 0.
func (t *Tier) Open(ctx context.Context, h v1.Hash, offset int64) (io.ReadCloser, int64, error) {
	if offset < 0 {
		return nil, 0, fmt.Errorf("%w: offset %d of %s", blobs.ErrOutOfRange, offset, h)
	}
	in := &s3.GetObjectInput{Bucket: &t.bucket, Key: aws.String(t.blobKey(h))}
	if offset > 0 {
		in.Range = aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-")
	}
	out, err := t.client.GetObject(ctx, in)
	switch {
	case notFound(err):
		return nil, 0, fmt.Errorf("%w: %s: %w", blobs.ErrNotFound, h, err)
	case status(err) == http.StatusRequestedRangeNotSatisfiable:
		return t.openAtEnd(ctx, h, offset)
	case err != nil:
		return nil, 0, fmt.Errorf("s3: get %s: %w", h, err)
	}
	size, err := objectSize(out, offset)
	if err != nil {
		out.Body.Close()
		return nil, 0, fmt.Errorf("s3: get %s: %w", h, err)
	}
	return countingBody{ReadCloser: out.Body, m: t.counters}, size, nil
}

// openAtEnd answers a range the server refused (RFC 9110 15.5.17): an
// offset at the blob's very end is an empty read, any other is out of range.
func (t *Tier) openAtEnd(ctx context.Context, h v1.Hash, offset int64) (io.ReadCloser, int64, error) {
	info, err := t.Stat(ctx, h)
	if err != nil {
		return nil, 0, err
	}
	if offset != info.Size {
		return nil, 0, fmt.Errorf("%w: offset %d of %s (%d bytes)", blobs.ErrOutOfRange, offset, h, info.Size)
	}
	return io.NopCloser(strings.NewReader("")), info.Size, nil
}

// objectSize is the whole object's size: Content-Length for a whole read,
// the total after the slash of Content-Range for a ranged one.
func objectSize(out *s3.GetObjectOutput, offset int64) (int64, error) {
	if offset == 0 {
		if out.ContentLength == nil {
			return 0, fmt.Errorf("no Content-Length")
		}
		return *out.ContentLength, nil
	}
	cr := aws.ToString(out.ContentRange)
	_, total, ok := strings.Cut(cr, "/")
	size, err := strconv.ParseInt(total, 10, 64)
	if !ok || err != nil {
		return 0, fmt.Errorf("unreadable Content-Range %q", cr)
	}
	return size, nil
}

// Stat implements blobs.Tier with HeadObject.
func (t *Tier) Stat(ctx context.Context, h v1.Hash) (blobs.Info, error) {
	out, err := t.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &t.bucket, Key: aws.String(t.blobKey(h))})
	if notFound(err) {
		return blobs.Info{}, fmt.Errorf("%w: %s: %w", blobs.ErrNotFound, h, err)
	}
	if err != nil {
		return blobs.Info{}, fmt.Errorf("s3: head %s: %w", h, err)
	}
	return blobs.Info{Digest: h, Size: aws.ToInt64(out.ContentLength), Modified: aws.ToTime(out.LastModified)}, nil
}

// List implements blobs.Tier, a page of keys (1,000 on S3) at a time. Keys
// under blobs/ that name no digest are not blobs of this tier and are
// passed over.
func (t *Tier) List(ctx context.Context) iter.Seq2[blobs.Info, error] {
	return func(yield func(blobs.Info, error) bool) {
		pages := s3.NewListObjectsV2Paginator(t.client, &s3.ListObjectsV2Input{
			Bucket: &t.bucket, Prefix: aws.String(t.prefix + "blobs/"),
		})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(blobs.Info{}, fmt.Errorf("s3: list blobs: %w", err))
				return
			}
			for _, obj := range page.Contents {
				h, ok := t.blobOfKey(aws.ToString(obj.Key))
				if !ok {
					continue
				}
				info := blobs.Info{Digest: h, Size: aws.ToInt64(obj.Size), Modified: aws.ToTime(obj.LastModified)}
				if !yield(info, nil) {
					return
				}
			}
		}
	}
}

// Delete implements blobs.Tier; S3 answers success for an absent key.
func (t *Tier) Delete(ctx context.Context, h v1.Hash) error {
	_, err := t.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &t.bucket, Key: aws.String(t.blobKey(h))})
	if err != nil && !notFound(err) {
		return fmt.Errorf("s3: delete %s: %w", h, err)
	}
	return nil
}
